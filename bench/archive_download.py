"""Run archive downloads: the old per-call gzip against the archive built once per report version.

Writes a signed synthetic run directory (--files evidence files, about --mb MB in all: 70 % console
transcripts and logs, which gzip well, 30 % captures and images, which do not; sizes log-uniform
between --min-kib and --max-kib, over 20 benches, as bench/verify.py spreads them) and measures, in
this process (CPU = time.process_time over all threads, wall = time.monotonic):

  old  : N concurrent downloads, each tar+gzipping the run in its own thread (what GET
         /runs/{id}/report/archive did on every call, re-implemented here as the baseline)
  cold : 1 download with nothing stored (build, record, verify, send)
  new  : N concurrent downloads of a report not built yet (one build; the rest wait for it)
  warm : N concurrent downloads of the stored archive (hash check, send)

"send" reads the file in 64 KiB chunks, as FileResponse does; the socket is left out of both
ways alike. Prints the figures side by side and the old/new ratios. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from lab.reports.archive import ReportArchives  # noqa: E402
from lab.reports.manifest import sign_run  # noqa: E402

BENCHES = 20
SEND_CHUNK = 1 << 16
JOIN_S = 1800.0  # bound on any one download
WORDS = ("Starting kernel", "eth0: link up", "dropbear[212]: Child connection from 10.0.0.2:52114",
         "mqtt: connected to broker", "ota: checking for updates", "GET /api/status 200", "ntp: clock synced",
         "login: root", "Password:", "sshd: Failed password for admin", "thermostat: setpoint 21.5 C")


def make_run_dir(run_dir: Path, rng: random.Random, files: int, total_mb: float, min_kib: float,
                 max_kib: float) -> tuple[int, int]:
    """Write the synthetic run; returns (files, bytes) written, stopping early at total_mb."""
    (run_dir / "run.json").write_text(f'{{"run_id": "{run_dir.name}"}}')
    (run_dir / "verdicts.json").write_text(f'{{"run_id": "{run_dir.name}", "results": []}}')
    noise = os.urandom(1 << 20)
    text = "".join(f"[{i:08.3f}] {rng.choice(WORDS)} ({rng.randrange(1 << 16):04x})\n" for i in range(40_000)).encode()
    lo, hi = math.log(min_kib * 1024), math.log(max_kib * 1024)
    total, limit = 0, int(total_mb * 1e6)
    for n in range(files):
        binary = rng.random() < 0.3
        pool = noise if binary else text
        size = min(int(math.exp(rng.uniform(lo, hi))), len(pool))
        if total + size > limit:
            return n + 2, total
        folder = run_dir / "evidence" / f"bench{n % BENCHES + 1:02d}" / f"test_{n // (BENCHES * 10):03d}"
        folder.mkdir(parents=True, exist_ok=True)
        off = rng.randrange(len(pool) - size + 1)
        (folder / f"evidence_{n:05d}.{'pcap' if binary else 'log'}").write_bytes(pool[off:off + size])
        total += size
    return files + 2, total


# --- the old way, as lab/api/routes/reports.py had it -----------------------------------------

class _PipeWriter:
    def __init__(self, fd: int) -> None:
        self.fh = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> int:
        self.fh.write(data)
        return len(data)

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass


def old_archive(run_dir: Path, arcname: str) -> Iterator[bytes]:
    """The per-call archive: tar.gz made in a new thread into a pipe, read in 64 KiB chunks."""
    read_fd, write_fd = os.pipe()
    writer = _PipeWriter(write_fd)

    def produce() -> None:
        try:
            with tarfile.open(fileobj=writer, mode="w|gz") as tar:  # type: ignore[call-overload]
                tar.add(run_dir, arcname=arcname)
        except OSError:
            pass
        finally:
            writer.close()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as reader:
        while chunk := reader.read(SEND_CHUNK):
            yield chunk
    thread.join(timeout=5)


def old_download(run_dir: Path) -> int:
    return sum(len(chunk) for chunk in old_archive(run_dir, run_dir.name))


def new_download(archives: ReportArchives, run_dir: Path, root: Path) -> int:
    path = archives.ready(run_dir, root)
    sent = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(SEND_CHUNK):
            sent += len(chunk)
    return sent


def measure(label: str, downloads: int, one: Callable[[], int]) -> tuple[float, float, int]:
    """(CPU s, wall s, bytes of one download) of `downloads` concurrent calls of `one`."""
    sizes: list[int] = []
    threads = [threading.Thread(target=lambda: sizes.append(one()), name=f"{label}-{i}") for i in range(downloads)]
    cpu0, wall0 = time.process_time(), time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    if len(sizes) != downloads:
        raise SystemExit(f"{label}: {downloads - len(sizes)} downloads did not finish within {JOIN_S:g} s")
    return cpu, wall, max(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--mb", type=float, default=200.0, help="evidence bytes in all (MB), at most")
    parser.add_argument("--min-kib", type=float, default=0.5)
    parser.add_argument("--max-kib", type=float, default=96.0)
    parser.add_argument("--concurrent", type=int, default=4, help="downloads at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = max(1, min(args.concurrent, 32))

    with tempfile.TemporaryDirectory(prefix="certlab-bench-archive-") as tmp:
        run_dir = Path(tmp) / "reports" / "20261201-000000-bencharc"
        run_dir.mkdir(parents=True)
        files, size = make_run_dir(run_dir, random.Random(args.seed), args.files, args.mb, args.min_kib,
                                   args.max_kib)
        sign_run(run_dir, Ed25519PrivateKey.generate())
        print(f"synthetic signed run: {files} files, {size / 1e6:.0f} MB; {os.cpu_count()} CPUs; "
              f"{n} concurrent downloads")

        old = measure("old", n, lambda: old_download(run_dir))
        cold_store = ReportArchives()
        cold = measure("cold", 1, lambda: new_download(cold_store, run_dir, Path(tmp) / "cold"))
        fresh = ReportArchives()
        new = measure("new", n, lambda: new_download(fresh, run_dir, Path(tmp) / "new"))
        warm = measure("warm", n, lambda: new_download(fresh, run_dir, Path(tmp) / "new"))

        print(f"{'':34} {'CPU s':>8} {'wall s':>8}  archive")
        for label, (cpu, wall, got) in ((f"old: {n} at once, gzip per call", old), ("cold: 1, built and sent", cold),
                                        (f"new: {n} at once, not built yet", new),
                                        (f"warm: {n} at once, stored", warm)):
            print(f"{label:34} {cpu:8.2f} {wall:8.2f}  {got / 1e6:.1f} MB")
        print(f"builds: {fresh.built} for {2 * n} new-way downloads")
        print(f"old/new ({n} at once, not built yet): CPU x{old[0] / max(new[0], 1e-9):.1f}, "
              f"wall x{old[1] / max(new[1], 1e-9):.1f}; old/warm: CPU x{old[0] / max(warm[0], 1e-9):.1f}, "
              f"wall x{old[1] / max(warm[1], 1e-9):.1f}")


if __name__ == "__main__":
    main()
