"""The queue and bench board actions (lab.actions.queue, lab.actions.benches) and the store
functions they added (cancel_queued_run, set_queue_priority, move_queued_run), on a private store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from apilib import make_app, serving
from lab.actions import benches, queue
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound
from lab.actions.inventories import InventoryCache
from lab.store import (
    acquire_lease,
    append_event,
    create_run,
    enqueue_run,
    plan_results,
    quarantine_bench,
    register_bench,
    set_run_status,
)
from lab.store.accounts import add_user
from lab.resources import sim_inventory
from lab.store.models import utcnow
from lab.store.scheduling import cancel_queued_run, move_queued_run, queued_runs, set_queue_priority


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    with serving(make_app(tmp_path, data_dir=tmp_path / "data")) as app:
        yield app.state.services


def caller(svc: Services, name: str, role: str) -> Caller:
    user, _ = add_user(svc.store, name=name, role=role, org=f"{name}-org")
    return Caller(id=user.id, name=name, role=role, org_id=user.org_id, org=f"{name}-org")


def order(svc: Services) -> list[int]:
    return [q.id for q in queued_runs(svc.store, states=("pending",))]


def test_moving_reprioritising_and_cancelling_pending_runs(svc: Services) -> None:
    t = utcnow()
    a, b, c = (enqueue_run(svc.store, model="TH-100", at=t + timedelta(seconds=i)) for i in range(3))
    assert order(svc) == [a, b, c]
    assert move_queued_run(svc.store, queued_id=c, up=True) == 1 and order(svc)[0] == c
    assert move_queued_run(svc.store, queued_id=c, up=True) == 1, "at the top already: unchanged"
    assert move_queued_run(svc.store, queued_id=a, up=False) == -1 and order(svc)[-1] == a
    assert set_queue_priority(svc.store, queued_id=a, priority=5) and order(svc)[0] == a
    assert cancel_queued_run(svc.store, queued_id=b) and b not in order(svc)
    assert not cancel_queued_run(svc.store, queued_id=b), "only a pending run"
    assert move_queued_run(svc.store, queued_id=b, up=True) is None
    assert not set_queue_priority(svc.store, queued_id=b, priority=1)
    assert len(queued_runs(svc.store, limit=1)) == 1


def test_queue_actions_check_role_and_input(svc: Services) -> None:
    lab, maker = caller(svc, "lab", "engineer"), caller(svc, "maker", "manufacturer")
    with pytest.raises(Forbidden):
        queue.listing(svc, maker)
    with pytest.raises(Forbidden):
        queue.add(svc, maker, model="TH-100")
    for fields, field in (({"model": ""}, "model"), ({"model": "TH 100"}, "model"),
                          ({"model": "TH-100", "priority": "high"}, "priority"),
                          ({"model": "TH-100", "priority": 5000}, "priority"),
                          ({"model": "TH-100", "capabilities": "wifi, <b>"}, "capabilities"),
                          ({"model": "TH-100", "suite": "/etc"}, "suite"),
                          ({"model": "TH-100", "edition": "v9"}, "edition")):
        with pytest.raises(Invalid) as refused:
            queue.add(svc, lab, **fields)
        assert refused.value.field == field, (fields, refused.value.msg)
    qid = queue.add(svc, lab, model="TH-100", capabilities="power-cut, wifi wifi", priority="3", suite="examples")
    (row,) = queue.listing(svc, lab)
    assert (row.id, row.model, row.capabilities, row.priority, row.requested_by) == (
        qid, "TH-100", ["power-cut", "wifi"], 3, "lab")
    assert row.suites == ["examples"]
    assert queue.move(svc, lab, qid, "up") == 3
    assert queue.reprioritise(svc, lab, qid, "7") == 7
    queue.cancel(svc, lab, qid)
    with pytest.raises(Conflict):
        queue.cancel(svc, lab, qid)
    with pytest.raises(NotFound):
        queue.cancel(svc, lab, 9999)
    with pytest.raises(Invalid):
        queue.move(svc, lab, qid, "sideways")


def test_the_bench_board_shows_state_holder_current_case_and_health(svc: Services) -> None:
    lab, maker = caller(svc, "lab", "engineer"), caller(svc, "maker", "manufacturer")
    for name in ("bench1", "bench2"):
        register_bench(svc.store, name=name, model="TH-100", lab="sim")
    assert acquire_lease(svc.store, bench="bench1", holder="run-x", ttl=60)
    create_run(svc.store, run_id="r1", edition="v2")
    set_run_status(svc.store, run_id="r1", status="running")
    plan_results(svc.store, run_id="r1", bench="bench1", tests=[{"nodeid": "t::a", "test_case": "5.1-1"},
                                                             {"nodeid": "t::b", "test_case": "5.1-2"}])
    append_event(svc.store, kind="health-check-failed", bench="bench2", message="bench2: no console prompt")
    quarantine_bench(svc.store, bench="bench2", reason="health check failed: no console prompt")
    with pytest.raises(Forbidden):
        benches.board(svc, maker)
    rows, note = benches.board(svc, lab)
    by = {r.name: r for r in rows}
    assert note is None and {"bench1", "bench2", "bench3"} <= set(by) and by["bench3"].state == "available"
    assert (by["bench1"].state, by["bench1"].holder, by["bench1"].current, by["bench1"].current_run) == ("leased", "run-x", "5.1-1", "r1")
    assert (by["bench2"].state, by["bench2"].reason) == ("quarantined", "health check failed: no console prompt")
    assert by["bench2"].health and "bench-quarantined" in by["bench2"].health and by["bench2"].health_at is not None
    assert by["bench1"].sample == "TH100-0001", "the inventory names the bench's DUT serial"
    with pytest.raises(Conflict):
        benches.release(svc, lab, "bench1")
    with pytest.raises(NotFound):
        benches.release(svc, lab, "nope")
    with pytest.raises(Forbidden):
        benches.release(svc, maker, "bench2")
    benches.release(svc, lab, "bench2")
    assert {r.name: r.state for r in benches.board(svc, lab)[0]}["bench2"] == "available"


def test_the_inventory_is_parsed_again_only_when_its_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(sim_inventory().read_text())
    cache = InventoryCache()
    first = cache.get(path)
    assert cache.get(path) is first
    path.write_text(path.read_text() + "\n# changed\n")
    assert cache.get(path) is not first
