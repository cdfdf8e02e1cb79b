"""Banner grabbing: what a TCP service says first, as one readable line naming it.

The 5.6-1-2 scan names every undocumented open port by its banner; the evidence must read the
same whatever the service (telnet negotiation and terminal escapes removed).
"""

from __future__ import annotations

import re
import socket
import time

MAX_BANNER_BYTES = 1024


def readable(data: bytes) -> str:
    """Bytes a service sent, telnet negotiation removed, as one readable line."""
    data = re.sub(rb"\xff\xfa.*?\xff\xf0", b"", data, flags=re.S)  # telnet subnegotiation
    data = re.sub(rb"\xff[\xfb-\xfe].", b"", data)  # telnet WILL/WONT/DO/DONT
    text = data.decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:200]


def grab_banner(address: str, port: int, timeout: float = 1.5) -> str:
    """What a TCP service says first (or after an empty line): the evidence that names it.

    Bounded: two reads of at most `timeout` s each, at most MAX_BANNER_BYTES.
    """
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(0.3)
            data = b""
            for nudge in (None, b"\r\n"):
                if nudge:
                    s.sendall(nudge)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and len(data) < MAX_BANNER_BYTES:
                    try:
                        chunk = s.recv(1024)
                    except (TimeoutError, socket.timeout):
                        if readable(data):
                            break
                        continue
                    if not chunk:
                        break
                    data += chunk
                if readable(data):
                    break
    except OSError as exc:
        return f"(no banner: {exc})"
    return readable(data) or "(no banner)"
