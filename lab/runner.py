"""Run test suites on several benches at once: one pytest process per bench.

Each bench tests its own DUT, so benches are independent workers; their verdict parts are
merged into the run directory's `verdicts.json` when all are done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from lab.inventory import Inventory


@dataclass
class WorkerOutcome:
    bench: str
    returncode: int
    seconds: float
    log: Path


def new_run_dir(reports_dir: Path) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    path = reports_dir / run_id
    path.mkdir(parents=True, exist_ok=False)
    return path


def pytest_command(inventory: Inventory, bench: str, suites: list[str], run_dir: Path,
                   extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable, "-m", "pytest", *suites,
        "--inventory", str(inventory.path),
        "--bench", bench,
        "--certlab-out", str(run_dir),
        "--certlab-worker", bench,
        "--alluredir", str(run_dir / "allure-results"),
        "-p", "no:cacheprovider", "-q", "-rA", "--no-header",
        "-o", "timeout=900",
        *(extra or []),
    ]


def run_benches(inventory: Inventory, benches: list[str], suites: list[str], run_dir: Path,
                extra: list[str] | None = None) -> list[WorkerOutcome]:
    """Start one pytest per bench, wait for all, merge their verdicts."""
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CERTLAB_RUN_ID": run_dir.name}
    started = []
    for bench in benches:
        log = logs / f"pytest-{bench}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                pytest_command(inventory, bench, suites, run_dir, extra),
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        started.append((bench, proc, time.monotonic(), log))
    outcomes = []
    for bench, proc, t0, log in started:
        rc = proc.wait()
        outcomes.append(WorkerOutcome(bench, rc, time.monotonic() - t0, log))
    merge_verdicts(run_dir)
    return outcomes


def merge_verdicts(run_dir: Path) -> dict:
    parts = sorted((run_dir / ".workers").glob("*.json"))
    results: list[dict] = []
    doc: dict = {"run_id": run_dir.name, "edition": "none", "results": results}
    for part in parts:
        data = json.loads(part.read_text(encoding="utf-8"))
        doc["edition"] = data.get("edition", doc["edition"])
        doc["lab"] = data.get("lab")
        results.extend(data.get("results", []))
    tmp = run_dir / "verdicts.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    os.replace(tmp, run_dir / "verdicts.json")
    return doc
