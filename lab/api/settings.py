"""What the booking service needs to know, from the environment (and `certlab serve` options)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lab import resources
from lab.errors import CertlabError
from lab.store.db import default_data_dir


def _number(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise CertlabError(f"${name}={raw!r}: not a number; fix: set a number or unset it") from None
    if value <= 0:
        raise CertlabError(f"${name}={raw!r}: must be above 0")
    return value


@dataclass(frozen=True)
class ApiSettings:
    # the lab's benches: slot capacity, where runs go (`certlab serve` insists on -i or CERTLAB_INVENTORY;
    # the shipped simulated lab is only this class's default, for certlab's own tests)
    inventory: Path = field(default_factory=resources.sim_inventory)
    database_url: str | None = None  # None: CERTLAB_DATABASE_URL or the default SQLite store
    data_dir: Path = field(default_factory=default_data_dir)  # uploaded firmware lives in data_dir/firmware
    reports_dir: Path = field(default_factory=resources.default_reports_dir)  # ./reports or CERTLAB_REPORTS_DIR
    max_upload_bytes: int = 64 << 20
    max_json_bytes: int = 1 << 20  # any body but an upload: the largest real ICS + IXIT is about 40 KiB
    rate_per_second: float = 200.0  # per token, sustained
    rate_burst: float = 400.0  # per token, at once
    record_webhook_url: str | None = None  # a flagged re-test is POSTed here (CERTLAB_RECORD_WEBHOOK_URL)
    record_webhook_secret: str | None = None  # HMAC-SHA256 key of the webhook's body (CERTLAB_RECORD_WEBHOOK_SECRET)
    retest_signatory: str | None = None  # who approves re-test reports (CERTLAB_RETEST_SIGNATORY; default:
    # the lab profile's first signatory)
    keeper_period: float = 5.0  # seconds between the record keeper's rounds (CERTLAB_RECORD_KEEPER_PERIOD)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> "ApiSettings":
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        if env.get("CERTLAB_INVENTORY"):
            values["inventory"] = Path(env["CERTLAB_INVENTORY"])
        if env.get("CERTLAB_REPORTS_DIR"):
            values["reports_dir"] = Path(env["CERTLAB_REPORTS_DIR"])
        values["max_upload_bytes"] = int(_number(env, "CERTLAB_MAX_UPLOAD_MB", 64) * (1 << 20))
        values["max_json_bytes"] = int(_number(env, "CERTLAB_MAX_JSON_KB", 1024) * (1 << 10))
        values["rate_per_second"] = _number(env, "CERTLAB_RATE_PER_SECOND", 200.0)
        values["rate_burst"] = _number(env, "CERTLAB_RATE_BURST", 400.0)
        for name, env_name in (("record_webhook_url", "CERTLAB_RECORD_WEBHOOK_URL"),
                               ("record_webhook_secret", "CERTLAB_RECORD_WEBHOOK_SECRET"),
                               ("retest_signatory", "CERTLAB_RETEST_SIGNATORY")):
            if env.get(env_name):
                values[name] = env[env_name]
        url = values.get("record_webhook_url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            raise CertlabError(f"$CERTLAB_RECORD_WEBHOOK_URL={url!r}: not an http(s) URL; fix: give the "
                               f"subscriber's http:// or https:// address, or unset it")
        values["keeper_period"] = _number(env, "CERTLAB_RECORD_KEEPER_PERIOD", 5.0)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def firmware_dir(self) -> Path:
        return self.data_dir / "firmware"
