"""The lab's Ed25519 signing key: make it, keep it private, hand its public half to certifiers.

A key folder holds three files:

    signing_key.pem   the private key (PKCS8 PEM), mode 0600; encrypted with the passphrase in
                      CERTLAB_KEY_PASSPHRASE when that is set at `certlab keys init`
    public_key.pem    the public key (SubjectPublicKeyInfo PEM) certifiers verify runs with
    fingerprint.txt   a short fingerprint of the public key, to compare over the phone

The folder is `--dir`, else `$CERTLAB_KEY_DIR`, else `~/.config/certlab/keys`; a folder certlab
creates gets mode 0700 (an existing folder is left as it is: the key file's own 0600 protects it).
Every problem is a one-line CertlabError naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lab.errors import CertlabError
from lab.inputfile import MAX_KEY_BYTES, read_bounded

PRIVATE_KEY_FILE = "signing_key.pem"
PUBLIC_KEY_FILE = "public_key.pem"
FINGERPRINT_FILE = "fingerprint.txt"
KEY_DIR_ENV = "CERTLAB_KEY_DIR"
PASSPHRASE_ENV = "CERTLAB_KEY_PASSPHRASE"


@dataclass(frozen=True)
class KeyFiles:
    """Where `init_keys` put the keys, and the fingerprint certifiers compare."""

    folder: Path
    private_key: Path
    public_key: Path
    fingerprint_file: Path
    fingerprint: str
    encrypted: bool


def default_key_dir() -> Path:
    env = os.environ.get(KEY_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".config" / "certlab" / "keys"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """First 64 bits of sha256(raw public key), hex in groups of four: short enough to read aloud.

    For humans only: verification always uses the full key.
    """
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return ":".join(digest[i:i + 4] for i in range(0, 16, 4))


def init_keys(folder: Path | None = None, *, force: bool = False) -> KeyFiles:
    """Make a new lab key pair in `folder`; refuse to replace an existing one unless `force`."""
    folder = Path(folder).expanduser() if folder is not None else default_key_dir()
    priv_path, pub_path, fpr_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE, folder / FINGERPRINT_FILE
    if not force:
        for path in (priv_path, pub_path):
            if path.exists() or path.is_symlink():
                raise CertlabError(f"{path}: a lab key already exists; fix: keep it, or replace it with "
                                   f"`certlab keys init --force` (runs signed with the old key then verify "
                                   f"only with the old public key)")
    _make_folder(folder)
    key = Ed25519PrivateKey.generate()
    passphrase = os.environ.get(PASSPHRASE_ENV) or ""
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    pub = key.public_key()
    fpr = fingerprint(pub)
    _write(priv_path, pem, 0o600)
    _write(pub_path, pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
           0o644)
    _write(fpr_path, f"certlab lab signing key, sha256 fingerprint: {fpr}\n".encode(), 0o644)
    return KeyFiles(folder, priv_path, pub_path, fpr_path, fpr, bool(passphrase))


def load_private_key(path: Path | None = None) -> Ed25519PrivateKey:
    """The lab's private key; refuses a file that group or others can read."""
    path = Path(path) if path is not None else default_key_dir() / PRIVATE_KEY_FILE
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CertlabError(f"{path}: no lab signing key; fix: make one with `certlab keys init` "
                           f"(or point {KEY_DIR_ENV} at the folder that holds it)") from None
    except OSError as exc:
        raise CertlabError(f"{path}: cannot read the lab signing key ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise CertlabError(f"{path}: not a regular file; fix: give the signing_key.pem `certlab keys init` wrote")
    if st.st_mode & 0o077:
        raise CertlabError(f"{path}: the private key is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                           f"fix: chmod 600 {path}")
    data = _read(path, "lab signing key")
    encrypted = b"ENCRYPTED PRIVATE KEY" in data
    passphrase = os.environ.get(PASSPHRASE_ENV) or ""
    if encrypted and not passphrase:
        raise CertlabError(f"{path}: the private key is encrypted; fix: set {PASSPHRASE_ENV} to its passphrase")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode() if encrypted else None)
    except ValueError:
        if encrypted:
            raise CertlabError(f"{path}: wrong passphrase in {PASSPHRASE_ENV} (or a damaged key file); "
                               f"fix: set the passphrase given at `certlab keys init`") from None
        raise CertlabError(f"{path}: not a PEM private key; fix: give the signing_key.pem "
                           f"`certlab keys init` wrote") from None
    except TypeError as exc:  # encryption marker and content disagree
        raise CertlabError(f"{path}: unreadable private key ({exc}); fix: make a new one with "
                           f"`certlab keys init --force`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CertlabError(f"{path}: not an Ed25519 key; fix: make the lab key with `certlab keys init`")
    return key


def load_public_key(path: Path | None = None) -> Ed25519PublicKey:
    """A lab's public key (PEM), as `certlab keys init` exported it."""
    path = Path(path) if path is not None else default_key_dir() / PUBLIC_KEY_FILE
    if not path.is_file():
        raise CertlabError(f"{path}: no public key there; fix: give the lab's public_key.pem with --pubkey FILE "
                           f"(or make the lab key with `certlab keys init`)")
    data = _read(path, "public key")
    if b"PRIVATE KEY" in data:
        raise CertlabError(f"{path}: this is a private key; fix: give the public key ({PUBLIC_KEY_FILE}) "
                           f"and keep the private key secret")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise CertlabError(f"{path}: not a PEM public key; fix: give the {PUBLIC_KEY_FILE} "
                           f"`certlab keys init` exported") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CertlabError(f"{path}: not an Ed25519 public key; fix: give the {PUBLIC_KEY_FILE} "
                           f"`certlab keys init` exported")
    return key


def _make_folder(folder: Path) -> None:
    try:
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise CertlabError(f"{folder}: cannot create the key folder ({exc.strerror}); "
                           f"fix: give a writable folder with --dir") from None


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a fresh file created with `mode`: the key is never readable by others, not even briefly."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
            f.write(data)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)
    except OSError as exc:
        raise CertlabError(f"{path}: cannot write ({exc.strerror}); fix: give a writable folder with --dir") from None


def _read(path: Path, what: str) -> bytes:
    return read_bounded(path, what=what, limit=MAX_KEY_BYTES)  # a regular file only, size-bounded
