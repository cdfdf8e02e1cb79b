"""An initramfs image (cpio "newc", the format the Linux kernel unpacks) written in Python.

Why not `cpio` or `busybox cpio`: the archive must hold root-owned files, a /dev/console device
node (the kernel opens it for init's stdio before anything mounts devtmpfs) and files that exist
only in memory (inittab, the boot script), none of which a directory on the host need contain.
Also: the kernel modules a set of modules needs, in an order that loads dependencies first.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"070701"
TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    """One archive member: a directory, regular file, symlink or device node (root-owned)."""

    path: str  # inside the archive, without a leading "/"
    mode: int  # full st_mode (type and permissions)
    data: bytes = b""  # file contents, or a symlink's target
    rdev: tuple[int, int] = (0, 0)


def directory(path: str, perm: int = 0o755) -> Entry:
    return Entry(path.strip("/"), stat.S_IFDIR | perm)


def file(path: str, data: bytes | str, perm: int = 0o644) -> Entry:
    return Entry(path.strip("/"), stat.S_IFREG | perm, data.encode() if isinstance(data, str) else data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path.strip("/"), stat.S_IFLNK | 0o777, target.encode())


def chardev(path: str, major: int, minor: int, perm: int = 0o600) -> Entry:
    return Entry(path.strip("/"), stat.S_IFCHR | perm, rdev=(major, minor))


def tree(root: Path, prefix: str = "") -> Iterator[Entry]:
    """Every directory, file and symlink under `root` (not following links), parents first."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            path = here / name
            rel = f"{prefix}/{path.relative_to(root)}".strip("/")
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                yield symlink(rel, os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                yield directory(rel, stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                yield file(rel, path.read_bytes(), stat.S_IMODE(st.st_mode))


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _member(ino: int, entry: Entry, mtime: int) -> bytes:
    name = entry.path.encode() + b"\0"
    fields = (ino, entry.mode, 0, 0, 2 if stat.S_ISDIR(entry.mode) else 1, mtime, len(entry.data),
              0, 0, entry.rdev[0], entry.rdev[1], len(name), 0)
    header = MAGIC + b"".join(b"%08X" % f for f in fields)
    return header + name + _pad(len(header) + len(name)) + entry.data + _pad(len(entry.data))


def archive(entries: Iterable[Entry], mtime: int = 0) -> bytes:
    """The newc archive of `entries`; a later entry with the same path replaces an earlier one."""
    members: dict[str, Entry] = {}
    for entry in entries:
        if not entry.path or entry.path.startswith("/") or ".." in entry.path.split("/"):
            raise ValueError(f"initramfs path {entry.path!r} must be relative, without '..'")
        members[entry.path] = entry
    parts = [_member(ino, e, mtime) for ino, e in enumerate(members.values(), start=1)]
    parts.append(_member(0, Entry(TRAILER, 0), 0))
    blob = b"".join(parts)
    return blob + _pad(len(blob))


def read_archive(blob: bytes) -> dict[str, Entry]:
    """The members of a newc archive (for tests, and to check what we built)."""
    out: dict[str, Entry] = {}
    pos = 0
    while pos + 110 <= len(blob):
        if blob[pos:pos + 6] != MAGIC:
            raise ValueError(f"bad cpio magic at offset {pos}")
        f = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        start = pos + 110
        name = blob[start:start + namesize - 1].decode()
        data_at = start + namesize + (-(110 + namesize) % 4)
        if name == TRAILER:
            break
        out[name] = Entry(name, mode, blob[data_at:data_at + size], (rmaj, rmin))
        pos = data_at + size + (-size % 4)
    return out


def module_index(modules_dir: Path) -> dict[str, Path]:
    """Module name (`virtio_net`) -> its .ko file under `modules_dir`/kernel."""
    index: dict[str, Path] = {}
    for dirpath, _, filenames in os.walk(modules_dir / "kernel"):
        for name in filenames:
            if name.endswith(".ko"):
                index[name[:-3].replace("-", "_")] = Path(dirpath, name)
    return index


def ko_depends(ko: bytes) -> list[str]:
    """The `depends=` list of a module's .modinfo section (what depmod turns into modules.dep)."""
    at = ko.find(b"\0depends=")
    if at < 0:
        return []
    value = ko[at + 9: ko.index(b"\0", at + 9)].decode()
    return [d.replace("-", "_") for d in value.split(",") if d]


def module_load_order(index: dict[str, Path], wanted: Iterable[str],
                      depends: Callable[[Path], list[str]] | None = None) -> list[Path]:
    """The .ko files of `wanted` modules and of everything they depend on, dependencies first.

    Debian's package ships no modules.dep (its postinst runs depmod), so the dependencies come
    from each module's own `depends=` field. A name missing from `index` is a KeyError naming it:
    a guest without its network driver is useless.
    """
    read = depends or (lambda path: ko_depends(path.read_bytes()))
    order: list[Path] = []

    def visit(name: str, depth: int) -> None:
        key = name.replace("-", "_")
        if key not in index:
            raise KeyError(f"kernel module {name} not found")
        if index[key] in order:
            return
        if depth > 32:
            raise ValueError(f"kernel module {name}: dependency chain too deep (a cycle?)")
        for dep in read(index[key]):
            visit(dep, depth + 1)
        if index[key] not in order:
            order.append(index[key])

    for name in wanted:
        visit(name, 0)
    return order
