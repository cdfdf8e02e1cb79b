"""Where a suite's time goes on one bench: per test case, its wall time and the share of it spent
waiting on the bench's drivers (console, SSH, scans, captures, power), as measured by the
plugin's StepClock (instrumented: the time during which a driver step was in progress), not
estimated.

The suite runs under pytest on one bench of a lab that is up, with JUnit XML output (each
test's total of setup, call and teardown, and its `driver_seconds_<phase>` properties) and the
plugin's verdicts.json. Prints the table slowest first, then the totals; with `--baseline-code`
it runs the same suite from another checkout first (e.g. `git worktree add /tmp/old <rev>`) and
prints both totals and their ratio.

    sudo .venv/bin/certlab lab up -i inventory/sim.yaml
    sudo .venv/bin/python bench/suite_time.py -i inventory/sim.yaml --bench bench1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 3600  # one suite on one bench; a run past this is reported, not waited for


@dataclass(frozen=True)
class CaseTime:
    test: str  # module::function[params]
    test_case: str
    verdict: str
    wall: float  # setup + call + teardown
    driver: float  # of which a driver step was in progress

    @property
    def share(self) -> float:
        return self.driver / self.wall if self.wall > 0 else 0.0


def own_file(code: Path, inventory: Path) -> Path:
    """The checkout's own copy of an inventory of ours: its product files (ICS, IXIT) match its suites."""
    try:
        mine = code / inventory.resolve().relative_to(ROOT)
    except ValueError:
        return inventory  # a lab's own inventory, outside the checkout: the same for both
    return mine if mine.is_file() else inventory


def run_suite(code: Path, inventory: Path, bench: str, suite: str, out: Path) -> tuple[list[CaseTime], float, int]:
    """The suite from checkout `code` on `bench`: its cases' times, the session's wall time, pytest's exit code."""
    junit = out / "junit.xml"
    args = [sys.executable, "-m", "pytest", suite, "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
            "--inventory", str(inventory.resolve()), "--bench", bench, "--certlab-out", str(out),
            f"--junitxml={junit}", "-o", "junit_family=xunit1", "-o", "junit_duration_report=total"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    start = time.monotonic()
    try:
        done = subprocess.run(args, cwd=code, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        code_rc, said = done.returncode, done.stdout[-2000:] + done.stderr[-2000:]
    except subprocess.TimeoutExpired:
        code_rc, said = -1, f"the suite did not end within {RUN_TIMEOUT_S} s"
    wall = time.monotonic() - start
    if not junit.is_file():
        print(f"no JUnit XML from pytest (exit {code_rc}):\n{said}", file=sys.stderr)
        return [], wall, code_rc
    return read_times(junit, out / "verdicts.json"), wall, code_rc


def read_times(junit: Path, verdicts_file: Path) -> list[CaseTime]:
    verdicts: dict[str, dict] = {}
    if verdicts_file.is_file():
        for r in json.loads(verdicts_file.read_text(encoding="utf-8")).get("results", []):
            module, _, name = r["nodeid"].partition("::")
            verdicts[f"{Path(module).stem}::{name}"] = r
    cases = []
    for tc in ET.parse(junit).getroot().iter("testcase"):
        key = f"{tc.get('classname', '').rsplit('.', 1)[-1]}::{tc.get('name', '')}"
        driver = sum(float(p.get("value", 0)) for p in tc.iter("property")
                     if p.get("name", "").startswith("driver_seconds_"))
        result = verdicts.get(key, {})
        cases.append(CaseTime(test=key, test_case=result.get("test_case") or key, verdict=result.get("verdict", "?"),
                              wall=float(tc.get("time", 0)), driver=driver))
    return cases


def print_table(cases: list[CaseTime], wall: float, label: str) -> None:
    print(f"\n{label}: {len(cases)} tests, session wall {wall:.1f} s")
    print(f"{'test case':<14} {'verdict':<15} {'wall s':>8} {'driver s':>9} {'share':>6}  test")
    for c in sorted(cases, key=lambda c: c.wall, reverse=True):
        print(f"{c.test_case:<14} {c.verdict:<15} {c.wall:8.2f} {c.driver:9.2f} {c.share:6.0%}  {c.test}")
    total, driver = sum(c.wall for c in cases), sum(c.driver for c in cases)
    share = driver / total if total else 0.0
    print(f"{'total':<30} {total:8.2f} {driver:9.2f} {share:6.0%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-i", "--inventory", type=Path, default=ROOT / "inventory" / "sim.yaml")
    ap.add_argument("--bench", default="bench1", help="one bench with a conforming sample (default bench1)")
    ap.add_argument("--suite", default="testsuites/en303645")
    ap.add_argument("--baseline-code", type=Path, help="another checkout to run first, for the ratio")
    args = ap.parse_args()
    runs: list[tuple[str, list[CaseTime], float]] = []
    checkouts = ([("baseline", args.baseline_code.resolve())] if args.baseline_code else []) + [("this checkout", ROOT)]
    for label, code in checkouts:
        with tempfile.TemporaryDirectory(prefix="certlab-suite-time-") as tmp:
            cases, wall, rc = run_suite(code, own_file(code, args.inventory), args.bench, args.suite, Path(tmp))
        print_table(cases, wall, f"{label} ({code}, pytest exit {rc})")
        runs.append((label, cases, wall))
    if len(runs) == 2:
        (_, _, before), (_, _, after) = runs
        print(f"\nsession wall: baseline {before:.1f} s, this checkout {after:.1f} s, ratio {after / before:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
