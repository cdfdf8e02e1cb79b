"""The off-the-shelf DUTs' firmware: a root filesystem of Debian's busybox and dropbear.

Shared by `lab.sim.ots_dut` (which chroots into it) and `lab.sim.vm_dut` (which packs it into
the initramfs of a virtual machine): the "firmware build" (busybox and its applet links, dropbear
and the libraries `ldd` lists, /etc) and the factory's per-unit provisioning (identity files,
dropbear host keys once per unit, /etc/shadow with the label password hashed by busybox's own
`mkpasswd`). Nothing here runs the device.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BUSYBOX = os.environ.get("CERTLAB_OTS_BUSYBOX") or shutil.which("busybox") or "/bin/busybox"
DROPBEAR = os.environ.get("CERTLAB_OTS_DROPBEAR") or shutil.which("dropbear") or "/usr/sbin/dropbear"
DROPBEARKEY = shutil.which("dropbearkey") or "/usr/bin/dropbearkey"
UNIVERSAL_PASSWORD = "admin"
ROOTFS_VERSION = 1  # bump when the layout below changes: every flash rebuilds its rootfs
HOST_KEYS = ("ed25519", "ecdsa")
PATH = "/sbin:/usr/sbin:/bin:/usr/bin"


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} rootfs[{os.getpid()}] {msg}", file=sys.stderr, flush=True)


def _stamp(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_size}:{int(st.st_mtime)}"


def libraries(binary: str) -> list[str]:
    """The shared objects `ldd` lists for a binary (none for a static one)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
    return re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", out)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically (temp file, fsync, rename): a power cut leaves the old file or the new."""
    tmp = path.with_name(f".{path.name}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def build_rootfs(flash: Path) -> Path:
    """DIR/flash/rootfs with busybox, dropbear and its libraries; rebuilt only when they change."""
    root, new, old = flash / "rootfs", flash / "rootfs.new", flash / "rootfs.old"
    if not root.exists() and old.exists():
        old.rename(root)  # a power cut between the two renames below
    want = json.dumps({"v": ROOTFS_VERSION, "busybox": _stamp(BUSYBOX), "dropbear": _stamp(DROPBEAR)})
    marker = root / "etc" / "certlab-rootfs"
    if marker.exists() and marker.read_text(encoding="utf-8") == want:
        return root
    log(f"building the root filesystem in {root}")
    shutil.rmtree(new, ignore_errors=True)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/dropbear", "root", "tmp", "proc", "dev", "run",
              "var/log", "home"):
        (new / d).mkdir(parents=True, exist_ok=True)
    os.chmod(new / "tmp", 0o1777)
    os.chmod(new / "root", 0o700)
    os.symlink("../run", new / "var/run")
    shutil.copy2(BUSYBOX, new / "bin/busybox")
    shutil.copy2(DROPBEAR, new / "usr/sbin/dropbear")
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, timeout=10).stdout.split()
    for rel in applets:
        link = new / rel
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink("/bin/busybox", link)
    for lib in {*libraries(BUSYBOX), *libraries(DROPBEAR)}:
        dest = new / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    etc = new / "etc"
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (etc / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    (etc / "shells").write_text("/bin/sh\n/bin/ash\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nshadow: files\nhosts: files\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    (etc / "profile").write_text("export PATH=" + PATH + "\nexport PS1='\\u@\\h:\\w\\$ '\numask 022\n")
    if root.exists():  # carry the unit's own state over: its password and host keys
        old_etc = root / "etc"
        for keep in ("shadow", "certlab-factory", *(f"dropbear/dropbear_{k}_host_key" for k in HOST_KEYS)):
            if (old_etc / keep).exists():
                shutil.copy2(old_etc / keep, etc / keep)
    write_atomic(etc / "certlab-rootfs", want)
    os.sync()
    if root.exists():
        root.rename(old)
    new.rename(root)
    shutil.rmtree(old, ignore_errors=True)
    return root


def provision(root: Path, cfg: dict[str, Any], os_id: str = "certlab-ots") -> None:
    """The factory's per-unit step: identity files every boot, keys and password once per unit."""
    etc = root / "etc"
    model, serial, firmware = str(cfg["model"]), str(cfg["serial"]), str(cfg["firmware"])
    write_atomic(etc / "hostname", hostname(cfg) + "\n")
    write_atomic(etc / "os-release", f'NAME="{model} firmware"\nID={os_id}\nVERSION_ID="{firmware}"\n'
                                     f'PRETTY_NAME="{model} firmware {firmware}"\n')
    write_atomic(etc / "issue", f"{model} firmware {firmware} (serial {serial})\n\n")
    for kind in HOST_KEYS:
        key = etc / "dropbear" / f"dropbear_{kind}_host_key"
        if not key.exists():
            tmp = key.with_name(key.name + ".new")
            tmp.unlink(missing_ok=True)
            subprocess.run([DROPBEARKEY, "-t", kind, "-f", str(tmp)], check=True, capture_output=True, timeout=60)
            os.replace(tmp, key)
    flaws = set(cfg.get("flaws") or [])
    password = UNIVERSAL_PASSWORD if "universal_default_password" in flaws else cfg.get("label_password")
    if not password:
        raise SystemExit("dut.json has no label_password (and no universal_default_password flaw)")
    # The factory marker keeps the salted hash it set, never the password: the label (or the flaw)
    # changed only if the password no longer hashes to it with the same salt.
    factory = etc / "certlab-factory"
    try:
        done = json.loads(factory.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        done = {}
    if (etc / "shadow").exists() and done.get("unit") == [model, serial] and \
            done.get("hash") == sha512crypt(password, done["hash"].split("$")[2]):
        return  # provisioned already: keep whatever password the user has set since
    hashed = sha512crypt(password)
    days = int(time.time() // 86400)
    write_atomic(etc / "shadow", f"root:{hashed}:{days}:0:99999:7:::\nnobody:*:{days}:0:99999:7:::\n", mode=0o600)
    write_atomic(factory, json.dumps({"unit": [model, serial], "hash": hashed}) + "\n", mode=0o600)
    log("factory provisioning: root password set")


def sha512crypt(password: str, salt: str | None = None) -> str:
    """crypt(3) SHA-512 by the device's own busybox; the password goes over stdin, never argv."""
    cmd = [BUSYBOX, "mkpasswd", "-m", "sha512", "-P", "0", *(["-S", salt] if salt else [])]
    hashed = subprocess.run(cmd, input=password, text=True, capture_output=True, check=True, timeout=10).stdout.strip()
    if not hashed.startswith("$6$"):
        raise SystemExit(f"busybox mkpasswd gave no SHA-512 hash ({hashed[:3]!r}...)")
    return hashed


def hostname(cfg: dict[str, Any]) -> str:
    """The unit's hostname: its serial in lower case (what getty's prompt shows)."""
    name = cfg.get("hostname") or cfg["serial"]
    return re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")[:63] or "ots"


