"""RFC 9116 security.txt: parse, check, and verify its OpenPGP cleartext signature.

The signature is verified with the system's `gpgv` against the one public key the IXIT names, in a
temporary home (never the user's keyring), bounded by a timeout. Only the signed part of a signed
file is read (RFC 9116 section 2.3: what lies outside the signature is not the manufacturer's word).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from lab.errors import CertlabError, LabFault

BEGIN_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"
BEGIN_SIGNATURE = "-----BEGIN PGP SIGNATURE-----"
KNOWN = {"acknowledgments", "canonical", "contact", "encryption", "expires", "hiring", "policy",
         "preferred-languages", "csaf"}
GPG_SECONDS = 20.0


@dataclass(frozen=True)
class Field:
    name: str  # lower case
    value: str
    line: int


@dataclass(frozen=True)
class SecurityTxt:
    signed: bool  # a cleartext-signed OpenPGP message
    fields: tuple[Field, ...]
    malformed: tuple[str, ...] = ()  # lines that are neither fields, comments nor blank

    def values(self, name: str) -> list[str]:
        return [f.value for f in self.fields if f.name == name.lower()]


@dataclass(frozen=True)
class Verification:
    ok: bool
    detail: str
    status: tuple[str, ...] = field(default=())  # gpgv's --status-fd lines, for the evidence


def parse(text: str) -> SecurityTxt:
    """The fields of a security.txt (only the signed part when it is cleartext-signed)."""
    lines = text.replace("\r\n", "\n").split("\n")
    stripped = [line.rstrip() for line in lines]
    signed = BEGIN_SIGNED in stripped
    if signed:
        start = stripped.index(BEGIN_SIGNED) + 1
        while start < len(stripped) and stripped[start]:  # armor headers (Hash: ...) up to a blank line
            start += 1
        end = stripped.index(BEGIN_SIGNATURE) if BEGIN_SIGNATURE in stripped else len(stripped)
        body = [(n + 1, line[2:] if line.startswith("- ") else line) for n, line in enumerate(stripped)
                if start < n < end]
    else:
        body = [(n + 1, line) for n, line in enumerate(stripped)]
    fields, malformed = [], []
    for number, line in body:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9-]+):\s*(.*?)\s*$", line)
        if not m or not m.group(2):
            malformed.append(f"line {number}: {line[:80]!r}")
            continue
        fields.append(Field(m.group(1).lower(), m.group(2), number))
    return SecurityTxt(signed, tuple(fields), tuple(malformed))


def parse_expires(value: str) -> datetime | None:
    """An RFC 3339 date-time with its offset (RFC 9116 section 2.5.5), else None."""
    text = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", text):
        return None
    try:
        return datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None


def problems(st: SecurityTxt, *, now: datetime, url: str, content_type: str | None) -> list[str]:
    """What makes the file invalid under RFC 9116's MUSTs, each a sentence naming the field."""
    found: list[str] = []
    if content_type is not None and not content_type.lower().startswith("text/plain"):
        found.append(f"served as {content_type!r}, not text/plain (RFC 9116 section 3)")
    contacts = st.values("contact")
    if not contacts:
        found.append("no Contact field (RFC 9116 section 2.5.3 requires at least one)")
    for contact in contacts:
        if not re.match(r"^(mailto:|https://|tel:)", contact, re.I):
            found.append(f"Contact {contact!r} is not a mailto:, https:// or tel: URI (RFC 9116 section 2.5.3)")
    expires = st.values("expires")
    if not expires:
        found.append("no Expires field (RFC 9116 section 2.5.5 requires exactly one)")
    elif len(expires) > 1:
        found.append(f"{len(expires)} Expires fields (RFC 9116 section 2.5.5 allows exactly one)")
    else:
        when = parse_expires(expires[0])
        if when is None:
            found.append(f"Expires {expires[0]!r} is not an RFC 3339 date-time with its offset")
        elif when <= now:
            found.append(f"expired: Expires {expires[0]} is in the past (checked at "
                         f"{now.astimezone(timezone.utc).isoformat(timespec='seconds')})")
    canonical = st.values("canonical")
    if canonical and url not in canonical:
        found.append(f"fetched from {url}, which is none of its Canonical URIs {canonical} (RFC 9116 section 2.5.2)")
    for name in ("policy", "canonical", "encryption", "acknowledgments", "hiring"):
        for value in st.values(name):
            if value.lower().startswith("http://"):
                found.append(f"{name.capitalize()} {value!r} is not https (RFC 9116 section 2.5)")
    for line in st.malformed:
        found.append(f"malformed {line}")
    return found


def verify(text: str, key_file: Path, *, timeout: float = GPG_SECONDS) -> Verification:
    """Is `text` a cleartext-signed message by the key in `key_file` (armored or binary)?

    The key goes into a keyring in a fresh temporary directory; `gpgv` reads only that.
    Bad key file: CertlabError (the IXIT's openpgp_key); gpg missing or hung: LabFault.
    """
    gpg, gpgv = shutil.which("gpg"), shutil.which("gpgv")
    if not gpg or not gpgv:
        raise LabFault("gpg/gpgv are not installed on the lab host: apt-get install gnupg (system-packages.txt)")
    if not key_file.is_file():
        raise CertlabError(f"{key_file}: no such file (2-UserInfo.publication.security_txt.openpgp_key in the IXIT)")
    with tempfile.TemporaryDirectory(prefix="certlab-gpg-") as home:
        keyring = Path(home) / "key.gpg"
        message = Path(home) / "security.txt"
        message.write_text(text, encoding="utf-8")
        env = {"GNUPGHOME": home, "PATH": "/usr/bin:/bin", "LC_ALL": "C"}
        base = [gpg, "--batch", "--no-options", "--homedir", home]
        try:
            show = subprocess.run([*base, "--with-colons", "--show-keys", str(key_file)], capture_output=True,
                                  env=env, timeout=timeout)
            if show.returncode != 0 or not any(line.startswith(b"pub:") for line in show.stdout.splitlines()):
                raise CertlabError(f"{key_file}: not an OpenPGP public key; give the armored key that signs "
                                   "security.txt (2-UserInfo.publication.security_txt.openpgp_key in the IXIT)")
            key = key_file.read_bytes()
            if key.lstrip().startswith(b"-----BEGIN"):
                subprocess.run([*base, "--dearmor", "--output", str(keyring), str(key_file)], capture_output=True,
                               env=env, timeout=timeout, check=True)
            else:
                keyring.write_bytes(key)
            run = subprocess.run([gpgv, "--homedir", home, "--keyring", str(keyring), "--status-fd", "1", "--",
                                  str(message)], capture_output=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabFault(f"gpg did not finish within {timeout:g} s verifying security.txt") from None
        except subprocess.CalledProcessError as exc:
            raise CertlabError(f"{key_file}: gpg cannot read the key ({exc.stderr.decode(errors='replace').strip()}); "
                               "fix 2-UserInfo.publication.security_txt.openpgp_key in the IXIT") from None
    status = tuple(line[len("[GNUPG:] "):] for line in run.stdout.decode(errors="replace").splitlines()
                   if line.startswith("[GNUPG:] "))
    words = {line.split()[0] for line in status if line.split()}
    stderr = run.stderr.decode(errors="replace")
    if run.returncode == 0 and "GOODSIG" in words and "VALIDSIG" in words:
        who = next((line.split(" ", 2)[2] for line in status if line.startswith("GOODSIG") and
                    len(line.split(" ", 2)) == 3), "the IXIT's key")
        return Verification(True, f"good signature by {who}", status)
    if "BADSIG" in words:
        return Verification(False, "the signature does not match the text: the signed content was altered", status)
    if "NO_PUBKEY" in words or "ERRSIG" in words:
        return Verification(False, "signed by a key other than the one the IXIT names", status)
    if "NODATA" in words or not words:
        return Verification(False, "no OpenPGP signature found", status)
    return Verification(False, f"gpgv refused it ({stderr.strip().splitlines()[-1] if stderr.strip() else run.returncode})",
                        status)
