"""The lab's webhook for a flagged re-test: a JSON POST, signed with HMAC-SHA256 when the lab set a
secret, tried a few times with backoff, bounded in time; the outcome is returned (the keeper audits
it), never raised: a subscriber being down must not stop the record from being kept."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIGNATURE_HEADER = "X-Certlab-Signature"
TIMEOUT = 5.0
TRIES = 3
BACKOFF = (1.0, 2.0)  # seconds before the 2nd and 3rd try


@dataclass(frozen=True)
class Delivery:
    ok: bool
    attempts: int
    status: int | None
    error: str | None

    def describe(self) -> str:
        if self.ok:
            return f"delivered (HTTP {self.status}, {self.attempts} attempt(s))"
        return f"not delivered after {self.attempts} attempt(s): {self.error}"


def signature(body: bytes, secret: str) -> str:
    """The header value a receiver recomputes: `sha256=<hex HMAC-SHA256 of the body>`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post_json(url: str, payload: dict[str, Any], *, secret: str | None = None, timeout: float = TIMEOUT,
              tries: int = TRIES, backoff: tuple[float, ...] = BACKOFF,
              sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """POST `payload` to `url` until a 2xx answers or `tries` are spent."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "certlab-records"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    error, status = "no attempt", None
    for attempt in range(1, max(1, tries) + 1):
        if attempt > 1:
            sleep(backoff[min(attempt - 2, len(backoff) - 1)] if backoff else 0.0)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the lab's own URL
                status = response.status
                if 200 <= status < 300:
                    return Delivery(True, attempt, status, None)
                error = f"HTTP {status}"
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            status, error = None, str(getattr(exc, "reason", exc))
    return Delivery(False, max(1, tries), status, error)
