"""Run the assessment on the same samples under several seeds and count what changes.

A verdict must not depend on the seed: the seeds pick the malformed inputs of 5.13, the moments
of the 5.9 power cuts and the order of the timing samples of 5.1-5-2, never whether a conforming
product passes. This runs `certlab run` once per seed (one after the other: the benches are the
same), then prints per seed the verdict counts and the run time, every FAIL with its reason, each new
INCONCLUSIVE reason once (assessor decisions still pending are only counted), and per test
case the verdicts that differed between seeds.

    sudo .venv/bin/certlab lab up -i inventory/sim-vm.yaml
    sudo .venv/bin/python bench/seed_sweep.py -i inventory/sim-vm.yaml --bench vm1 --seeds 10 --no-fail

`--no-fail` makes the exit status 1 when any FAIL appears (for a sample that is known to conform).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERDICTS = ("PASS", "FAIL", "INCONCLUSIVE", "NOT_APPLICABLE")
RUN_TIMEOUT_S = 3600  # one assessment of one sample; a run past this is reported, not waited for


def run_once(inventory: Path, benches: list[str], suite: str, seed: int, out: Path) -> tuple[list[dict], float, int]:
    args = [sys.executable, "-m", "lab.cli", "run", "-i", str(inventory), "--suite", suite, "--seed", str(seed),
            "--out", str(out)]
    for b in benches:
        args += ["--bench", b]
    start = time.monotonic()
    try:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return [], time.monotonic() - start, -1
    took = time.monotonic() - start
    runs = sorted(p for p in out.iterdir() if (p / "verdicts.json").exists())
    if not runs:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        return [], took, done.returncode
    return json.loads((runs[-1] / "verdicts.json").read_text())["results"], took, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", type=Path, required=True)
    parser.add_argument("--bench", action="append", required=True, help="bench to run on (repeatable)")
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds, 1..N")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--suite", default=str(ROOT / "testsuites" / "en303645"))
    parser.add_argument("--out", type=Path, help="keep the run directories here (default: a temporary folder)")
    parser.add_argument("--no-fail", action="store_true", help="exit 1 if any seed gives a FAIL")
    a = parser.parse_args()
    if not 1 <= a.seeds <= 100:
        parser.error("--seeds must be between 1 and 100")

    by_case: dict[tuple[str, str], Counter] = defaultdict(Counter)
    fails = 0
    shown: set[tuple] = set()  # an INCONCLUSIVE reason is printed once, at the first seed that gives it
    with tempfile.TemporaryDirectory(prefix="certlab-seeds-") as tmp:
        base = a.out or Path(tmp)
        print(f"{'seed':>5} {'time s':>7} {'exit':>4} " + " ".join(f"{v:>14}" for v in VERDICTS))
        for seed in range(a.first_seed, a.first_seed + a.seeds):
            out = base / f"seed-{seed}"
            out.mkdir(parents=True, exist_ok=True)
            results, took, code = run_once(a.inventory, a.bench, a.suite, seed, out)
            counts = Counter(r["verdict"] for r in results)
            print(f"{seed:>5} {took:>7.0f} {code:>4} " + " ".join(f"{counts.get(v, 0):>14}" for v in VERDICTS),
                  flush=True)
            causes: Counter = Counter()
            for r in results:
                by_case[(r["bench"], r["test_case"] or r["nodeid"])][r["verdict"]] += 1
                if r["verdict"] == "INCONCLUSIVE":
                    causes[r.get("cause") or "?"] += 1
                if r["verdict"] == "FAIL" or (r["verdict"] == "INCONCLUSIVE" and r.get("cause") != "assessment-pending"
                                              and (r["bench"], r["test_case"], r["reason"]) not in shown):
                    shown.add((r["bench"], r["test_case"], r["reason"]))
                    reason = (r["reason"] or "").splitlines()[0][:160] if r["reason"] else ""
                    print(f"        {r['verdict']:<12} {r['bench']} {r['test_case'] or r['nodeid']}: {reason}")
            if causes:
                print("        INCONCLUSIVE by cause: " + ", ".join(f"{c} {n}" for c, n in sorted(causes.items())))
            fails += counts.get("FAIL", 0)
            if not results:
                print(f"        no verdicts (exit {code}); see the run's output above")
                fails += 1 if a.no_fail else 0
    unstable = {k: c for k, c in by_case.items() if len(c) > 1}
    print(f"\n{len(by_case)} test cases x {a.seeds} seeds; FAIL results: {fails}; "
          f"test cases whose verdict changed with the seed: {len(unstable)}")
    for (bench, case), c in sorted(unstable.items()):
        print(f"  {bench} {case}: " + ", ".join(f"{v} x{n}" for v, n in sorted(c.items())))
    return 1 if a.no_fail and fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
