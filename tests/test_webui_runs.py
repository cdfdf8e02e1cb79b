"""The runs, bench board and queue pages (lab/webui/pages/{runs,benches,queue}.py) through
FastAPI's TestClient: each role's view, the refusals, forms with the error at the field, the live
stream of a finished run, and evidence downloads that never leave the run's files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from apilib import seed_booking
from lab.actions.runs import write_launch
from lab.store import create_run, quarantine_bench, record_result, register_bench, set_run_status
from lab.store.models import Booking, QueuedRun, TestResult, User
from lab.store.unit import reading, unit
from webui import WebClient, login, make_app, post_form

RUN = "20260101-120000-web001"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[WebClient, int, int]]:
    """Acme's tested booking whose run RUN finished (one PASS with a transcript, one FAIL), its
    launch record saying the process exited 1; the app's client and (booking id, result id)."""
    client = make_app(tmp_path)
    svc = client.app.state.services  # type: ignore[attr-defined]
    with reading(svc.store) as s:
        maker = s.scalars(select(User).where(User.name == "maker")).one()
    booking_id = seed_booking(svc.store, maker, status="tested")
    with unit(svc.store) as s:
        s.get(Booking, booking_id).run_id = RUN
    create_run(svc.store, run_id=RUN, edition="v2", lab="sim")
    set_run_status(svc.store, run_id=RUN, status="running")
    evidence = svc.settings.reports_dir / RUN / "evidence" / "bench1"
    evidence.mkdir(parents=True)
    (evidence / "console.log").write_text("> admin\n< Login incorrect\n")
    record_result(svc.store, run_id=RUN, bench="bench1", nodeid="t::pw", verdict="PASS", test_case="5.1-1",
                  reason="no universal default password", evidence=["evidence/bench1/console.log"])
    record_result(svc.store, run_id=RUN, bench="bench1", nodeid="t::upd", verdict="FAIL", test_case="5.3-2",
                  reason="<script>alert(1)</script> update not signed")
    set_run_status(svc.store, run_id=RUN, status="finished")
    folder = svc.settings.data_dir / "bookings" / str(booking_id) / "launch-1"
    folder.mkdir(parents=True)
    write_launch(folder, booking_id=booking_id, ics=str(folder / "ics.yaml"), started=1.0, run_id=RUN, pid=None,
                 exit_code=1)
    with reading(svc.store) as s:
        result_id = s.scalars(select(TestResult.id).where(TestResult.nodeid == "t::pw")).one()
    with client:
        yield client, booking_id, result_id


def test_each_role_sees_its_pages_and_is_refused_the_others(web) -> None:
    client, booking_id, result_id = web
    lab, maker, cert, rival = (login(client, n) for n in ("lab", "maker", "cert", "rival"))
    for path in ("/bench", "/queue", "/runs", f"/runs/{RUN}", f"/runs/{RUN}/tests/{result_id}"):
        assert lab.get(path).status_code == 200, path
    for path in ("/runs", f"/runs/{RUN}", f"/runs/{RUN}/tests/{result_id}"):
        assert maker.get(path).status_code == 200, path
    for path in ("/bench", "/queue"):
        assert maker.get(path).status_code == 403, path
        assert cert.get(path).status_code == 403, path
    assert cert.get("/runs").status_code == 403 and cert.get(f"/runs/{RUN}").status_code == 403
    for path in (f"/runs/{RUN}", f"/runs/{RUN}/tests/{result_id}", f"/runs/{RUN}/events", "/runs/..%2Fx"):
        assert rival.get(path).status_code == 404, path
    assert RUN not in rival.get("/runs").text
    anonymous = client.get("/bench", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_the_run_page_shows_progress_verdicts_and_test_cases_as_text(web) -> None:
    client, booking_id, result_id = web
    lab = login(client, "lab")
    html = lab.get(f"/runs/{RUN}").text
    assert "<progress" in html and "2 of 2" in html  # the bar and its text equivalent
    assert ">PASS<" in html and ">FAIL<" in html and "finished" in html
    assert "&lt;script&gt;" in html and "<script>alert" not in html
    assert f'href="/runs/{RUN}/tests/{result_id}"' in html
    assert "data-live=" not in html, "a finished run has nothing to stream"
    assert "Cancel this run" not in html  # its process is gone
    listed = lab.get("/runs").text
    assert RUN in listed and f"/bookings/{booking_id}" in listed
    detail = lab.get(f"/runs/{RUN}/tests/{result_id}").text
    assert "Login incorrect" in detail and "no universal default password" in detail
    assert "file?path=evidence/bench1/console.log" in detail


def test_the_live_stream_of_a_finished_run_sends_its_progress_then_ends(web) -> None:
    client, _, _ = web
    lab = login(client, "lab")
    with lab.stream("GET", f"/runs/{RUN}/events") as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in stream.iter_lines() if line.startswith("data: ")]
    assert events[0]["replace"] == "run-progress" and "2 of 2" in events[0]["html"]
    assert events[-1] == {"done": True} and len(events) == 2


def test_evidence_downloads_only_the_results_own_files(web) -> None:
    client, _, result_id = web
    maker = login(client, "maker")
    url = f"/runs/{RUN}/tests/{result_id}/file"
    ok = maker.get(url, params={"path": "evidence/bench1/console.log"})
    assert ok.status_code == 200 and ok.text.startswith("> admin")
    assert ok.headers["content-disposition"].startswith("attachment")
    for bad in ("../../../etc/passwd", "/etc/passwd", "evidence/bench1/../../../store.db", "run.json",
                "evidence/bench1"):
        assert maker.get(url, params={"path": bad}).status_code == 404, bad


def test_queue_add_move_cancel_and_errors_at_the_field(web) -> None:
    client, _, _ = web
    lab = login(client, "lab")
    assert lab.post("/queue", data={"model": "TH-100"}).status_code == 403, "no CSRF token"
    bad = post_form(lab, "/queue", {"model": "TH 100", "priority": "1"})
    assert bad.status_code == 422
    assert 'id="f-model"' in bad.text and 'aria-invalid="true"' in bad.text and 'id="f-model-error"' in bad.text
    for model in ("TH-100", "TH-200"):
        assert post_form(lab, "/queue", {"model": model, "capabilities": "wifi", "priority": "0"}).status_code == 303
    svc = client.app.state.services  # type: ignore[attr-defined]
    with reading(svc.store) as s:
        first, second = s.scalars(select(QueuedRun.id).order_by(QueuedRun.id)).all()
    assert post_form(lab, f"/queue/{second}/move", {"direction": "up"}).status_code == 303
    page = lab.get("/queue").text
    assert page.index(f"Queued run {second}<") < page.index(f"Queued run {first}<")
    wrong = post_form(lab, f"/queue/{first}/priority", {"priority": "lots"})
    assert wrong.status_code == 422 and f'id="f-priority-{first}-error"' in wrong.text
    assert post_form(lab, f"/queue/{first}/cancel").status_code == 303
    with reading(svc.store) as s:
        assert s.get(QueuedRun, first).state == "cancelled"
    assert post_form(login(client, "maker"), f"/queue/{second}/cancel").status_code == 403


def test_a_quarantined_bench_is_released_from_the_board(web) -> None:
    client, _, _ = web
    svc = client.app.state.services  # type: ignore[attr-defined]
    register_bench(svc.store, name="bench1", model="TH-100", lab="sim")
    quarantine_bench(svc.store, bench="bench1", reason="health check failed: no prompt")
    lab = login(client, "lab")
    board = lab.get("/bench").text
    assert "quarantined" in board and "health check failed: no prompt" in board and "/bench/bench1/release" in board
    assert lab.post("/bench/bench1/release").status_code == 403, "no CSRF token"
    done = post_form(lab, "/bench/bench1/release", follow_redirects=True)
    assert done.status_code == 200 and "back in the pool" in done.text
    assert "/bench/bench1/release" not in done.text


def test_starting_or_cancelling_in_the_wrong_state_says_why(web) -> None:
    client, booking_id, _ = web
    lab = login(client, "lab")
    start = post_form(lab, f"/bookings/{booking_id}/start", follow_redirects=True)
    assert start.status_code == 200 and "Testing did not start" in start.text and "tested" in start.text
    cancel = post_form(lab, f"/runs/{RUN}/cancel", follow_redirects=True)
    assert cancel.status_code == 200 and "Not cancelled" in cancel.text
    assert post_form(login(client, "maker"), f"/bookings/{booking_id}/start").status_code == 403


def test_the_booking_page_lists_its_runs_and_offers_start_to_the_engineer(web) -> None:
    client, booking_id, _ = web
    svc = client.app.state.services  # type: ignore[attr-defined]
    with unit(svc.store) as s:  # a second booking of the same product, accepted
        b = s.get(Booking, booking_id)
        twin = Booking(org_id=b.org_id, product_id=b.product_id, firmware_version="1.4.1", edition=b.edition,
                       suites=b.suites, ics=b.ics, ixit=b.ixit, status="accepted", created_by=b.created_by)
        s.add(twin)
        s.flush()
        accepted = twin.id
    lab, owner = login(client, "lab"), login(client, "maker")
    tested = lab.get(f"/bookings/{booking_id}").text
    assert f'href="/runs/{RUN}"' in tested and f"/bookings/{booking_id}/start" not in tested
    assert f'action="/bookings/{accepted}/start"' in lab.get(f"/bookings/{accepted}").text
    assert f"/bookings/{accepted}/start" not in owner.get(f"/bookings/{accepted}").text
    assert f'href="/runs/{RUN}"' in owner.get(f"/bookings/{booking_id}").text


def test_a_live_stream_ends_after_its_lifetime_without_done_for_a_running_run(web, monkeypatch) -> None:
    """A run still going: the progress once, then (lifetime shortened) the stream closes and the
    browser's EventSource would reconnect; no `done`."""
    client, booking_id, _ = web
    svc = client.app.state.services  # type: ignore[attr-defined]
    set_run_status(svc.store, run_id=RUN, status="running")
    folder = svc.settings.data_dir / "bookings" / str(booking_id) / "launch-1"
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "--ics", str(folder / "ics.yaml")])
    try:
        write_launch(folder, pid=stand_in.pid, exit_code=None)
        monkeypatch.setattr("lab.webui.pages.runs.LIFETIME", 0.3)
        monkeypatch.setattr("lab.webui.pages.runs.POLL", 0.05)
        lab = login(client, "lab")
        running = lab.get(f"/runs/{RUN}").text
        assert 'data-live="/runs/' in running and "Cancel this run" in running
        assert "Cancel this run" not in login(client, "maker").get(f"/runs/{RUN}").text  # read-only
        with lab.stream("GET", f"/runs/{RUN}/events") as stream:
            events = [json.loads(line[len("data: "):]) for line in stream.iter_lines() if line.startswith("data: ")]
    finally:
        stand_in.kill()
        stand_in.wait(10)
    assert len(events) == 1 and events[0]["replace"] == "run-progress" and "running" in events[0]["html"]
    assert "Cancel this run" in events[0]["html"] and 'name="csrf" value="' in events[0]["html"]


def test_the_api_cancels_for_engineers_and_says_409_when_nothing_runs(web) -> None:
    client, _, _ = web
    url = f"/api/v1/runs/{RUN}/cancel"
    assert client.post(url, headers=client.bearer("maker")).status_code == 403
    assert client.post(url, headers=client.bearer("rival")).status_code == 403
    assert client.post("/api/v1/runs/20990101-000000-none00/cancel", headers=client.bearer("lab")).status_code == 404
    refused = client.post(url, headers=client.bearer("lab"))
    assert refused.status_code == 409 and "not running" in refused.json()["detail"]
    status = client.get(f"/api/v1/runs/{RUN}", headers=client.bearer("maker")).json()
    assert (status["status"], status["process"], status["exit_code"]) == ("finished", "exited", 1)
