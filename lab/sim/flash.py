"""Persistent flash with a write-back page cache, so a power cut loses what a real one would.

Data written without fsync lives only in this process's memory (the "page cache") until a
background writeback thread copies it to the real file after `dirty_expire_seconds`, or until
`fsync`/`sync`. A SIGKILL of the device process therefore loses exactly the un-synced data, as
pulling the plug does. Metadata (create, truncate, rename, unlink, mkdir) reaches the real
directory at once, which reproduces the classic "renamed but empty file" after a crash.

Paths are relative to the flash root ("data/notes.txt", "slots/a.img"), never absolute.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

log = logging.getLogger("certlab.sim.flash")

#: Above this many dirty bytes, writers flush everything at once (like vm.dirty_bytes).
DIRTY_LIMIT = 32 * 1024 * 1024


class FlashError(OSError):
    """A flash operation failed; `strerror` is the POSIX-style reason."""


@dataclass
class _Dirty:
    data: bytearray
    since: float = field(default_factory=time.monotonic)


class Flash:
    """One device's flash directory behind a write-back cache (thread-safe)."""

    def __init__(self, root: str | Path, *, dirty_expire_seconds: float = 5.0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.dirty_expire_seconds = float(dirty_expire_seconds)
        self._lock = threading.RLock()
        self._dirty: dict[str, _Dirty] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tmp_counter = itertools.count()

    # --- lifecycle -------------------------------------------------------------------------

    def start_writeback(self) -> None:
        """Start the background writeback thread (daemon: it dies with the process)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._writeback_loop, name="flash-writeback", daemon=True)
            self._thread.start()

    def stop_writeback(self) -> None:
        self._stop.set()

    def _writeback_loop(self) -> None:
        tick = min(0.5, max(0.05, self.dirty_expire_seconds / 5))
        while not self._stop.wait(tick):
            deadline = time.monotonic() - self.dirty_expire_seconds
            with self._lock:
                for rel in [r for r, d in self._dirty.items() if d.since <= deadline]:
                    self._flush(rel)

    # --- paths -----------------------------------------------------------------------------

    def _real(self, rel: str) -> Path:
        if rel in ("", "."):
            return self.root
        parts = PurePosixPath(rel).parts
        if not parts or any(p in ("..", "") for p in parts) or parts[0] == "/":
            raise FlashError(22, "Invalid argument", rel)
        return self.root.joinpath(*parts)

    @staticmethod
    def _key(rel: str) -> str:
        return str(PurePosixPath(rel))

    # --- reading ---------------------------------------------------------------------------

    def exists(self, rel: str) -> bool:
        return self._real(rel).exists()

    def is_dir(self, rel: str) -> bool:
        return self._real(rel).is_dir()

    def is_file(self, rel: str) -> bool:
        return self._real(rel).is_file()

    def listdir(self, rel: str) -> list[str]:
        real = self._real(rel)
        if not real.exists():
            raise FlashError(2, "No such file or directory", rel)
        if not real.is_dir():
            raise FlashError(20, "Not a directory", rel)
        return sorted(p.name for p in real.iterdir())

    def size(self, rel: str) -> int:
        with self._lock:
            d = self._dirty.get(self._key(rel))
            if d is not None:
                return len(d.data)
            return self._real(rel).stat().st_size

    def mtime(self, rel: str) -> float:
        return self._real(rel).stat().st_mtime

    def read(self, rel: str) -> bytes:
        """Current content as the running system sees it (cache first, then the real file)."""
        with self._lock:
            d = self._dirty.get(self._key(rel))
            if d is not None:
                return bytes(d.data)
            real = self._real(rel)
            if real.is_dir():
                raise FlashError(21, "Is a directory", rel)
            try:
                return real.read_bytes()
            except FileNotFoundError:
                raise FlashError(2, "No such file or directory", rel) from None

    # --- writing through the cache -----------------------------------------------------------

    def _create(self, rel: str) -> Path:
        real = self._real(rel)
        if real.is_dir():
            raise FlashError(21, "Is a directory", rel)
        if not real.parent.is_dir():
            raise FlashError(2, "No such file or directory", rel)
        if not real.exists():
            real.touch()  # metadata: immediate
        return real

    def _entry(self, rel: str) -> _Dirty:
        key = self._key(rel)
        d = self._dirty.get(key)
        if d is None:
            d = _Dirty(bytearray(self._real(rel).read_bytes()))
            self._dirty[key] = d
        return d

    def write(self, rel: str, data: bytes, *, append: bool = False) -> None:
        """Like open(O_CREAT | O_TRUNC or O_APPEND) + write: data stays dirty in memory."""
        with self._lock:
            real = self._create(rel)
            if append:
                self._entry(rel).data.extend(data)
            else:
                os.truncate(real, 0)  # O_TRUNC is metadata: immediate
                self._dirty.pop(self._key(rel), None)
                if data:
                    self._dirty[self._key(rel)] = _Dirty(bytearray(data))
            self._check_limit()

    def pwrite(self, rel: str, offset: int, data: bytes) -> None:
        """Write `data` at `offset` (creating the file), through the cache."""
        with self._lock:
            self._create(rel)
            buf = self._entry(rel).data
            if offset > len(buf):
                buf.extend(b"\0" * (offset - len(buf)))
            buf[offset : offset + len(data)] = data
            self._check_limit()

    def truncate(self, rel: str, size: int = 0) -> None:
        """Metadata: the real file is truncated at once (cached data beyond `size` is dropped)."""
        with self._lock:
            real = self._create(rel)
            os.truncate(real, size)
            d = self._dirty.get(self._key(rel))
            if d is not None:
                del d.data[size:]
                d.data.extend(b"\0" * (size - len(d.data)))

    def _check_limit(self) -> None:
        if sum(len(d.data) for d in self._dirty.values()) > DIRTY_LIMIT:
            self.sync()

    # --- persistence -----------------------------------------------------------------------

    def _flush(self, key: str) -> None:
        d = self._dirty.pop(key, None)
        if d is None:
            return
        real = self._real(key)
        try:
            with open(real, "r+b") as f:  # an unlinked file's dirty pages are simply dropped
                f.write(d.data)
                f.truncate(len(d.data))
        except FileNotFoundError:
            pass

    def fsync(self, rel: str) -> None:
        with self._lock:
            self._flush(self._key(rel))

    def sync(self) -> None:
        with self._lock:
            for key in list(self._dirty):
                self._flush(key)

    def dirty_paths(self) -> list[str]:
        with self._lock:
            return sorted(self._dirty)

    # --- metadata (immediate) ----------------------------------------------------------------

    def rename(self, src: str, dst: str) -> None:
        with self._lock:
            rsrc, rdst = self._real(src), self._real(dst)
            if not rsrc.exists():
                raise FlashError(2, "No such file or directory", src)
            os.replace(rsrc, rdst)
            moved = self._dirty.pop(self._key(src), None)
            self._dirty.pop(self._key(dst), None)
            if moved is not None:
                self._dirty[self._key(dst)] = moved

    def unlink(self, rel: str) -> None:
        with self._lock:
            real = self._real(rel)
            if real.is_dir():
                raise FlashError(21, "Is a directory", rel)
            try:
                real.unlink()
            except FileNotFoundError:
                raise FlashError(2, "No such file or directory", rel) from None
            self._dirty.pop(self._key(rel), None)

    def mkdir(self, rel: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        real = self._real(rel)
        try:
            real.mkdir(parents=parents, exist_ok=exist_ok)
        except FileExistsError:
            raise FlashError(17, "File exists", rel) from None
        except FileNotFoundError:
            raise FlashError(2, "No such file or directory", rel) from None

    def rmdir(self, rel: str) -> None:
        try:
            self._real(rel).rmdir()
        except FileNotFoundError:
            raise FlashError(2, "No such file or directory", rel) from None
        except OSError:
            raise FlashError(39, "Directory not empty", rel) from None

    def remove_tree(self, rel: str) -> None:
        """rm -r: the directory itself and everything under it (cached data included)."""
        with self._lock:
            prefix = self._key(rel) + "/"
            for key in [k for k in self._dirty if k.startswith(prefix) or k == self._key(rel)]:
                del self._dirty[key]
            real = self._real(rel)
            if real.is_dir():
                shutil.rmtree(real, ignore_errors=True)
            elif real.exists():
                real.unlink()

    def clear_dir(self, rel: str) -> None:
        """Empty a directory but keep it (wiping a partition)."""
        real = self._real(rel)
        if real.is_dir():
            for child in list(real.iterdir()):
                self.remove_tree(f"{self._key(rel)}/{child.name}")
        else:
            real.mkdir(parents=True, exist_ok=True)

    # --- composite writes --------------------------------------------------------------------

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Crash-safe replace: write a temp file, fsync it, rename it over the target."""
        key = self._key(rel)
        tmp = f"{key}.tmp-{os.getpid()}-{next(self._tmp_counter)}"
        self.write(tmp, data)
        self.fsync(tmp)
        self.rename(tmp, key)

    def write_in_place(
        self, rel: str, data: bytes, *, seconds: float = 0.0, chunks: int = 16, fsync: bool = False
    ) -> None:
        """Non-atomic rewrite: truncate now, then write `data` in `chunks` spread over `seconds`.

        A cut before the data is written back leaves a truncated or partial file.
        """
        self.truncate(rel, 0)
        chunks = max(1, chunks)
        step = max(1, -(-len(data) // chunks))
        pause = seconds / chunks if seconds > 0 else 0.0
        for offset in range(0, max(len(data), 1), step):
            self.pwrite(rel, offset, data[offset : offset + step])
            if pause:
                time.sleep(pause)
        if fsync:
            self.fsync(rel)
