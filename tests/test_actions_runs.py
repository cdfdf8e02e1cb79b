"""lab.actions.runs without a lab: launch records and stand-in processes (a Python child whose
command line names the launch's ICS copy, as `certlab run --ics` does), so each check takes
milliseconds and no run is started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from apilib import make_app, seed_booking, serving
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, NotFound
from lab.actions.runs import (
    run_follower,
    RunLauncher,
    booking_runs,
    cancel_run,
    evidence_file,
    launch_records,
    process_alive,
    recent_runs,
    result_detail,
    run_status,
    settle_runs,
    write_launch,
)
from lab.store import create_run, record_result, set_run_status
from lab.store.accounts import add_user
from lab.store.models import Booking, TestResult, User
from lab.store.unit import reading, unit

RUN = "20260101-120000-abc123"
WAIT = 10.0  # seconds, for a stand-in process to end


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    with serving(make_app(tmp_path, data_dir=tmp_path / "data")) as made:
        yield made


def caller(svc: Services, name: str, role: str, org: str) -> Caller:
    user, _ = add_user(svc.store, name=name, role=role, org=org)
    return Caller(id=user.id, name=name, role=role, org_id=user.org_id, org=org)


@pytest.fixture
def world(app: FastAPI) -> tuple[Services, dict[str, Caller], int]:
    """A running booking of Acme whose current run is RUN (in the store, no results yet)."""
    svc: Services = app.state.services
    who = {"lab": caller(svc, "lab", "engineer", "Test Lab"), "maker": caller(svc, "maker", "manufacturer", "Acme"),
           "rival": caller(svc, "rival", "manufacturer", "Rival"), "cert": caller(svc, "cert", "certifier", "CB")}
    with reading(svc.store) as s:
        owner = s.get(User, who["maker"].id)
    booking_id = seed_booking(svc.store, owner, status="running")
    with unit(svc.store) as s:
        s.get(Booking, booking_id).run_id = RUN
    create_run(svc.store, run_id=RUN, edition="v2", lab="sim")
    set_run_status(svc.store, run_id=RUN, status="running")
    return svc, who, booking_id


def launch(svc: Services, booking_id: int, *, run_id: str | None = RUN, started: float = 1.0,
           pid: int | None = None, exit_code: int | None = None) -> Path:
    folder = svc.settings.data_dir / "bookings" / str(booking_id) / f"launch-{started:.0f}-{run_id}"
    folder.mkdir(parents=True)
    ics = folder / "ics.yaml"
    ics.write_text("ics")
    write_launch(folder, booking_id=booking_id, ics=str(ics), started=started, run_id=run_id, pid=pid,
                 exit_code=exit_code)
    return folder


def stand_in(ics: Path) -> subprocess.Popen:
    """A process that looks like `certlab run --ics <ics>`: it sleeps until SIGINT (bounded: 30 s)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "--ics", str(ics)],
                            start_new_session=True)


def status_of(svc: Services, booking_id: int) -> tuple[str, object]:
    with reading(svc.store) as s:
        b = s.get(Booking, booking_id)
        return b.status, b.updated_at


def test_a_running_process_keeps_its_booking_running_and_its_end_settles_it_once(world) -> None:
    svc, who, booking_id = world
    folder = launch(svc, booking_id)
    proc = stand_in(folder / "ics.yaml")
    try:
        write_launch(folder, pid=proc.pid)
        assert process_alive(proc.pid, str(folder / "ics.yaml"))
        assert settle_runs(svc) == [] and status_of(svc, booking_id)[0] == "running"
    finally:
        proc.kill()
        proc.wait(WAIT)
    (svc.settings.reports_dir / RUN).mkdir(parents=True)
    (svc.settings.reports_dir / RUN / "verdicts.json").write_text("{}")
    assert settle_runs(svc) == [booking_id]
    assert status_of(svc, booking_id)[0] == "tested"
    before = status_of(svc, booking_id)
    settle_runs(svc)  # again (another worker): nothing changes
    assert status_of(svc, booking_id) == before


def test_a_recycled_pid_is_not_the_run(world) -> None:
    """The record's pid now belongs to another process (this test's): the run is gone, not running."""
    svc, who, booking_id = world
    folder = launch(svc, booking_id)
    write_launch(folder, pid=os.getpid())  # type: ignore[attr-defined]
    assert not process_alive(os.getpid(), str(folder / "ics.yaml"))
    assert settle_runs(svc) == [booking_id]
    assert status_of(svc, booking_id)[0] == "accepted"  # no verdicts: it may be started again
    with pytest.raises(Conflict):
        cancel_run(svc, who["lab"], RUN)  # and this test's process is never signalled


def test_a_newer_launch_in_progress_is_left_alone(world) -> None:
    svc, who, booking_id = world
    launch(svc, booking_id, started=1.0, exit_code=1)
    launch(svc, booking_id, run_id=None, started=2.0)  # claimed again, its run directory not there yet
    assert [r["started"] for r in launch_records(svc, booking_id)] == [1.0, 2.0]
    assert settle_runs(svc) == [] and status_of(svc, booking_id)[0] == "running"


def test_reading_a_finished_runs_status_writes_nothing(world) -> None:
    svc, who, booking_id = world
    launch(svc, booking_id, exit_code=0)
    record_result(svc.store, run_id=RUN, bench="b1", nodeid="t::a", verdict="PASS", test_case="5.1-1")
    record_result(svc.store, run_id=RUN, bench="b1", nodeid="t::b", verdict="INCONCLUSIVE", final=False)
    set_run_status(svc.store, run_id=RUN, status="finished")
    before = status_of(svc, booking_id)
    for who_ in (who["lab"], who["maker"]):
        run = run_status(svc, who_, RUN)
        assert (run.status, run.process, run.exit_code, run.done, run.total) == ("finished", "exited", 0, 1, 2)
        assert run.final and run.verdicts == {"PASS": 1}
    assert status_of(svc, booking_id) == before, "a read changed the booking"
    with pytest.raises(NotFound):
        run_status(svc, who["rival"], RUN)
    with pytest.raises(Forbidden):
        run_status(svc, who["cert"], RUN)


def test_cancel_interrupts_the_recorded_process_group_engineers_only(world) -> None:
    svc, who, booking_id = world
    folder = launch(svc, booking_id)
    proc = stand_in(folder / "ics.yaml")
    try:
        write_launch(folder, pid=proc.pid)
        with pytest.raises(Forbidden):
            cancel_run(svc, who["maker"], RUN)
        assert proc.poll() is None
        cancel_run(svc, who["lab"], RUN)
        assert proc.wait(WAIT) != 0  # SIGINT: KeyboardInterrupt in the stand-in
    finally:
        proc.kill()
        proc.wait(WAIT)
    with pytest.raises(Conflict):
        cancel_run(svc, who["lab"], RUN)  # nothing left to cancel


def test_the_launcher_settles_before_it_records_the_exit(world) -> None:
    """Nobody may see the process "exited" while its booking is still running: the waiter settles
    the booking first, then writes the code, then reaps."""
    svc, who, booking_id = world
    folder = launch(svc, booking_id)
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)", "--ics", str(folder / "ics.yaml")])
    write_launch(folder, pid=proc.pid)
    seen: list[object] = []
    launcher = RunLauncher()
    launcher.watch(proc, folder, lambda: seen.append(json.loads((folder / "launch.json").read_text())["exit_code"]))
    launcher.threads[-1].join(WAIT)
    assert seen == [None]
    assert json.loads((folder / "launch.json").read_text())["exit_code"] == 3


def test_the_follower_thread_stops_when_asked(world) -> None:
    svc, _, _ = world
    follower = run_follower(svc, period=0.05)
    follower.start()
    assert follower.running
    follower.stop(timeout=WAIT)
    assert not follower.running


def test_booking_runs_and_recent_runs_by_role(world) -> None:
    svc, who, booking_id = world
    launch(svc, booking_id, exit_code=0)
    lab = booking_runs(svc, who["lab"], booking_id)
    assert [r.run_id for r in lab["runs"]] == [RUN] and not lab["can_start"]
    assert [r.run_id for r in recent_runs(svc, who["maker"])] == [RUN]
    assert recent_runs(svc, who["rival"]) == []
    create_run(svc.store, run_id="20260101-130000-other1", edition="v2", lab="sim")  # no booking's run
    assert [r.run_id for r in recent_runs(svc, who["lab"], limit=1)] == ["20260101-130000-other1"]
    with pytest.raises(NotFound):
        booking_runs(svc, who["rival"], booking_id)
    with pytest.raises(Forbidden):
        recent_runs(svc, who["cert"])


def test_evidence_is_served_only_when_the_store_names_it_inside_the_run_directory(world, tmp_path: Path) -> None:
    svc, who, booking_id = world
    run_dir = svc.settings.reports_dir / RUN
    (run_dir / "evidence" / "b1").mkdir(parents=True)
    (run_dir / "evidence" / "b1" / "console.log").write_text("< login:\n")
    (run_dir / "evidence" / "b1" / "other.log").write_text("not this result's\n")
    (tmp_path / "secret.txt").write_text("secret")
    (run_dir / "evidence" / "b1" / "link.log").symlink_to(tmp_path / "secret.txt")
    record_result(svc.store, run_id=RUN, bench="b1", nodeid="t::a", verdict="FAIL", reason="default password",
                  evidence=["evidence/b1/console.log", "evidence/b1/link.log", "../../secret.txt"])
    with reading(svc.store) as s:
        rid = s.scalars(select(TestResult.id)).one()
    detail = result_detail(svc, who["maker"], RUN, rid)
    assert detail.evidence == ["evidence/b1/console.log"] and detail.transcript == "< login:\n"
    assert evidence_file(svc, who["lab"], RUN, rid, "evidence/b1/console.log").read_text() == "< login:\n"
    for bad in ("evidence/b1/other.log", "evidence/b1/link.log", "../../secret.txt", "/etc/passwd"):
        with pytest.raises(NotFound):
            evidence_file(svc, who["lab"], RUN, rid, bad)
    with pytest.raises(NotFound):
        result_detail(svc, who["rival"], RUN, rid)


def test_a_cancelled_run_leaves_its_booking_to_be_started_again(world) -> None:
    svc, who, booking_id = world
    launch(svc, booking_id, exit_code=130)
    (svc.settings.reports_dir / RUN).mkdir(parents=True)
    (svc.settings.reports_dir / RUN / "verdicts.json").write_text("{}")  # the cancelled tests, INCONCLUSIVE
    set_run_status(svc.store, run_id=RUN, status="cancelled")
    assert settle_runs(svc) == [booking_id]
    assert status_of(svc, booking_id)[0] == "accepted"
    assert booking_runs(svc, who["lab"], booking_id)["can_start"]
