"""What the orchestrator costs: `certlab run` against bare pytest and against pytest-xdist.

1. One bench: `certlab run --bench b1` against `pytest SUITE --inventory INV --bench b1` with the
   plugin (same suite, same DUT): ratio = certlab / pytest (aim: at most 1.05).
2. N benches: `certlab run` on b1..bN against `pytest -n N --dist loadgroup` (pytest-xdist, the
   plugin keeps each bench's tests on one xdist worker): ratio = certlab / xdist.
Runs alternate and repeat (`--repeat`, default 3); medians are printed, never asserted.
Needs pytest-xdist (`sh scripts/setup.sh --bench`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import sim_lab

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUITE = "testsuites/en303645/test_5_9_resilience.py"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600)
    return time.monotonic() - t0, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suite", default=DEFAULT_SUITE)
    parser.add_argument("--benches", type=int, default=4, help="benches for the xdist comparison (at most 8)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--power-cuts", type=int, default=2)
    args = parser.parse_args()
    try:
        import xdist  # noqa: F401 - only whether it is there
        have_xdist = True
    except ImportError:
        have_xdist = False
        print("pytest-xdist is not installed (sh scripts/setup.sh --bench): skipping the xdist comparison")
    n = max(1, min(8, args.benches))
    opts = ["--power-cuts", str(args.power_cuts), "--seed", "7"]
    samples: dict[str, list[float]] = {"pytest": [], "certlab1": [], "xdist": [], "certlabN": []}
    with sim_lab("bovh", n, scpi_port=16425, subnet=165) as (inv, sim):
        sim.up()
        inventory = str(inv.path)
        with tempfile.TemporaryDirectory(prefix="certlab-bench-ovh-") as tmp:
            env = {**os.environ, "CERTLAB_DATA_DIR": str(Path(tmp) / "store"), "COLUMNS": "120"}
            benches = [f"b{i}" for i in range(1, n + 1)]
            for k in range(max(1, min(args.repeat, 20))):
                out = Path(tmp) / f"r{k}"
                pytest_cmd = [sys.executable, "-m", "pytest", args.suite, "--inventory", inventory, "--bench", "b1",
                              "--certlab-out", str(out / "bare"), "--alluredir", str(out / "bare" / "allure-results"),
                              "-p", "no:cacheprovider", "-q", *opts]
                certlab_cmd = [sys.executable, "-m", "lab.cli", "run", "-i", inventory, "--suite", args.suite,
                               "--out", str(out / "certlab"), *opts]
                runs = [("pytest", pytest_cmd), ("certlab1", [*certlab_cmd, "--bench", "b1"])]
                if have_xdist:
                    xdist_cmd = [sys.executable, "-m", "pytest", args.suite, "--inventory", inventory,
                                 *[a for b in benches for a in ("--bench", b)], "-n", str(n), "--dist", "loadgroup",
                                 "--certlab-out", str(out / "xdist"), "-p", "no:cacheprovider", "-q", *opts]
                    runs += [("xdist", xdist_cmd), ("certlabN", [*certlab_cmd, *[a for b in benches for a in ("--bench", b)]])]
                for name, cmd in (runs if k % 2 == 0 else list(reversed(runs))):
                    wall, rc = timed(cmd, env)
                    samples[name].append(wall)
                    print(f"round={k + 1} {name} wall_s={wall:.2f} exit={rc}", flush=True)
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    print(f"suite={args.suite} cpus={os.cpu_count()}")
    print(f"bare_pytest_1_bench_s={med['pytest']:.2f} certlab_run_1_bench_s={med['certlab1']:.2f} "
          f"ratio_vs_pytest={med['certlab1'] / med['pytest']:.3f}")
    if have_xdist:
        print(f"xdist_{n}_benches_s={med['xdist']:.2f} certlab_run_{n}_benches_s={med['certlabN']:.2f} "
              f"ratio_vs_xdist={med['certlabN'] / med['xdist']:.3f}")


if __name__ == "__main__":
    main()
