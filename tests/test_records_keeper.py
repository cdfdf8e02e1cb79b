"""The record keeper (lab.actions.retests.settle_retests): a queued re-test followed to its end without
anyone starting it. Pending: nothing; claimed: "running" once; done: the verdict delta against the
baseline with the approved report's link and hash; a release that turns a provision from PASS to FAIL
is flagged, audited and posted to the lab's webhook (HMAC-signed, received here by a loopback
server); a failed run or one without verdicts is INCONCLUSIVE with its cause, never PASS. The re-test
runs are written on disk (no lab, no report subprocess)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from records_lab import BASELINE, MODEL, World, certified_world, finished_retest, register, retest_of
from sqlalchemy import select

from lab.actions import records, retests
from lab.actions import reports as report_actions
from lab.records.chain import verify_chain
from lab.records.notify import SIGNATURE_HEADER, post_json
from lab.store.models import AuditEntry, QueuedRun
from lab.store.scheduling import finish_queued_run
from lab.store.unit import reading, unit

SECRET = "webhook-secret"
RETEST_RUN = "20261205-100000-retest"


class Hook:
    """A loopback webhook receiver: answers each POST with the next status in `statuses` (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.received.append((dict(self.headers), body))
                self.send_response(hook.statuses.pop(0) if hook.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    yield made
    made.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: Hook) -> Iterator[World]:
    made = certified_world(tmp_path, monkeypatch, record_webhook_url=hook.url, record_webhook_secret=SECRET)
    yield made
    made.svc.store.close()




def claim(world: World, queued_id: int, run_id: str = RETEST_RUN) -> None:
    with unit(world.svc.store) as s:
        row = s.get(QueuedRun, queued_id)
        row.state, row.run_id, row.bench = "claimed", run_id, "bench1"


def audit_rows(world: World) -> list[AuditEntry]:
    with reading(world.svc.store) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.method == "EVENT").order_by(AuditEntry.id)))


def test_a_regressing_release_is_followed_to_a_flagged_delta_audited_and_posted(world: World, hook: Hook) -> None:
    queued_id = register(world)
    assert retests.settle_retests(world.svc) == []  # pending: nothing to write
    claim(world, queued_id)
    assert retests.settle_retests(world.svc) == [f"{MODEL}: re-test of 1.5.0 running (run {RETEST_RUN})"]
    assert retests.settle_retests(world.svc) == []  # no change, no revision
    assert retest_of(world)["state"] == "running"

    retest = finished_retest(world.reports, RETEST_RUN, {**BASELINE, "5.6-1": "FAIL", "5.5-1": "PASS"},
                             firmware="1.5.0")
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    [line] = retests.settle_retests(world.svc)
    assert line == f"{MODEL}: re-test of 1.5.0: FAIL - FLAGGED: newly failing 5.6-1"
    got = retest_of(world)
    assert (got["state"], got["verdict"], got["flagged"], got["run_id"]) == ("done", "FAIL", True, RETEST_RUN)
    assert got["delta"]["newly_failing"] == ["5.6-1"] and got["delta"]["newly_passing"] == ["5.5-1"]
    assert got["report_url"] == f"/reports/{RETEST_RUN}" and got["reason"] is None
    assert got["approval"]["by"] == "Alex Example" and got["approval"]["automatic"] is False  # approved before
    assert got["conformance_sha256"] == hashlib.sha256((retest / "conformance.json").read_bytes()).hexdigest()
    view = records.public_view(world.svc, MODEL)
    assert view["figures"]["last_retest"]["flagged"] and view["revision"]["kind"] == "retest"
    chain = records.revisions(world.svc, MODEL)
    assert verify_chain(chain).ok and [r["by"] for r in chain["revisions"]][-2:] == [records.KEEPER] * 2

    [(headers, body)] = hook.received
    assert headers[SIGNATURE_HEADER] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert payload == {"event": "record.flagged", "model": MODEL, "version": "1.5.0", "newly_failing": ["5.6-1"],
                       "record_url": f"/records/{MODEL}",
                       "revision": {"seq": view["revision"]["seq"], "hash": view["revision"]["hash"]}}
    details = [(row.path, row.status, row.detail) for row in audit_rows(world)]
    assert any("record.flagged" in d and "newly failing 5.6-1" in d and s == 200 for _, s, d in details)
    assert any("webhook delivered" in d for _, _, d in details)
    assert all(row.user_name == records.KEEPER for row in audit_rows(world))
    assert retests.settle_retests(world.svc) == []  # settled: the keeper leaves it


def test_a_release_that_holds_is_done_unflagged_and_nobody_is_called(world: World, hook: Hook) -> None:
    queued_id = register(world)
    finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    got = retest_of(world)
    assert (got["state"], got["flagged"]) == ("done", False)
    assert sorted(got["delta"]["unchanged"]) == sorted(BASELINE) and hook.received == []


def test_a_failed_queued_run_is_inconclusive_with_its_cause(world: World) -> None:
    queued_id = register(world)
    finish_queued_run(world.svc.store, queued_id=queued_id, state="failed",
                      error="bench1: release install refused: signature invalid")
    retests.settle_retests(world.svc)
    got = retest_of(world)
    assert (got["state"], got["verdict"], got["delta"], got["flagged"]) == ("failed", "INCONCLUSIVE", None, False)
    assert "release install refused: signature invalid" in got["reason"]


def test_a_run_without_verdicts_or_without_assessed_provisions_is_inconclusive(world: World) -> None:
    first = register(world, "1.5.0")
    finish_queued_run(world.svc.store, queued_id=first, state="done", run_id="20261205-000000-gone")
    second = register(world, "1.6.0")
    finished_retest(world.reports, RETEST_RUN, {p: "NOT_ASSESSED" for p in BASELINE}, firmware="1.6.0")
    finish_queued_run(world.svc.store, queued_id=second, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    gone, empty = retest_of(world, "1.5.0"), retest_of(world, "1.6.0")
    assert (gone["state"], gone["verdict"]) == ("failed", "INCONCLUSIVE") and "no verdicts" in gone["reason"]
    assert (empty["state"], empty["verdict"]) == ("failed", "INCONCLUSIVE") and "assessed no provision" in empty["reason"]


@pytest.mark.parametrize(("content", "named"), [
    ({"summary": {"overall": "PASS"}, "provisions": {"5.1-1": "PASS"}}, "field 'provisions' must be a list"),
    ({"summary": "PASS", "provisions": [{"verdict": "PASS"}]}, "provisions[0] has no id"),
    ({"provisions": [{"id": "5.1-1", "verdict": "GREEN"}]}, "(5.1-1) has verdict 'GREEN'"),
    (["not", "a", "report"], "field 'provisions' must be a list"),
    ("{truncated", "conformance.json is unusable (Expecting"),
])
def test_a_malformed_conformance_json_makes_the_retest_inconclusive_naming_it(world: World, content: object,
                                                                              named: str) -> None:
    """The keeper's round goes on: the re-test fails INCONCLUSIVE with what is wrong, never a traceback."""
    queued_id = register(world)
    run_dir = finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    (run_dir / "conformance.json").write_text(content if isinstance(content, str) else json.dumps(content))
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    [line] = retests.settle_retests(world.svc)
    got = retest_of(world)
    assert (got["state"], got["verdict"], got["delta"], got["flagged"]) == ("failed", "INCONCLUSIVE", None, False)
    assert named in got["reason"] and f"run {RETEST_RUN}" in got["reason"] and named in line


def test_a_report_without_a_summary_is_done_but_inconclusive(world: World) -> None:
    queued_id = register(world)
    run_dir = finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    (run_dir / "conformance.json").write_text(json.dumps({"summary": "PASS", "approval": "yes",
                                                          "provisions": [{"id": "5.1-1", "verdict": "PASS"}]}))
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    got = retest_of(world)
    assert (got["state"], got["verdict"], got["approval"]) == ("done", "INCONCLUSIVE", None)


def test_the_report_is_made_and_approved_by_the_retest_signatory(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished re-test without a report: `certlab report` makes it and the configured signatory approves it."""
    calls: list[tuple[str, ...]] = []

    def certlab_report(svc: object, run_dir: Path, *args: str) -> None:
        calls.append(args)
        if args[0] != "approve":
            (run_dir / "conformance.json").write_text(json.dumps({"summary": {"overall": "PASS"},
                                                                  "provisions": [{"id": "5.1-1", "verdict": "PASS"}]}))
        else:
            (run_dir / "approval.json").write_text("{}")
            made = json.loads((run_dir / "conformance.json").read_text())
            made["approval"] = {"by": args[3], "role": args[5], "at": "2026-12-05T12:00:00Z"}
            (run_dir / "conformance.json").write_text(json.dumps(made))

    monkeypatch.setattr(report_actions, "certlab_report", certlab_report)
    assert retests.retest_signatory(world.svc) == ("Alex Example", "Technical Manager")  # the profile's first
    monkeypatch.setattr(world.svc, "settings", type(world.svc.settings)(**{**world.svc.settings.__dict__,
                                                                            "retest_signatory": "sam sample"}))
    assert retests.retest_signatory(world.svc) == ("Sam Sample", "Quality Manager")
    run_dir = world.reports / RETEST_RUN
    run_dir.mkdir()
    (run_dir / "verdicts.json").write_text("{}")
    queued_id = register(world)
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    retests.settle_retests(world.svc)
    assert calls[0] == (str(run_dir.resolve()), *report_actions.profile_args(world.svc))
    assert calls[1][:5] == ("approve", str(run_dir.resolve()), "--by", "Sam Sample", "--role")
    got = retest_of(world)
    assert (got["state"], got["verdict"], got["reason"]) == ("done", "PASS", None)
    assert got["approval"] == {"by": "Sam Sample", "role": "Quality Manager", "at": "2026-12-05T12:00:00Z",
                               "automatic": True}
    assert got["delta"]["not_retested"] and not got["flagged"]


def test_only_one_process_keeps_records_at_a_time(world: World) -> None:
    queued_id = register(world)
    claim(world, queued_id)
    with retests.keeper_turn(world.svc.settings.data_dir) as mine:
        assert mine
        assert retests.settle_retests(world.svc) == []  # another holder's turn: skipped, not waited for
    assert len(retests.settle_retests(world.svc)) == 1


def test_the_webhook_is_tried_again_and_its_failure_returned_not_raised(hook: Hook) -> None:
    slept: list[float] = []
    hook.statuses = [500, 503]
    got = post_json(hook.url, {"event": "x"}, secret=None, sleep=slept.append)
    assert (got.ok, got.attempts, got.status) == (True, 3, 200) and slept == [1.0, 2.0]
    assert SIGNATURE_HEADER not in hook.received[0][0]
    hook.statuses = [500, 500, 500]
    failed = post_json(hook.url, {"event": "x"}, sleep=slept.append)
    assert not failed.ok and failed.attempts == 3 and "HTTP 500" in failed.describe()
    closed = post_json("http://127.0.0.1:9/none", {"event": "x"}, timeout=1.0, tries=2, sleep=slept.append)
    assert not closed.ok and closed.attempts == 2


def test_a_keeper_reads_again_only_the_records_with_a_new_revision_or_a_pending_retest(world: World,
                                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from lab.store import records as record_store

    read: list[list[str]] = []
    heads = record_store.heads

    def counting(target, **kw):
        got = heads(target, **kw)
        read.append([h.record.model for h in got if h.last is not None])
        return got

    monkeypatch.setattr(record_store, "heads", counting)
    quiet: dict[str, int] = {}
    assert retests.settle_retests(world.svc, quiet) == [] and quiet == {MODEL: 1}  # opened, nothing pending
    assert retests.settle_retests(world.svc, quiet) == [] and read[-1] == []  # not read again
    queued_id = register(world)  # a new revision: read again, and followed while pending
    assert retests.settle_retests(world.svc, quiet) == [] and read[-1] == [MODEL] and MODEL not in quiet
    claim(world, queued_id)
    assert retests.settle_retests(world.svc, quiet) == [f"{MODEL}: re-test of 1.5.0 running (run {RETEST_RUN})"]
    finished_retest(world.reports, RETEST_RUN, BASELINE, firmware="1.5.0")
    finish_queued_run(world.svc.store, queued_id=queued_id, state="done", run_id=RETEST_RUN)
    [line] = retests.settle_retests(world.svc, quiet)
    assert "re-test of 1.5.0" in line and retest_of(world)["state"] == "done"
    retests.settle_retests(world.svc, quiet)  # the settled revision: read once more, then quiet
    assert retests.settle_retests(world.svc, quiet) == [] and read[-1] == [] and MODEL in quiet
