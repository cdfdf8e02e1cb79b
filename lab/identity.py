"""What a device says it is, against its documentation: model designation (5.3-16-2), security
implementations by name and version (5.5-2-2). Plain text judgements, no bench.

A name is found as a whole token (case-insensitive): "TH-100" is in "TH-100 firmware 1.4.0" but
not in "TH-1000" or "TH-100X", and version "9.2" is not in "OpenSSH_9.2p1".
"""

from __future__ import annotations

import re

_NAME_CHARS = "A-Za-z0-9"


def names(text: str, token: str) -> bool:
    """Whether `text` holds `token` as a whole token (not part of a longer name or number)."""
    if not token.strip():
        return False
    pattern = rf"(?<![{_NAME_CHARS}]){re.escape(token.strip())}(?![{_NAME_CHARS}])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _version_in(text: str, version: str) -> bool:
    """`version` as a whole version (no digit, letter or dot-and-digit right before or after it)."""
    pattern = rf"(?<![{_NAME_CHARS}.]){re.escape(version.strip())}(?![{_NAME_CHARS}]|\.[0-9])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def ssh_software(ident: str) -> str | None:
    """The softwareversion and comments of an SSH identification line (RFC 4253 4.2), or None if it is not one."""
    m = re.match(r"SSH-[0-9.]+-(\S+)(?: (.*))?$", ident.strip())
    if not m:
        return None
    return m.group(1) + (f" {m.group(2)}" if m.group(2) else "")


def implementation_problem(shown: str, name: str, version: str, where: str) -> str | None:
    """Why what the device showed at `where` is not implementation `name` `version`, or None if it names both."""
    has_name, has_version = names(shown.replace("_", " "), name), _version_in(shown.replace("_", " "), version)
    if has_name and has_version:
        return None
    missing = " and ".join(w for w, ok in (("name", has_name), ("version", has_version)) if not ok)
    return (f"{where} shows {shown[:120]!r}, which lacks the {missing} of the documented implementation "
            f"{name} {version} (IXIT 12-NetSecImpl)")


def designation_problem(shown: str, designation: str, where: str) -> str | None:
    """Why the output at `where` does not name the documented model designation, or None."""
    if names(shown, designation):
        return None
    first = " ".join(shown.split())[:120]
    return (f"{where} shows {first!r}, which does not name the documented model designation "
            f"{designation!r} (IXIT 2-UserInfo model_designation)")


def same_model(designation: str, model: str) -> bool:
    """Whether the documented designation and the sample's model (inventory) name the same model."""
    return names(designation, model) or names(model, designation)
