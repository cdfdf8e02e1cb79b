"""Parallel efficiency: the same suite on 1, 2, 4 and 8 simulated benches with `certlab run`.

Every bench tests its own sample with the same suite, so perfect scaling keeps the wall time
flat: `efficiency@8 = T1 / T8` is 1.0 then. Printed, never asserted. Each size runs on a
fresh result store; the lab stays up between sizes (each run power-cycles what it needs).
With `--baseline-code DIR` (another checkout, e.g. `git worktree add /tmp/old <rev>`) that
checkout's own bench/parallel.py runs first, with its own lab code, and both are printed side by side.

    sudo .venv/bin/python bench/parallel.py --baseline-code /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import sim_lab

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = "testsuites/en303645/test_5_9_resilience.py"
BASELINE_TIMEOUT_S = 4 * 3600  # all sizes of the other checkout; past this it is reported, not waited for
_WALL_LINE = re.compile(r"^benches=(\d+) wall_s=([\d.]+)", re.MULTILINE)


def certlab_run(inventory: Path, benches: list[str], suite: str, out: Path, extra: list[str]) -> tuple[float, dict, int]:
    env = {**os.environ, "CERTLAB_DATA_DIR": str(out / "store"), "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "lab.cli", "run", "-i", str(inventory), "--suite", suite, "--out", str(out), *extra]
    for b in benches:
        cmd += ["--bench", b]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - t0
    runs = sorted(p for p in out.iterdir() if (p / "verdicts.json").exists())
    doc = json.loads((runs[-1] / "verdicts.json").read_text()) if runs else {"results": []}
    return wall, doc, proc.returncode


def baseline_walls(code: Path, args: argparse.Namespace) -> dict[int, float]:
    """The other checkout's bench/parallel.py with the same arguments: its wall time per size."""
    cmd = [sys.executable, str(code / "bench" / "parallel.py"), "--suite", args.suite, "--sizes", args.sizes,
           "--power-cuts", str(args.power_cuts)]
    # its own lab package, lab.sim included: the venv's editable install would import ours
    env = {**os.environ, "PYTHONPATH": str(code)}
    try:
        proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True, timeout=BASELINE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"baseline ({code}) did not end within {BASELINE_TIMEOUT_S} s", flush=True)
        return {}
    print(f"baseline ({code}, exit {proc.returncode}):\n{proc.stdout.strip()}", flush=True)
    if proc.returncode != 0:
        print(proc.stderr.strip()[-2000:], flush=True)
    return {int(n): float(w) for n, w in _WALL_LINE.findall(proc.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite to run on every bench (default {DEFAULT_SUITE})")
    parser.add_argument("--sizes", default="1,2,4,8", help="bench counts, comma-separated (at most 8)")
    parser.add_argument("--power-cuts", type=int, default=2, help="power cuts per phase for the resilience suite")
    parser.add_argument("--baseline-code", type=Path, help="another checkout to measure first, for a side-by-side table")
    args = parser.parse_args()
    sizes = sorted({max(1, min(8, int(s))) for s in args.sizes.split(",")})
    extra = ["--power-cuts", str(args.power_cuts), "--seed", "7"]
    before = baseline_walls(args.baseline_code.resolve(), args) if args.baseline_code else {}
    if before:
        print("this checkout:", flush=True)
    walls: dict[int, float] = {}
    with sim_lab("bpar", max(sizes), scpi_port=16325, subnet=164) as (inv, sim):
        sim.up()
        with tempfile.TemporaryDirectory(prefix="certlab-bench-par-") as tmp:
            for n in sizes:
                benches = [f"b{i}" for i in range(1, n + 1)]
                wall, doc, rc = certlab_run(Path(inv.path), benches, args.suite, Path(tmp) / f"n{n}", extra)
                verdicts: dict[str, int] = {}
                for r in doc["results"]:
                    verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
                walls[n] = wall
                print(f"benches={n} wall_s={wall:.1f} exit={rc} results={len(doc['results'])} verdicts={verdicts}",
                      flush=True)
    print(f"cpus={os.cpu_count()} suite={args.suite}")
    base = walls[min(sizes)]
    for n in sizes:
        print(f"efficiency@{n}={base / walls[n]:.3f}")
    if before and min(sizes) in before:
        print(f"\n{'benches':>7} {'baseline wall s':>15} {'this wall s':>11} {'baseline eff':>12} {'this eff':>8}")
        for n in sizes:
            old = before.get(n)
            old_eff = f"{before[min(sizes)] / old:12.3f}" if old else f"{'-':>12}"
            old_wall = f"{old:15.1f}" if old else f"{'-':>15}"
            print(f"{n:>7} {old_wall} {walls[n]:11.1f} {old_eff} {base / walls[n]:8.3f}")


if __name__ == "__main__":
    main()
