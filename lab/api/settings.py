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
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def firmware_dir(self) -> Path:
        return self.data_dir / "firmware"
