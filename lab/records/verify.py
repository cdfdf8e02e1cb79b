"""`certlab verify-record FILE_OR_URL`: fetch a record's revisions and check the chain.

    result = verify_source("https://lab.example/records/TH-100/revisions", key_file=None)
    result.lines()          # one line per revision, then the verdict line
    result.check.ok         # exit 0; a revision that does not verify: exit 1

A URL is read with the standard library: http(s) only (a redirect to any other scheme is
refused), a 10 s timeout per network operation and 60 s in all, at most 32 MiB. A file is read
as every user file is (lab.inputfile: a regular file, bounded). Anything unusable (unreachable,
too large, not JSON, not a record chain) is a one-line CertlabError (exit 2): a document that
cannot be read says nothing about the record's integrity either way.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from lab.errors import CertlabError
from lab.inputfile import MIB, read_bounded
from lab.records.chain import ChainCheck, public_key_hex, verify_chain
from lab.reports.keys import fingerprint, load_public_key

MAX_RECORD_BYTES = 32 * MIB
TIMEOUT_S = 10.0  # per connect / read
DEADLINE_S = 60.0  # the whole download
_CHUNK = 1 << 16
_WHAT = "record chain"


@dataclass(frozen=True)
class SourceCheck:
    """What `verify_source` found for one file or URL."""

    source: str
    model: str | None
    check: ChainCheck
    pinned: bool  # checked against a key the user gave, not only the chain's own

    def lines(self) -> list[str]:
        out = [c.line for c in self.check.checks]
        key = f"key {_fingerprint(self.check.key)}" if self.check.key else "no key"
        if self.check.ok:
            how = ("the pinned lab key" if self.pinned else
                   f"{key} (the chain's own key: compare its fingerprint with the lab's, or pass --key)")
            out.append(f"verified: {self.check.revisions} revisions of the record of {self.model}, hash chain "
                       f"intact, every signature by {how}")
        else:
            out.append(f"NOT VERIFIED: {self.check.reason} (the first of {self.check.revisions} revisions "
                       f"that fails)")
        return out


def verify_source(source: str, *, key_file: Path | None = None, timeout: float = TIMEOUT_S,
                  deadline: float = DEADLINE_S) -> SourceCheck:
    """Read the chain document at `source` (a path or an http(s) URL) and verify it."""
    pinned = public_key_hex(load_public_key(key_file)) if key_file is not None else None
    data = read_source(source, timeout=timeout, deadline=deadline)
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CertlabError(f"{source}: not UTF-8 text (byte {exc.start}); give the record's revisions "
                           f"(GET /records/<model>/revisions)") from None
    except json.JSONDecodeError as exc:
        raise CertlabError(f"{source}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); give the "
                           f"record's revisions (GET /records/<model>/revisions)") from None
    except RecursionError:
        raise CertlabError(f"{source}: JSON nested too deeply to be a {_WHAT}") from None
    check = verify_chain(document, key_hex=pinned)
    if check.first_bad is None and not check.ok:  # not a chain document at all: unusable input
        raise CertlabError(f"{source}: {check.reason}")
    return SourceCheck(source, document["model"], check, pinned is not None)


def read_source(source: str, *, timeout: float = TIMEOUT_S, deadline: float = DEADLINE_S) -> bytes:
    """The bytes at `source`: an http(s) URL, else a file path (a '://' of another scheme is refused)."""
    scheme = urllib.parse.urlsplit(source).scheme.lower() if "://" in source else ""
    if scheme in ("http", "https"):
        return fetch(source, timeout=timeout, deadline=deadline)
    if scheme:
        raise CertlabError(f"{source}: only http and https URLs (or a file) can be read; give the record's "
                           f"http(s) URL or a saved copy")
    return read_bounded(Path(source), what=_WHAT, limit=MAX_RECORD_BYTES)


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) (urllib also follows ftp), at most 5."""

    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise CertlabError(f"{req.full_url}: redirected to a {scheme or 'relative'}: URL; only http(s) "
                               f"redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, *, timeout: float = TIMEOUT_S, deadline: float = DEADLINE_S,
          limit: int = MAX_RECORD_BYTES) -> bytes:
    """GET `url`, bounded in size and time; CertlabError naming the URL and what went wrong."""
    opener = urllib.request.build_opener(_HttpOnlyRedirects())
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    ends = time.monotonic() + deadline
    try:
        with opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > limit:
                raise CertlabError(f"{url}: {length} bytes, over the {limit >> 20} MiB certlab reads for a {_WHAT}")
            chunks: list[bytes] = []
            total = 0
            while total <= limit:  # bounded by the size limit and the deadline
                if time.monotonic() > ends:
                    raise CertlabError(f"{url}: the download took longer than {deadline:.0f} s; try again or save "
                                       f"the document and give the file")
                chunk = response.read1(_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except urllib.error.HTTPError as exc:
        raise CertlabError(f"{url}: HTTP {exc.code} {exc.reason}; check the model in the URL "
                           f"(GET /records lists the records)") from None
    except urllib.error.URLError as exc:
        raise CertlabError(f"{url}: cannot connect ({_reason(exc.reason)}); check the address") from None
    except (TimeoutError, OSError) as exc:
        raise CertlabError(f"{url}: {_reason(exc)}; check the address and try again") from None
    if total > limit:
        raise CertlabError(f"{url}: larger than the {limit >> 20} MiB certlab reads for a {_WHAT}")
    return b"".join(chunks)


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    text = getattr(reason, "strerror", None) or str(reason)
    return " ".join(str(text).split())[:120]


def _fingerprint(key_hex: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return fingerprint(Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex)))
    except ValueError:
        return key_hex[:16]
