"""Lab hosts end to end, on one machine: a real redis-server and two `certlab labhost serve`, each in
its own network namespace with its own simulated benches (inventory/sim-labhosts.yaml, tests/labhosts.py).

One bring-up serves the tests (module fixture): a run across both hosts gives the local
executor's verdicts with its files in the run directory; a host SIGKILLed mid-run loses and
duplicates nothing; a 15-second partition of a host and its return runs nothing twice; queued
runs go through the broker to their benches' hosts. What the
store holds (results, dispatches) is read straight from the shared SQLite file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from labhosts import ROOT, LabHosts, unavailable_reason

INVENTORY = ROOT / "inventory" / "sim-labhosts.yaml"
SUITE = "testsuites/examples"
SLOTS = ["ra1", "rb1"]  # one per host; ra2 and rb2 are the spares
BENCH_HOST = {"ra1": "rack-a", "ra2": "rack-a", "rb1": "rack-b", "rb2": "rack-b"}  # as the inventory says
RUN_TIMEOUT = 180  # s, one `certlab run`
CLAIM_TIMEOUT = 60  # s, until a host has claimed its first item of a run


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabHosts]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"lab host tests skipped: {reason}")
    with LabHosts(INVENTORY, ["rack-a", "rack-b"], tmp_path_factory.mktemp("labhosts")) as lab:
        yield lab
    assert lab.leftovers() == []


@pytest.fixture
def serving(hosts: LabHosts) -> LabHosts:
    """Both hosts serving (a test that killed one leaves it to the next to bring it back)."""
    for name, host in hosts.hosts.items():
        if host.serve is None or host.serve.poll() is not None:
            hosts.serve(name)
    hosts.wait_serving(list(hosts.hosts))
    return hosts


def _run(hosts: LabHosts, out: Path, *, env: dict[str, str] | None = None, netns_host: str | None = None,
         benches: list[str] = SLOTS) -> subprocess.Popen:
    cmd = hosts.certlab("run", "-i", str(INVENTORY), "--suite", SUITE, "--out", str(out),
                        *(a for b in benches for a in ("-b", b)))
    if netns_host:
        cmd = hosts.in_host(netns_host, cmd)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env or hosts.env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log.close()
    return proc


def _finish(proc: subprocess.Popen, out: Path) -> tuple[int, Path, dict]:
    try:
        rc = proc.wait(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise AssertionError(f"certlab run did not end within {RUN_TIMEOUT} s: {out.with_suffix('.log').read_text()[-2000:]}")
    runs = sorted(p for p in out.iterdir() if (p / "verdicts.json").exists())
    assert runs, f"no run directory in {out} (exit {rc}): {out.with_suffix('.log').read_text()[-2000:]}"
    return rc, runs[-1], json.loads((runs[-1] / "verdicts.json").read_text())


def _db(hosts: LabHosts) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{hosts.data_dir / 'certlab.db'}?mode=ro", uri=True, timeout=30)


def _results(hosts: LabHosts, run_id: str) -> list[dict]:
    with _db(hosts) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM test_results WHERE run_id = ?", (run_id,))]


def _dispatches(hosts: LabHosts, run_id: str) -> list[dict]:
    with _db(hosts) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM dispatches WHERE run_id = ? ORDER BY id", (run_id,))]


def _wait_claimed(hosts: LabHosts, labhost: str, proc: subprocess.Popen, seen: set[str]) -> str:
    """The run id once `labhost` runs an item of a run not in `seen` (bounded)."""
    deadline = time.monotonic() + CLAIM_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with _db(hosts) as db:
                row = db.execute("SELECT run_id FROM dispatches WHERE labhost = ? AND state = 'running'",
                                 (labhost,)).fetchall()
        except sqlite3.OperationalError:  # no store or no table yet
            row = []
        fresh = [r[0] for r in row if r[0] not in seen]
        if fresh:
            return fresh[0]
        time.sleep(0.2)
    raise AssertionError(f"{labhost} claimed no item within {CLAIM_TIMEOUT} s (run exit {proc.poll()})")


def _known_runs(hosts: LabHosts) -> set[str]:
    try:
        with _db(hosts) as db:
            return {r[0] for r in db.execute("SELECT id FROM runs")}
    except sqlite3.OperationalError:
        return set()


def _test_name(result: dict) -> str:
    return result["nodeid"].split("::")[-1].split("[")[0]


def _one_final_each(results: list[dict], planned: int) -> dict[tuple[str, str], dict]:
    """Every planned (slot, test) has exactly one final result; returns them."""
    finals = Counter((r["bench"], _test_name(r)) for r in results if r["final"])
    assert len(finals) == planned and set(finals.values()) == {1}, finals
    return {(r["bench"], _test_name(r)): r for r in results if r["final"]}


def _nothing_ran_twice(results: list[dict], dispatches: list[dict]) -> None:
    """No test has two results other than a lab fault's INCONCLUSIVE, no item two finished attempts."""
    performed = Counter((r["bench"], _test_name(r)) for r in results if r["verdict"] != "INCONCLUSIVE")
    assert all(n == 1 for n in performed.values()), performed
    done = Counter(d["item_key"] for d in dispatches if d["state"] == "done")
    assert all(n == 1 for n in done.values()), done
    assert not [d for d in dispatches if d["state"] in ("queued", "running")], dispatches


def test_a_run_across_two_hosts_has_the_local_executors_verdicts_and_files(serving: LabHosts):
    hosts, work = serving, serving.workdir / "across"
    local_env = {k: v for k, v in hosts.env(CERTLAB_DATA_DIR=str(work / "local-store")).items() if k != "CERTLAB_BROKER_URL"}
    # first the local executor inside each host (both at once), then the same benches through the broker
    local = [_run(hosts, work / f"local-{b}", env=local_env, netns_host=h, benches=[b])
             for b, h in (("ra1", "rack-a"), ("rb1", "rack-b"))]
    local_docs = [_finish(p, work / f"local-{b}")[2] for p, b in zip(local, ("ra1", "rb1"))]
    rc, run_dir, doc = _finish(_run(hosts, work / "remote"), work / "remote")

    verdicts = {(r["bench"], r["test"]): r["verdict"] for r in doc["results"]}
    expected = {(r["bench"], r["test"]): r["verdict"] for d in local_docs for r in d["results"]}
    assert verdicts == expected and len(verdicts) == 6, (verdicts, expected)
    assert rc == 0 and set(verdicts.values()) == {"PASS"}, (rc, verdicts)
    assert {r["executed_on"] for r in doc["results"]} == set(SLOTS)

    # the lab hosts' files arrived in the run directory ...
    assert (run_dir / "junit.xml").is_file()
    assert any((run_dir / "allure-results").glob("*-result.json"))
    for bench in SLOTS:
        assert any(p.is_file() and p.stat().st_size for p in (run_dir / "evidence" / bench).rglob("*")), bench
        assert (run_dir / "logs" / f"pytest-{bench}-a1-on-{bench}.log").is_file()
    for r in doc["results"]:
        for rel in r["evidence"]:
            assert (run_dir / rel).is_file(), rel

    # ... so report (signing every file's SHA-256) and verify work on it unchanged
    env = {**hosts.env(CERTLAB_KEY_DIR=str(work / "keys"))}
    env.pop("CERTLAB_KEY_PASSPHRASE", None)
    for args in (["keys", "init", "--dir", str(work / "keys"), "--force"],
                 ["report", str(run_dir), "--no-allure", "--no-pdf"], ["verify", str(run_dir)]):
        proc = subprocess.run(hosts.certlab(*args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (args, proc.stdout[-1500:], proc.stderr[-1500:])
    signed = json.loads((run_dir / "manifest.json").read_text())["files"]
    for r in doc["results"]:
        for rel in r["evidence"]:
            assert signed[rel]["sha256"] == hashlib.sha256((run_dir / rel).read_bytes()).hexdigest(), rel


@pytest.mark.parametrize("slots", [SLOTS, ["ra1", "ra2", "rb1", "rb2"]], ids=["to-a-spare", "no-spare-left"])
def test_a_host_killed_mid_run_loses_and_duplicates_nothing(serving: LabHosts, slots: list[str]):
    """rack-b dies 1 s into its item: its slots' tests move to ra2 or, with every bench in the run,
    end INCONCLUSIVE naming the lost host; each test one final result, the report builds."""
    hosts, out = serving, serving.workdir / f"killed-{len(slots)}"
    seen = _known_runs(hosts)
    proc = _run(hosts, out, benches=slots)
    run_id = _wait_claimed(hosts, "rack-b", proc, seen)
    time.sleep(1.0)  # into its pytest
    hosts.kill_host("rack-b")
    rc, run_dir, doc = _finish(proc, out)
    assert doc["run_id"] == run_id

    results = _results(hosts, run_id)
    finals = _one_final_each(results, planned=3 * len(slots))
    _nothing_ran_twice(results, _dispatches(hosts, run_id))
    for (slot, test), r in finals.items():
        assert r["verdict"] in ("PASS", "INCONCLUSIVE"), r
        if r["verdict"] == "INCONCLUSIVE":  # not moved: the cause names the lost host
            assert slot.startswith("rb") and "lab host rack-b" in r["reason"] and "lost" in r["reason"], r
        elif slot.startswith("rb"):  # rb2 hangs off the dead host too: only ra2 can have taken over
            assert (r["executed_on"] or slot) in ({slot, "ra2"} if "ra2" not in slots else {slot}), r
    assert len(doc["results"]) == 3 * len(slots)
    assert rc == (3 if any(r["verdict"] == "INCONCLUSIVE" for r in finals.values()) else 0), rc

    env = {**hosts.env(CERTLAB_KEY_DIR=str(out / "keys"))}
    subprocess.run(hosts.certlab("keys", "init", "--dir", str(out / "keys"), "--force"), cwd=ROOT, env=env,
                   capture_output=True, timeout=60, check=True)
    report = subprocess.run(hosts.certlab("report", str(run_dir), "--no-allure", "--no-pdf"), cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stdout[-1500:] + report.stderr[-1500:]


def test_a_15_second_partition_and_return_runs_nothing_twice(serving: LabHosts):
    hosts, out = serving, serving.workdir / "partition"
    seen = _known_runs(hosts)
    proc = _run(hosts, out)
    run_id = _wait_claimed(hosts, "rack-a", proc, seen)
    cut = threading.Thread(target=hosts.partition, args=("rack-a", 15.0))
    cut.start()
    try:
        rc, run_dir, doc = _finish(proc, out)
    finally:
        cut.join(timeout=30)
    assert not cut.is_alive()

    results = _results(hosts, run_id)
    dispatches = _dispatches(hosts, run_id)
    finals = _one_final_each(results, planned=6)
    _nothing_ran_twice(results, dispatches)
    assert all(r["verdict"] in ("PASS", "INCONCLUSIVE") for r in finals.values()), finals
    assert len(doc["results"]) == 6
    # the host came back and serves again; a late redelivery of its old message did not run it
    hosts.wait_serving(["rack-a"])
    time.sleep(2.0)
    assert _dispatches(hosts, run_id) == dispatches


def test_queued_runs_are_served_through_the_broker_by_the_benches_lab_hosts(serving: LabHosts):
    hosts, work = serving, serving.workdir / "queue"
    env = hosts.env()
    for _ in range(2):
        proc = subprocess.run(hosts.certlab("queue", "add", "--model", "TH-100", "--suite", SUITE, "--out", str(work)),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    before = _known_runs(hosts)
    proc = subprocess.run(hosts.certlab("queue", "work", "-i", str(INVENTORY), "--max-runs", "2", "--max-seconds", "150"),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert proc.returncode == 0 and "2 done" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    runs = sorted(_known_runs(hosts) - before)
    assert len(runs) == 2, runs
    for run_id in runs:
        results, sent = _results(hosts, run_id), _dispatches(hosts, run_id)
        assert [r["verdict"] for r in results] == ["PASS"] * 3, results
        # each queued run went once, through the broker, to the lab host its bench hangs off
        assert len(sent) == 1 and sent[0]["state"] == "done", sent
        assert sent[0]["labhost"] == BENCH_HOST[sent[0]["bench"]], sent
        assert (work / run_id / "junit.xml").is_file() and any((work / run_id / "evidence").iterdir())
