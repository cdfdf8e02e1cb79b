"""Parallel efficiency: the same suite on 1, 2, 4 and 8 simulated benches with `certlab run`.

Every bench tests its own sample with the same suite, so perfect scaling keeps the wall time
flat: `efficiency@8 = T1 / T8` is 1.0 then. Printed, never asserted. Each size runs on a
fresh result store; the lab stays up between sizes (each run power-cycles what it needs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import sim_lab

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = "testsuites/en303645/test_5_9_resilience.py"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite to run on every bench (default {DEFAULT_SUITE})")
    parser.add_argument("--sizes", default="1,2,4,8", help="bench counts, comma-separated (at most 8)")
    parser.add_argument("--power-cuts", type=int, default=2, help="power cuts per phase for the resilience suite")
    args = parser.parse_args()
    sizes = sorted({max(1, min(8, int(s))) for s in args.sizes.split(",")})
    extra = ["--power-cuts", str(args.power_cuts), "--seed", "7"]
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


if __name__ == "__main__":
    main()
