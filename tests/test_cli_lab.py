"""`certlab lab up | check | down` and `certlab run`, as a lab engineer types them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.sim.genlab import write_sim_inventory
from lab.sim.lab import processes_mentioning
from lab.sim.netns import unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
NETNS = unavailable_reason() is None


def certlab(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200"})


def leftovers(lab: str) -> list[int]:
    return processes_mentioning(f"/tmp/certlab-sim/{lab}/")


def test_up_check_run_down(tmp_path: Path):
    inv = write_sim_inventory(tmp_path, "tcli", 2, scpi_port=17310, subnet=210, netns=NETNS, relay="mixed",
                              ssh_base_port=17320)
    try:
        up = certlab("lab", "up", "-i", str(inv))
        assert up.returncode == 0, up.stdout + up.stderr
        again = certlab("lab", "up", "-i", str(inv))
        assert again.returncode == 0, "lab up must be idempotent"
        check = certlab("lab", "check", "-i", str(inv))
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.count("ok (boot banner seen)") == 2
        assert "login + command" in check.stdout
        run = certlab("run", "--suite", "testsuites/examples", "-i", str(inv), "--out", str(tmp_path / "reports"))
        assert run.returncode == 0, run.stdout + run.stderr
        (run_dir,) = (tmp_path / "reports").iterdir()
        doc = json.loads((run_dir / "verdicts.json").read_text())
        assert {r["verdict"] for r in doc["results"]} == {"PASS"} and len(doc["results"]) == 6
        assert (run_dir / "allure-results").is_dir() and any((run_dir / "allure-results").iterdir())
        console_logs = list((run_dir / "evidence").rglob("console-*.log"))
        assert len(console_logs) == 2
        password = (tmp_path / "secrets" / "tcli-b1.password").read_text().strip()
        for log in (run_dir / "evidence").rglob("*.log"):
            assert password not in log.read_text(errors="replace"), f"secret leaked into {log}"
    finally:
        down = certlab("lab", "down", "-i", str(inv))
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers("tcli") == []


def test_check_reports_a_lab_fault_and_exits_1(tmp_path: Path):
    inv = write_sim_inventory(tmp_path, "tclf", 1, scpi_port=17330, subnet=211, netns=NETNS, ssh_base_port=17340,
                              sim={"lab_faults": ["relay_unresponsive"]})
    try:
        assert certlab("lab", "up", "-i", str(inv)).returncode == 0
        check = certlab("lab", "check", "-i", str(inv))
        assert check.returncode == 1, check.stdout + check.stderr
        assert "lab fault" in check.stdout and "Traceback" not in check.stdout + check.stderr
    finally:
        certlab("lab", "down", "-i", str(inv))
    assert leftovers("tclf") == []


@pytest.mark.parametrize("args, needle", [
    (["run", "--edition", "v9"], "v9"),
    (["run", "--suite", "no/such/suite"], "no such file"),
    (["run", "--power-cuts", "0"], "--power-cuts"),
    (["catalog", "--edition", "v7"], "v7"),
])
def test_bad_options_exit_2_with_one_line(args, needle):
    inventory = ["-i", str(ROOT / "inventory" / "sim.yaml")] if args[0] == "run" else []  # run's other checks
    proc = certlab(*args, *inventory)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
