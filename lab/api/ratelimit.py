"""A token bucket per key (an API token's hash, a login name and address): bursts pass, floods get 429.

`RateLimiter(per_second, burst)` keeps its buckets in this process's memory (tools, tests).
`RateLimiter(per_second, burst, path=rate_limit_file(data_dir, "api"))` keeps them in one small
file that every process opening it shares: the workers of `certlab serve --workers N` draw from
one budget per token, so N workers do not grant N times the rate. The app holds the limiter (no
module state).

The file is a fixed table of slots (a key's 16-byte digest, its tokens, the time of its last
call) mapped into memory; a call takes `flock` on the file (and a thread lock: flock belongs to
the open file, which this process's threads share), reads and writes one slot, and lets go:
a few microseconds, so the API's thousand reads a second do not queue on it. A process that
dies holding the lock loses it with its file. Keys are found by open addressing in a short
window; when the window is full the slot idle longest is reused (at worst that key starts again
with a full burst). Times are CLOCK_MONOTONIC, one clock for every process of this machine; a
slot stamped in the future (the machine rebooted) counts as full.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from lab.errors import CertlabError
from lab.ownerfiles import FILE_MODE, private_dir

MAGIC = b"certlab-ratelimit-v1\0\0\0\0"  # 24 bytes; a file without it is laid out afresh
SLOTS = 8192  # distinct keys held at once (live tokens, login names): far above a lab's users
WINDOW = 32  # slots probed for a key
HEADER = struct.Struct("<24sQ")  # magic, slot count
SLOT = struct.Struct("<16sdd")  # key digest, tokens, last call (monotonic seconds)
EMPTY = bytes(16)
SIZE = HEADER.size + SLOTS * SLOT.size


def rate_limit_file(data_dir: Path, name: str) -> Path:
    """Where the buckets named `name` ("api", "login") of servers on `data_dir` live."""
    return Path(data_dir) / "ratelimit" / f"{name}.buckets"


def take(tokens: float, last: float, now: float, per_second: float, burst: float) -> tuple[float, float]:
    """(tokens left after this call, seconds to wait): the bucket refilled since `last`, one token taken if there is one."""
    if now < last:  # stamped by a previous boot's clock: the bucket has long refilled
        tokens = burst
    else:
        tokens = min(burst, tokens + (now - last) * per_second)
    if tokens >= 1:
        return tokens - 1, 0.0
    return tokens, (1 - tokens) / per_second


def _digest(key: str) -> bytes:
    raw = bytearray(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest())
    raw[0] |= 1  # never all zeros: that marks an empty slot
    return bytes(raw)


class _Table:
    """The mapped file of slots, opened by one process (reopened after a fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        try:
            private_dir(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | os.O_NOFOLLOW, FILE_MODE)
        except OSError as exc:
            raise CertlabError(f"rate limit file {path}: cannot open it ({exc.strerror}); fix: set "
                               f"CERTLAB_DATA_DIR to a folder this user can write") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size != SIZE or os.pread(fd, HEADER.size, 0) != HEADER.pack(MAGIC, SLOTS):
                    os.ftruncate(fd, 0)  # new, or not ours: lay it out afresh (all slots empty)
                    os.ftruncate(fd, SIZE)
                    os.pwrite(fd, HEADER.pack(MAGIC, SLOTS), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self.map = mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            os.close(fd)
            raise CertlabError(f"rate limit file {path}: cannot use it ({exc.strerror}); fix: set "
                               f"CERTLAB_DATA_DIR to a folder on a local disk this user can write") from None
        self.fd = fd
        self._closer = weakref.finalize(self, _close, fd, self.map)

    def close(self) -> None:
        self._closer()

    def slot_of(self, digest: bytes) -> tuple[int, bool]:
        """(offset of the key's slot, whether it holds the key already); call under the lock."""
        start = int.from_bytes(digest[:8], "little") % SLOTS
        oldest_at, oldest_last = -1, float("inf")
        for i in range(WINDOW):
            at = HEADER.size + ((start + i) % SLOTS) * SLOT.size
            held, _tokens, last = SLOT.unpack_from(self.map, at)
            if held == digest:
                return at, True
            if held == EMPTY:  # slots are never emptied: the key is not further on
                return at, False
            if last < oldest_last:
                oldest_at, oldest_last = at, last
        return oldest_at, False


def _close(fd: int, mapped: mmap.mmap) -> None:
    try:
        mapped.close()
    finally:
        os.close(fd)


class RateLimiter:
    """`allow(key)`: 0 when the call may go ahead, else the seconds to wait before the next one will."""

    def __init__(self, per_second: float, burst: float, path: Path | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = burst
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # in memory (no path): key -> (tokens, last)
        self._table = _Table(path) if path is not None else None

    def allow(self, key: str) -> float:
        if self._table is None:
            with self._lock:
                now = self.clock()
                tokens, last = self._buckets.get(key, (self.burst, now))
                tokens, wait = take(tokens, last, now, self.per_second, self.burst)
                self._buckets[key] = (tokens, now)
                return wait
        digest = _digest(key)
        with self._lock:
            table = self._own_table()
            fcntl.flock(table.fd, fcntl.LOCK_EX)
            try:
                now = self.clock()
                at, found = table.slot_of(digest)
                tokens, last = SLOT.unpack_from(table.map, at)[1:] if found else (self.burst, now)
                tokens, wait = take(tokens, last, now, self.per_second, self.burst)
                SLOT.pack_into(table.map, at, digest, tokens, now)
                return wait
            finally:
                fcntl.flock(table.fd, fcntl.LOCK_UN)

    def _own_table(self) -> _Table:
        """This process's mapping: a forked child opens its own (a shared open file would share its lock)."""
        assert self._table is not None
        if self._table.pid != os.getpid():
            self._table = _Table(self._table.path)
        return self._table

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
