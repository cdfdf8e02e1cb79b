"""`certlab run` as the orchestrator: streaming, Ctrl-C, SIGKILL + --resume, failover and retries.

Each test brings up a private simulated lab (its own name, ports and subnet) and its results go
to the session's private store (tests/conftest.py). Every wait is bounded in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from simlab import simulated  # tests/simlab.py: a private simulated lab for one test

from lab.inventory import load_inventory
from lab.orchestrator.workitem import WorkItem
from lab.sim.genlab import write_sim_inventory
from lab.sim.netns import unavailable_reason
from lab.store import benches, events, get_run, open_store, result_counts, results

ROOT = Path(__file__).resolve().parent.parent
NETNS = unavailable_reason() is None
EXAMPLES = str(ROOT / "testsuites" / "examples")


def certlab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, "COLUMNS": "200"})


def start_certlab(*args: str, log: Path) -> subprocess.Popen:
    """Its own session and process group, as a lab engineer's terminal would start it."""
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "lab.cli", *args], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, "COLUMNS": "200"}, start_new_session=True)


def newest_run(reports: Path, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sorted(p for p in reports.glob("*") if (p / "run.json").exists())
        if runs:
            return runs[-1]
        time.sleep(0.1)
    raise AssertionError(f"no run directory appeared in {reports} within {timeout} s")


def wait_for(run_id: str, predicate, what: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    with open_store() as store:
        while time.monotonic() < deadline:
            counts = result_counts(store, run_id=run_id)
            if predicate(counts):
                return counts
            time.sleep(0.05)
    raise AssertionError(f"run {run_id}: {what} did not happen within {timeout} s")


def finals(counts: dict) -> int:
    return sum(n for c in counts.values() for k, n in c.items() if k != "total")


def planned(counts: dict) -> int:
    return sum(c["total"] for c in counts.values())


@pytest.fixture
def lab2(tmp_path: Path):
    """Two conforming benches on one SCPI switch."""
    with simulated(write_sim_inventory(tmp_path, "torc", 2, scpi_port=17410, subnet=214, netns=NETNS,
                                       ssh_base_port=17420)) as path:
        yield path


def test_work_item_is_plain_json():
    item = WorkItem(run_id="r1", inventory="/x/inv.yaml", bench="b3", slot="b1", suites=("/s",), run_dir="/r",
                    options=("--edition", "v2"), nodeids=("t.py::test_a[b1]",), attempt=2, resume=True)
    again = WorkItem.from_json(item.to_json())
    assert again == item
    args = again.pytest_args()
    assert args[0] == "t.py::test_a[b1]" and "--certlab-slot" in args and "--certlab-resume" in args
    assert args[args.index("--bench") + 1] == "b3" and args[args.index("--certlab-attempt") + 1] == "2"


def test_a_worker_loads_only_certlab_s_plugins():
    """A verdict must not depend on the pytest plugins that happen to be installed on the lab host."""
    from lab.orchestrator.worker import plugin_args

    args = plugin_args()
    assert args[:4] == ["-p", "fixtures.plugin", "-p", "allure_pytest.plugin"]
    assert set(args[1::2]) <= {"fixtures.plugin", "allure_pytest.plugin", "pytest_timeout"}


@pytest.mark.parametrize("kill_after", [0, 1, 4], ids=["planned-only", "one-done", "most-done"])
def test_sigkill_of_the_whole_group_then_resume_loses_and_duplicates_nothing(lab2: Path, tmp_path: Path, kill_after):
    reports = tmp_path / "reports"
    proc = start_certlab("run", "--suite", "testsuites/examples", "-i", str(lab2), "--out", str(reports), log=tmp_path / "first.log")
    try:
        run_dir = newest_run(reports)
        run_id = run_dir.name
        if kill_after == 0:
            wait_for(run_id, lambda c: planned(c) == 6 and finals(c) == 0, "planning of all 6 tests")
        else:
            wait_for(run_id, lambda c: finals(c) >= kill_after, f"{kill_after} final result(s)")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the orchestrator and every worker, at once
        proc.wait(timeout=30)
    with open_store() as store:
        before = {(r.bench, r.nodeid): (r.verdict, r.finished_at, r.attempt) for r in results(store, run_id=run_id)
                  if r.final}
        assert get_run(store, run_id=run_id).status == "running"  # nobody closed it: it was killed
    assert len(before) >= kill_after and len(before) < 6, "the kill must interrupt the run"

    resumed = certlab("run", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = json.loads((run_dir / "verdicts.json").read_text())
    keys = [(r["bench"], r["nodeid"]) for r in doc["results"]]
    assert len(keys) == 6 and len(set(keys)) == 6, f"lost or duplicated: {Counter(keys)}"
    assert {r["verdict"] for r in doc["results"]} == {"PASS"}
    with open_store() as store:
        after = {(r.bench, r.nodeid): (r.verdict, r.finished_at, r.attempt) for r in results(store, run_id=run_id)}
        assert get_run(store, run_id=run_id).status == "finished"
    for key, kept in before.items():
        assert after[key] == kept, f"{key} was completed before the kill and must be kept exactly: {after[key]} != {kept}"
    assert certlab("run", "--resume", str(run_dir)).returncode == 2, "a finished run cannot be resumed"


def test_ctrl_c_switches_duts_off_and_marks_the_rest_cancelled(lab2: Path, tmp_path: Path):
    from lab.bench import Bench

    reports = tmp_path / "reports"
    proc = start_certlab("run", "--suite", "testsuites/examples", "-i", str(lab2), "--out", str(reports), log=tmp_path / "run.log")
    try:
        run_id = newest_run(reports).name
        wait_for(run_id, lambda c: finals(c) >= 1, "a first result")
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole foreground group
        rc = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = (tmp_path / "run.log").read_text()
    assert rc == 3, log
    assert "Traceback" not in log.split("run directory:")[0] or "KeyboardInterrupt" not in log
    doc = json.loads((reports / run_id / "verdicts.json").read_text())
    assert len(doc["results"]) == 6
    assert not [r for r in doc["results"] if r["verdict"] == "FAIL"]
    cancelled = [r for r in doc["results"] if r["cause"] == "cancelled"]
    assert cancelled and all(r["verdict"] == "INCONCLUSIVE" and "cancelled" in r["reason"] for r in cancelled)
    inv = load_inventory(lab2)
    for name in inv.benches:
        b = Bench(inv, name, evidence_dir=tmp_path / "check" / name)
        try:
            assert b.power.is_on() is False, f"{name}'s DUT must be switched off after a cancel"
        finally:
            b.close()
    with open_store() as store:
        assert get_run(store, run_id=run_id).status == "cancelled"
    resumed = certlab("run", "--resume", str(reports / run_id))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    doc = json.loads((reports / run_id / "verdicts.json").read_text())
    assert [r["verdict"] for r in doc["results"]] == ["PASS"] * 6


def test_failed_health_check_quarantines_and_a_spare_takes_over(tmp_path: Path):
    path = write_sim_inventory(tmp_path, "torf", 3, scpi_port=17450, subnet=216, netns=NETNS, ssh_base_port=17460,
                               per_bench_sim={2: {"lab_faults": ["console_silent"]}}, boot_timeout=8)
    with simulated(path):
        reports = tmp_path / "reports"
        run = certlab("run", "--suite", "testsuites/examples", "-i", str(path), "--bench", "b1", "--bench", "b2", "--out", str(reports))
        assert run.returncode == 0, run.stdout + run.stderr
        (run_dir,) = reports.iterdir()
        doc = json.loads((run_dir / "verdicts.json").read_text())
        by_slot = Counter(r["bench"] for r in doc["results"])
        assert by_slot == {"b1": 3, "b2": 3} and {r["verdict"] for r in doc["results"]} == {"PASS"}
        moved = [r for r in doc["results"] if r["bench"] == "b2"]
        assert all(r["executed_on"] == "b3" and r["dut_serial"] == "TORF-0003" for r in moved), moved
        with open_store() as store:
            state = {b.name: b for b in benches(store, lab="torf")}
            assert state["b2"].state == "quarantined" and "console" in state["b2"].state_reason
            kinds = [e.kind for e in events(store, run_id=run_dir.name)]
            assert "health-check-failed" in kinds and "takeover" in kinds
        listed = certlab("bench", "list", "-i", str(path))
        assert "quarantined" in listed.stdout

        # quarantined from the start and every other bench busy with its own sample: INCONCLUSIVE, no FAIL
        again = certlab("run", "--suite", "testsuites/examples", "-i", str(path), "--bench", "b1", "--bench", "b2", "--bench", "b3",
                        "--out", str(tmp_path / "r2"))
        assert again.returncode == 3, again.stdout + again.stderr
        (run2,) = (tmp_path / "r2").iterdir()
        doc2 = json.loads((run2 / "verdicts.json").read_text())
        b2 = [r for r in doc2["results"] if r["bench"] == "b2"]
        assert b2 and all(r["verdict"] == "INCONCLUSIVE" and "quarantined" in r["reason"] for r in b2), b2
        assert not [r for r in doc2["results"] if r["verdict"] == "FAIL"]

        released = certlab("bench", "release", "b2", "-i", str(path))
        assert released.returncode == 0 and "back in the pool" in released.stdout
        with open_store() as store:
            assert {b.name: b.state for b in benches(store, lab="torf")}["b2"] == "available"


def test_a_lab_fault_mid_run_is_retried_once_on_a_spare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # b2 sits alone on an LCUS board whose process dies after a few switches; b1 and b3 share a SCPI switch
    path = write_sim_inventory(tmp_path, "tort", 3, scpi_port=17470, subnet=217, netns=NETNS, ssh_base_port=17480,
                               relay="mixed", per_bench_sim={2: {"lab_faults": ["bench_dies_midrun"]}})
    with simulated(path):
        reports = tmp_path / "reports"
        run = certlab("run", "--suite", "testsuites/examples", "-i", str(path), "--bench", "b1", "--bench", "b2", "--out", str(reports))
        (run_dir,) = reports.iterdir()
        doc = json.loads((run_dir / "verdicts.json").read_text())
        assert not [r for r in doc["results"] if r["verdict"] == "FAIL"], run.stdout
        b2 = [r for r in doc["results"] if r["bench"] == "b2"]
        assert len(b2) == 3
        retried = [r for r in b2 if r["attempt"] == 2]
        assert retried, f"a lab fault on b2 must be retried on the spare: {b2}"
        assert all(r["executed_on"] == "b3" and r["verdict"] == "PASS" for r in retried), retried
        assert run.returncode == 0, run.stdout + run.stderr
    # the lab's report of this real run says where each test really ran, with what equipment
    monkeypatch.setenv("CERTLAB_KEY_DIR", str(tmp_path / "keys"))
    assert certlab("keys", "init").returncode == 0
    report = certlab("report", str(run_dir), "--lab-profile", str(ROOT / "inventory" / "lab-profile.yaml"))
    assert report.returncode == 0, report.stdout + report.stderr
    conformance = json.loads((run_dir / "conformance.json").read_text())
    assert any("ran on spare bench b3" in d for d in conformance["deviations"]), conformance["deviations"]
    equipment = {e["bench"]: e for e in conformance["equipment"]}
    assert {"b1", "b2", "b3"} <= set(equipment)
    assert equipment["b1"]["power"]["identification"].startswith("CERTLAB,SIM-SWITCH"), equipment["b1"]
    assert equipment["b1"]["ssh"]["server"].startswith("SSH-2.0-"), equipment["b1"]
    # the run keeps only its own benches of the inventory (the spare's equipment came from its own record)
    assert set(load_inventory(run_dir / "inputs" / "inventory.yaml").benches) == {"b1", "b2"}
    assert all("#" in (r["allure"] or "") for r in conformance["other_results"]), "each verdict links to its Allure result"
    assert certlab("verify", str(run_dir)).returncode == 0


def test_the_lab_fault_inventory_gives_inconclusive_with_causes_and_never_a_fail(tmp_path: Path):
    inventory = ROOT / "inventory" / "sim-labfaults.yaml"
    inv = load_inventory(inventory)
    with simulated(inventory):
        run = certlab("run", "--suite", "testsuites/examples", "-i", str(inventory), "--out", str(tmp_path / "all"), timeout=600)
        (run_dir,) = (tmp_path / "all").iterdir()
        doc = json.loads((run_dir / "verdicts.json").read_text())
        assert run.returncode == 3, run.stdout + run.stderr
        assert not [r for r in doc["results"] if r["verdict"] == "FAIL"]
        assert Counter(r["bench"] for r in doc["results"]) == {name: 3 for name in inv.benches}
        for name, bench in inv.benches.items():
            mine = [r for r in doc["results"] if r["bench"] == name]
            if not bench.sim.lab_faults:
                assert {r["verdict"] for r in mine} == {"PASS"}, mine
                continue
            assert {r["verdict"] for r in mine} == {"INCONCLUSIVE"}, mine
            assert all(r["cause"] == "lab-fault" and r["reason"] for r in mine), mine
            assert all(r["dut_serial"] == bench.dut.serial for r in mine), "every verdict names its sample"
        words = {"relay_unresponsive": "relay", "console_silent": "console", "ssh_unreachable": "ssh",
                 "bench_dies_midrun": "relay"}
        for name, word in words.items():
            reasons = " ".join(r["reason"] for r in doc["results"] if r["bench"] == name).lower()
            assert word in reasons, f"{name}: the cause must name the failing part: {reasons[:300]}"

        # with a spare in the pool, a faulty bench's work is taken over and the run passes
        for name in words:  # the first run quarantined them; the lab "repaired" them (same faults, though)
            certlab("bench", "release", name, "-i", str(inventory))
        spare = certlab("run", "--suite", "testsuites/examples", "-i", str(inventory), "--bench", "conforming_1", "--bench", "relay_unresponsive",
                        "--out", str(tmp_path / "spare"), timeout=600)
        (spare_dir,) = (tmp_path / "spare").iterdir()
        doc = json.loads((spare_dir / "verdicts.json").read_text())
        assert spare.returncode == 0, spare.stdout + spare.stderr
        moved = [r for r in doc["results"] if r["bench"] == "relay_unresponsive"]
        assert moved and all(r["executed_on"] == "conforming_2" and r["verdict"] == "PASS" for r in moved), moved


def test_missing_assessor_decisions_never_count_against_a_bench(tmp_path: Path):
    """Paperwork is not a bench fault: three runs with pending decisions quarantine nothing."""
    path = write_sim_inventory(tmp_path, "torp", 1, scpi_port=17520, subnet=222, netns=NETNS, ssh_base_port=17525)
    record = tmp_path / "assessments.yaml"  # a record with an assessor and no decisions yet
    record.write_text("edition: v2\nmodel: TH-100\nassessor: {name: Dana Reuter, role: lead assessor}\n"
                      "date: 2026-12-07\ndecisions: {}\n")
    case = str(ROOT / "testsuites" / "en303645" / "test_conceptual.py") + "::test_conceptual"
    with simulated(path):
        for i in range(3):  # FAULT_LIMIT runs in a row: the count a bench fault would need
            out = tmp_path / f"r{i}"
            run = certlab("run", "-i", str(path), "--suite", case + "[5.1-1-1-b1]", "--assessments", str(record),
                          "--out", str(out))
            assert run.returncode == 3, run.stdout + run.stderr
            (run_dir,) = out.iterdir()
            (result,) = json.loads((run_dir / "verdicts.json").read_text())["results"]
            assert (result["verdict"], result["cause"]) == ("INCONCLUSIVE", "assessment-pending"), result
            assert result["attempt"] == 1, "paperwork is never retried on a spare bench"
            assert "conceptual assessment pending" in result["reason"], result
    with open_store() as store:
        (b1,) = [b for b in benches(store, lab="torp")]
        assert (b1.state, b1.fault_count) != ("quarantined", 3) and b1.fault_count == 0, (b1.state, b1.state_reason)


def test_queue_serves_matching_runs_by_priority_and_leaves_the_rest(tmp_path: Path):
    path = write_sim_inventory(tmp_path, "torq", 1, scpi_port=17490, subnet=218, netns=NETNS, ssh_base_port=17495)
    with simulated(path):
        reports = tmp_path / "reports"
        assert certlab("queue", "add", "--suite", "testsuites/examples", "--model", "TH-100", "--out", str(reports)).returncode == 0
        urgent = certlab("queue", "add", "--suite", "testsuites/examples", "--model", "TH-100", "--priority", "9", "--out", str(reports))
        assert urgent.returncode == 0 and "priority 9" in urgent.stdout
        assert certlab("queue", "add", "--suite", "testsuites/examples", "--model", "TH-100", "--capability", "wifi", "--out", str(reports)).returncode == 0
        assert certlab("queue", "add", "--model", "", "--out", str(reports)).returncode == 2
        work = certlab("queue", "work", "-i", str(path), "--max-seconds", "240")
        assert work.returncode == 0, work.stdout + work.stderr
        assert "dispatched 2 run(s): 2 done" in work.stdout
        order = [line.split()[2] for line in work.stdout.splitlines() if line.startswith("queued run") and "->" in line]
        assert order == ["2", "1"], f"priority first, then age: {work.stdout}"
        runs = sorted(reports.iterdir())
        assert len(runs) == 2
        for run_dir in runs:
            doc = json.loads((run_dir / "verdicts.json").read_text())
            assert [r["verdict"] for r in doc["results"]] == ["PASS"] * 3
        left = certlab("queue")
        assert "wifi" in left.stdout and "pending" in left.stdout, "no bench here has wifi: the run waits"


def test_power_loss_campaign_prints_a_table_reproducible_from_its_seed(tmp_path: Path):
    path = write_sim_inventory(tmp_path, "torp", 1, scpi_port=17500, subnet=219, netns=NETNS, ssh_base_port=17505)
    with simulated(path):
        fractions = []
        for k in range(2):
            out = tmp_path / f"c{k}"
            run = certlab("run", "--campaign", "power-loss", "--cuts", "1", "--seed", "42", "-i", str(path), "--out",
                          str(out), timeout=400)
            assert run.returncode == 0, run.stdout + run.stderr
            assert "power-loss campaign" in run.stdout and "clean recovery" in run.stdout
            (run_dir,) = out.iterdir()
            table = json.loads((run_dir / "campaign.json").read_text())
            assert table, "campaign.json is written"
            (cuts_file,) = (run_dir / "evidence").rglob("*power-cuts.json")
            fractions.append(json.loads(cuts_file.read_text())["drawn_fractions"])
        assert fractions[0] == fractions[1], "the same seed on the same bench draws the same cut moments"
        bad = certlab("run", "--campaign", "power-loss", "--cuts", "0", "-i", str(path), "--out", str(tmp_path / "x"))
        assert bad.returncode == 2 and "--cuts" in bad.stderr


def test_a_run_streams_into_postgresql_too(lab2: Path, tmp_path: Path, pg_server, monkeypatch: pytest.MonkeyPatch):
    url = pg_server.new_database()
    try:
        monkeypatch.setenv("CERTLAB_DATABASE_URL", url)
        run = certlab("run", "--suite", "testsuites/examples", "-i", str(lab2), "--out", str(tmp_path / "reports"))
        assert run.returncode == 0, run.stdout + run.stderr
        (run_dir,) = (tmp_path / "reports").iterdir()
        doc = json.loads((run_dir / "verdicts.json").read_text())
        with open_store(url) as store:
            assert store.dialect == "postgresql"
            stored = results(store, run_id=run_dir.name)
            assert sorted((r.bench, r.nodeid) for r in stored) == sorted((r["bench"], r["nodeid"]) for r in doc["results"])
            assert {r.verdict for r in stored} == {"PASS"} and all(r.final for r in stored)
            assert "test-started" in {e.kind for e in events(store, run_id=run_dir.name)}
    finally:
        pg_server.drop_database(url)
