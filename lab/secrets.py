"""References to secrets, resolved only at the moment of use.

An inventory names where a password lives (an environment variable or a file), never the
password itself, so inventories can be shared, committed and printed without leaking anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, model_validator

from lab.errors import CertlabError
from lab.inputfile import MAX_SECRET_BYTES, read_bounded_text


class SecretRef(BaseModel):
    """`{env: NAME}` or `{file: PATH}`; a relative PATH is relative to the inventory's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretRef":
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env: VARIABLE' or 'file: PATH'")
        return self

    def describe(self) -> str:
        """Where the secret lives, safe to print."""
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def resolve(self, base_dir: Path, *, field: str = "secret") -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise CertlabError(
                    f"{field}: environment variable {self.env} is not set; export it before running"
                )
            return value
        path = Path(os.path.expanduser(self.file or ""))
        if not path.is_absolute():
            path = base_dir / path
        try:  # a regular file only, size-bounded: a secret path at /dev/zero or a fifo must not hang a run
            return read_bounded_text(path, what="secret", limit=MAX_SECRET_BYTES).rstrip("\r\n")
        except CertlabError as exc:
            raise CertlabError(f"{field}: {exc}") from None

    def __repr__(self) -> str:  # never shows a value: there is none to show
        return f"SecretRef({self.describe()})"
