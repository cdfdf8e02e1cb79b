"""Timestamped evidence transcripts (console, SSH): what was sent and received, and when.

A certifier reads these to check a verdict, so every line carries a UTC timestamp with
microseconds and a direction marker (`<` received, `>` sent, `#` note). A CRLF counts as a line end.
Lines are flushed as they are written, so a crash or a power cut of the lab PC loses nothing already seen.
Secrets never reach the file: sent secrets are written as `********`, and any text registered
with `add_secret()` is masked wherever it appears later (e.g. a DUT echoing a password).
"""

from __future__ import annotations

import datetime as _dt
import threading
from pathlib import Path
from typing import TextIO

REDACTED = "********"
RECEIVED, SENT, NOTE = "<", ">", "#"


def _escape(text: str) -> str:
    """Control characters as visible escapes, so a transcript line is always one line."""
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


class Transcript:
    """Append-only evidence file; safe to share between a reader thread and the test thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._secrets: set[str] = set()

    # --- public API ------------------------------------------------------------------------
    def add_secret(self, value: str | None) -> None:
        """Mask `value` wherever it shows up in later records (too-short values are ignored)."""
        if value and len(value) >= 3:
            with self._lock:
                self._secrets.add(value)

    def record_received(self, text: str) -> None:
        self._write(RECEIVED, text)

    def record_sent(self, text: str, *, secret: bool = False) -> None:
        if secret:
            self.add_secret(text.strip("\r\n"))
            self._write(SENT, REDACTED, split=False)
        else:
            self._write(SENT, text)

    def note(self, text: str) -> None:
        self._write(NOTE, text)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Transcript:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def _write(self, marker: str, text: str, *, split: bool = True) -> None:
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        with self._lock:
            text = self._redact(text)
            pieces = text.split("\n") if split else [text]
            if split and len(pieces) > 1 and pieces[-1] == "":
                pieces.pop()  # a chunk ending in a newline is not followed by an empty line
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._file.write("".join(f"{stamp} {marker} {_escape(p.removesuffix(chr(13)) if split else p)}\n"
                                     for p in pieces))  # CRLF is a line end, not a visible \r
            self._file.flush()
