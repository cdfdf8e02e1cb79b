"""`certlab verify` at lab scale: a synthetic run directory with 10,000 evidence files.

Evidence file sizes are log-uniform between --min-kib and --max-kib (default 0.5-48 KiB, about
100 MB in all: console transcripts and small captures), spread over 20 benches. Prints the time
to sign (hash everything, write manifest.json and manifest.sig), to verify with the files evicted
from the page cache ("cold-ish": fdatasync + POSIX_FADV_DONTNEED per file, which touches only this
benchmark's files; the disk's own cache may still help) and with them cached ("warm", median of
--repeat), verify time per read-ahead window (0: none), and whether one flipped byte was named.
Printed, never asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from lab.reports.manifest import READAHEAD_FILES, sign_run, verify_run  # noqa: E402

BENCHES = 20


def make_run_dir(root: Path, rng: random.Random, files: int, min_kib: float, max_kib: float,
                 max_bytes: int) -> tuple[int, int]:
    """Write the synthetic run; returns (files, bytes) written, stopping early at max_bytes."""
    (root / "run.json").write_text('{"run_id": "bench-verify"}')
    (root / "verdicts.json").write_text('{"run_id": "bench-verify", "results": []}')
    pool = os.urandom(1 << 20)
    lo, hi = math.log(min_kib * 1024), math.log(max_kib * 1024)
    total = 0
    for n in range(files):
        size = min(int(math.exp(rng.uniform(lo, hi))), len(pool))
        if total + size > max_bytes:
            return n + 2, total
        folder = root / "evidence" / f"bench{n % BENCHES + 1:02d}" / f"test_{n // (BENCHES * 10):03d}"
        folder.mkdir(parents=True, exist_ok=True)
        off = rng.randrange(len(pool) - size + 1)
        (folder / f"evidence_{n:05d}.log").write_bytes(pool[off:off + size])
        total += size
    return files + 2, total


def evict(root: Path) -> bool:
    """Drop this run directory's pages from the page cache (flushing them first); False if unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for folder, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def timed_verify(run_dir: Path, key, readahead: int = READAHEAD_FILES) -> tuple[float, int, int, bool]:
    t0 = time.perf_counter()
    result = verify_run(run_dir, key, readahead=readahead)
    return time.perf_counter() - t0, result.files_checked, result.bytes_checked, result.intact


def rate(label: str, seconds: float, files: int, size: int) -> str:
    return (f"{label}_s={seconds:.3f} files_per_s={files / seconds:.0f} "
            f"MB_per_s={size / 1e6 / seconds:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--min-kib", type=float, default=0.5)
    parser.add_argument("--max-kib", type=float, default=48.0)
    parser.add_argument("--max-mb", type=float, default=300.0, help="bound on the bytes written")
    parser.add_argument("--repeat", type=int, default=3, help="warm verifies (median printed)")
    parser.add_argument("--readahead", default="0,8,64,256",
                        help="read-ahead windows (files) to compare, cold-ish and warm")
    parser.add_argument("--dir", type=Path, help="parent folder of the synthetic run (default: the temp folder)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    files = max(1, min(args.files, 200_000))
    min_kib = max(0.001, args.min_kib)
    max_kib = max(min_kib, min(args.max_kib, 1024.0))
    max_bytes = int(max(1.0, min(args.max_mb, 2000.0)) * 1e6)
    windows = sorted({max(0, min(int(w), 512)) for w in args.readahead.split(",") if w.strip()})
    rng = random.Random(args.seed)
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()

    with tempfile.TemporaryDirectory(prefix="certlab-bench-verify-", dir=args.dir) as tmp:
        run_dir = Path(tmp) / "bench-verify"
        run_dir.mkdir()
        t0 = time.perf_counter()
        count, size = make_run_dir(run_dir, rng, files, min_kib, max_kib, max_bytes)
        print(f"files={count} total_MB={size / 1e6:.1f} sizes={min_kib:g}-{max_kib:g}KiB(log-uniform) "
              f"benches={BENCHES} write_s={time.perf_counter() - t0:.2f} cpus={os.cpu_count()} "
              f"readahead_files={READAHEAD_FILES}")

        t0 = time.perf_counter()
        manifest = sign_run(run_dir, key)
        sign_s = time.perf_counter() - t0
        print(rate("sign(warm)", sign_s, len(manifest["files"]), size) +
              f" manifest_KB={(run_dir / 'manifest.json').stat().st_size / 1e3:.0f}")

        if evict(run_dir):
            seconds, n, b, ok = timed_verify(run_dir, pub)
            print(rate("verify_cold-ish", seconds, n, b) + f" intact={'yes' if ok else 'NO'}")
        else:
            print("verify_cold-ish: skipped (no posix_fadvise here)")
        warm = [timed_verify(run_dir, pub) for _ in range(max(1, min(args.repeat, 20)))]
        seconds = statistics.median(w[0] for w in warm)
        print(rate("verify_warm_median", seconds, warm[0][1], warm[0][2]) +
              f" runs={len(warm)} min_s={min(w[0] for w in warm):.3f} max_s={max(w[0] for w in warm):.3f}")
        for ahead in windows:
            cold = "skipped"
            if evict(run_dir):
                seconds, n, b, _ = timed_verify(run_dir, pub, ahead)
                cold = f"{seconds:.3f}"
            seconds, n, b, _ = timed_verify(run_dir, pub, ahead)
            print(f"readahead_files={ahead} verify_cold-ish_s={cold} verify_warm_s={seconds:.3f}")

        victim = sorted(manifest["files"])[len(manifest["files"]) // 2]
        path = run_dir / victim
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        result = verify_run(run_dir, pub)
        named = result.changed == [victim] and not result.missing and not result.added
        print(f"one_flipped_byte_named={'yes' if named else 'NO'} ({victim}) exit_would_be={0 if result.intact else 1}")


if __name__ == "__main__":
    main()
