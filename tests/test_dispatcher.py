"""The queue dispatcher on a real store: order, matching, health, faults, leases, restarts.

SQLite throughout; the tests of what differs per database (bulk claims, two dispatchers racing)
also run on PostgreSQL, with test_store's server fixtures. Every wait here is bounded (events
with timeouts, `max_seconds`); nothing asserts on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from lab.errors import PowerFault
from lab.orchestrator.dispatcher import BenchSlot, Dispatcher
from lab.store import (
    QueuedRun,
    Store,
    acquire_lease,
    acquire_leases,
    benches,
    claim_next_run,
    claim_runs,
    enqueue_run,
    events,
    lease_holder,
    open_store,
    queued_runs,
    register_bench,
    renew_leases,
)
from lab.store.models import utcnow

WAIT = 10.0  # upper bound for any wait in these tests; reaching it means the behaviour is wrong


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'certlab.db'}") as opened:
        yield opened


class Recorder:
    """An `execute` that records (queued id, bench) and can fail or block on request."""

    def __init__(self, fail: dict[int, Exception] | None = None) -> None:
        self.calls: list[tuple[int, str]] = []
        self.fail = fail or {}
        self.lock = threading.Lock()

    def __call__(self, queued: QueuedRun, slot: BenchSlot) -> str:
        with self.lock:
            self.calls.append((queued.id, slot.name))
        if queued.id in self.fail:
            raise self.fail[queued.id]
        return f"run-{queued.id}"

    @property
    def order(self) -> list[int]:
        return [qid for qid, _ in self.calls]


def states(store: Store) -> dict[int, str]:
    return {q.id: q.state for q in queued_runs(store, states=["pending", "claimed", "done", "failed"])}


def test_runs_are_served_highest_priority_first_then_oldest(store: Store) -> None:
    t0 = utcnow() - timedelta(minutes=1)
    low = enqueue_run(store, model="TH-100", priority=0, at=t0)
    high_new = enqueue_run(store, model="TH-100", priority=5, at=t0 + timedelta(seconds=2))
    high_old = enqueue_run(store, model="TH-100", priority=5, at=t0 + timedelta(seconds=1))
    rec = Recorder()
    stats = Dispatcher(store, holder="d1", slots=[BenchSlot("b1", "TH-100")], execute=rec).run(max_seconds=WAIT)
    assert rec.order == [high_old, high_new, low]
    assert (stats.dispatched, stats.done, stats.failed) == (3, 3, 0)
    assert len(stats.latencies) == 3 and all(lat >= 0 for lat in stats.latencies)
    done = {q.id: q for q in queued_runs(store, states=["done"])}
    assert {q.run_id for q in done.values()} == {f"run-{i}" for i in (low, high_new, high_old)}
    assert {q.bench for q in done.values()} == {"b1"}
    assert lease_holder(store, bench="b1") is None  # given back when the dispatcher stopped


def test_runs_go_only_to_benches_of_their_model_with_their_capabilities(store: Store) -> None:
    slots = [BenchSlot("plain", "TH-100", {"power"}), BenchSlot("scoped", "TH-100", ["power", "scope"]),
             BenchSlot("cam", "CAM-7", {"power"})]
    ids = {
        "scope": [enqueue_run(store, model="TH-100", capabilities=["scope"]) for _ in range(3)],
        "th": [enqueue_run(store, model="TH-100", capabilities=["power"]) for _ in range(4)],
        "cam": [enqueue_run(store, model="CAM-7") for _ in range(2)],
        "nobody": [enqueue_run(store, model="TH-100", capabilities=["rf"]), enqueue_run(store, model="DB-1")],
    }
    rec = Recorder()
    stats = Dispatcher(store, holder="d1", slots=slots, execute=rec).run(max_seconds=WAIT)
    where = dict(rec.calls)
    assert sorted(where) == sorted(ids["scope"] + ids["th"] + ids["cam"])  # each once
    assert {where[i] for i in ids["scope"]} == {"scoped"}
    assert {where[i] for i in ids["cam"]} == {"cam"}
    assert {where[i] for i in ids["th"]} <= {"plain", "scoped"}
    assert all(states(store)[i] == "pending" for i in ids["nobody"])  # idle exit: nothing fits
    assert stats.dispatched == 9


def test_claim_runs_keeps_a_rare_capability_free_for_the_work_only_it_can_do(db_url: str) -> None:
    with open_store(db_url) as store:
        _rare_capability(store)


def _rare_capability(store: Store) -> None:
    for name, caps in (("scoped", ["power", "scope"]), ("plain", ["power"])):
        register_bench(store, name=name, model="TH-100", capabilities=caps)
    t0 = utcnow()
    anyone = enqueue_run(store, model="TH-100", priority=9, at=t0)
    needs_scope = enqueue_run(store, model="TH-100", capabilities=["scope"], priority=1, at=t0)
    later = enqueue_run(store, model="TH-100", priority=1, at=t0 + timedelta(seconds=1))
    got = claim_runs(store, benches=[("scoped", "TH-100", ["power", "scope"]), ("plain", "TH-100", ["power"])],
                     holder="h")
    assert [(q.id, q.bench, q.state, q.claimed_by) for q in got] == [
        (anyone, "plain", "claimed", "h"), (needs_scope, "scoped", "claimed", "h")]
    assert claim_next_run(store, model="TH-100", capabilities=["power"], holder="h").id == later
    assert claim_runs(store, benches=[("plain", "TH-100", ["power"])], holder="h") == []


def test_a_bench_failing_its_health_check_is_quarantined_and_another_takes_the_work(store: Store) -> None:
    checked: list[str] = []

    def health(slot: BenchSlot) -> str | None:
        checked.append(slot.name)
        return "console silent: no byte in 5 s" if slot.name == "sick" else None

    ids = [enqueue_run(store, model="TH-100") for _ in range(3)]
    rec = Recorder()
    slots = [BenchSlot("sick", "TH-100"), BenchSlot("well", "TH-100")]
    stats = Dispatcher(store, holder="d1", slots=slots, execute=rec, health_check=health).run(max_seconds=WAIT)
    assert sorted(rec.calls) == [(i, "well") for i in ids]
    assert stats.quarantined == ["sick"] and checked.count("sick") == 1
    assert checked.count("well") >= 3  # before every run it took
    bench = {b.name: b for b in benches(store)}["sick"]
    assert bench.state == "quarantined" and "console silent" in (bench.state_reason or "")
    assert [e.kind for e in events(store, bench="sick")] == ["bench-quarantined"]
    assert lease_holder(store, bench="sick") is None


def test_a_health_check_that_raises_counts_as_failed(store: Store) -> None:
    def health(slot: BenchSlot) -> str | None:
        raise OSError("relay socket refused\nsecond line")

    enqueue_run(store, model="TH-100")
    rec = Recorder()
    stats = Dispatcher(store, holder="d1", slots=[BenchSlot("b1", "TH-100")], execute=rec,
                       health_check=health).run(max_seconds=WAIT)
    assert rec.calls == [] and stats.quarantined == ["b1"]
    assert benches(store)[0].state_reason == "health check failed: OSError: relay socket refused"


def test_a_failing_run_is_marked_failed_and_the_dispatcher_goes_on(store: Store) -> None:
    t0 = utcnow() - timedelta(minutes=1)
    ids = [enqueue_run(store, model="TH-100", at=t0 + timedelta(seconds=i)) for i in range(3)]
    rec = Recorder(fail={ids[0]: RuntimeError("pytest worker crashed\nTraceback (most recent call last): ...")})
    stats = Dispatcher(store, holder="d1", slots=[BenchSlot("b1", "TH-100")], execute=rec).run(max_seconds=WAIT)
    assert rec.order == ids
    assert (stats.dispatched, stats.done, stats.failed) == (3, 2, 1)
    assert states(store) == {ids[0]: "failed", ids[1]: "done", ids[2]: "done"}
    [event] = [e for e in events(store, bench="b1") if e.kind == "queued-run-failed"]
    assert event.message == f"queued run {ids[0]}: RuntimeError: pytest worker crashed"  # one line
    assert benches(store)[0].state == "available"  # not a lab fault: the bench is not blamed


def test_lab_faults_quarantine_a_bench_at_the_fault_limit(store: Store) -> None:
    ids = [enqueue_run(store, model="TH-100") for _ in range(6)]
    calls: list[str] = []

    def execute(queued: QueuedRun, slot: BenchSlot) -> str:
        calls.append(slot.name)
        if slot.name == "flaky":
            raise PowerFault("relay did not answer", bench=slot.name)
        return "ok"

    slots = [BenchSlot("flaky", "TH-100"), BenchSlot("good", "TH-100")]
    stats = Dispatcher(store, holder="d1", slots=slots, execute=execute, fault_limit=2).run(max_seconds=WAIT)
    assert calls.count("flaky") == 2 and stats.quarantined == ["flaky"]
    assert (stats.done, stats.failed) == (4, 2) and stats.dispatched == len(ids)
    flaky = {b.name: b for b in benches(store)}["flaky"]
    assert flaky.state == "quarantined" and flaky.fault_count == 2
    assert "power relay fault: relay did not answer" in (flaky.state_reason or "")


def test_a_slow_run_on_one_bench_does_not_hold_up_the_others(store: Store) -> None:
    ids = [enqueue_run(store, model="TH-100") for _ in range(6)]
    others_done = threading.Event()
    fast: list[int] = []
    released_by_others: list[bool] = []

    def execute(queued: QueuedRun, slot: BenchSlot) -> None:
        if slot.name == "slow" and not released_by_others:
            released_by_others.append(others_done.wait(WAIT))
        elif slot.name == "fast":
            fast.append(queued.id)
            if len(fast) == len(ids) - 1:
                others_done.set()

    slots = [BenchSlot("slow", "TH-100"), BenchSlot("fast", "TH-100")]
    stats = Dispatcher(store, holder="d1", slots=slots, execute=execute).run(max_seconds=WAIT)
    assert released_by_others == [True] and stats.done == len(ids)


def test_a_dead_dispatchers_lease_expires_and_another_dispatcher_takes_the_bench(store: Store) -> None:
    register_bench(store, name="b1", model="TH-100")
    assert acquire_lease(store, bench="b1", holder="dead", ttl=0.3)  # then it stops heartbeating
    qid = enqueue_run(store, model="TH-100")
    rec = Recorder()
    stats = Dispatcher(store, holder="alive", slots=[BenchSlot("b1", "TH-100")], execute=rec,
                       lease_ttl=0.6).run(max_seconds=WAIT)
    assert rec.calls == [(qid, "b1")] and stats.done == 1
    assert {q.claimed_by for q in queued_runs(store, states=["done"])} == {"alive"}
    assert lease_holder(store, bench="b1") is None


def test_a_restarted_dispatcher_with_the_same_holder_gets_its_unfinished_claims_back(store: Store) -> None:
    qid = enqueue_run(store, model="TH-100")
    started, release = threading.Event(), threading.Event()

    def hangs(queued: QueuedRun, slot: BenchSlot) -> None:
        started.set()
        release.wait(WAIT)

    first = Dispatcher(store, holder="host1", slots=[BenchSlot("b1", "TH-100")], execute=hangs, drain_seconds=0)
    try:
        stats = first.run(max_seconds=WAIT, max_runs=1)
        assert started.wait(WAIT)
        assert (stats.dispatched, stats.unfinished) == (1, 1)
        assert states(store)[qid] == "claimed"
        assert lease_holder(store, bench="b1") == "host1"  # kept: the bench is still in use

        rec = Recorder()  # the process restarts: same holder, the old run is gone
        again = Dispatcher(store, holder="host1", slots=[BenchSlot("b1", "TH-100")], execute=rec)
        assert again.run(max_seconds=WAIT).done == 1
        assert rec.calls == [(qid, "b1")] and states(store)[qid] == "done"
    finally:
        release.set()


def test_run_is_bounded_by_count_time_and_stop(store: Store) -> None:
    ids = [enqueue_run(store, model="TH-100") for _ in range(5)]
    rec = Recorder()
    d = Dispatcher(store, holder="d1", slots=[BenchSlot("b1", "TH-100")], execute=rec)
    assert d.run(max_seconds=WAIT, max_runs=2).dispatched == 2
    assert sorted(q.id for q in queued_runs(store, states=["pending"])) == sorted(set(ids) - set(rec.order))

    assert d.run(max_seconds=0).dispatched == 0  # no time at all: nothing taken
    idle = Dispatcher(store, holder="d2", slots=[BenchSlot("c1", "CAM-7")], execute=rec, poll_interval=0.05)
    assert idle.run(max_seconds=0.3, idle_exit=False).dispatched == 0  # waits for work, then gives up

    timer = threading.Timer(0.2, d.stop)
    timer.start()
    try:
        stats = d.run(max_seconds=WAIT, idle_exit=False)
    finally:
        timer.cancel()
    assert stats.dispatched == 3 and len(rec.calls) == 5


def test_bulk_leases_follow_the_single_lease_rules(store: Store) -> None:
    for name in ("b1", "b2", "b3"):
        register_bench(store, name=name, model="TH-100")
    t0 = utcnow()
    assert acquire_lease(store, bench="b3", holder="other", ttl=30, now=t0)
    assert acquire_leases(store, benches=["b1", "b2", "b3"], holder="me", ttl=5, now=t0) == ["b1", "b2"]
    assert renew_leases(store, holder="me", ttl=5, now=t0 + timedelta(seconds=3)) == 2
    later = t0 + timedelta(seconds=9)  # expired: another holder takes one
    assert acquire_leases(store, benches=["b2"], holder="other", ttl=30, now=later) == ["b2"]
    assert renew_leases(store, holder="me", ttl=5, now=later) == 1


def test_bench_slot_and_dispatcher_refuse_bad_arguments(store: Store) -> None:
    assert BenchSlot("b1", "TH-100", ["power", "power"]).capabilities == frozenset({"power"})
    with pytest.raises(ValueError):
        Dispatcher(store, holder="d", slots=[BenchSlot("b1", "M"), BenchSlot("b1", "M")], execute=Recorder())
    with pytest.raises(ValueError):
        Dispatcher(store, holder="d", slots=[BenchSlot("b1", "M")], execute=Recorder(), lease_ttl=0)


def test_two_dispatchers_sharing_benches_run_each_queued_run_once(db_url: str) -> None:
    stores = [open_store(db_url) for _ in range(3)]
    try:
        setup, a_store, b_store = stores
        plain = [enqueue_run(setup, model="TH-100", payload={"n": n}) for n in range(40)]
        scoped = [enqueue_run(setup, model="TH-100", capabilities=["scope"]) for _ in range(5)]
        radio = [enqueue_run(setup, model="TH-100", capabilities=["rf"]) for _ in range(5)]
        lock = threading.Lock()
        active: dict[str, str] = {}
        clashes: list[str] = []
        ran: list[tuple[int, str, str]] = []

        def execute_as(holder: str):
            def execute(queued: QueuedRun, slot: BenchSlot) -> None:
                with lock:
                    if slot.name in active:
                        clashes.append(f"{slot.name}: {active[slot.name]} and {holder}")
                    active[slot.name] = holder
                    ran.append((queued.id, slot.name, holder))
                threading.Event().wait(0.002)  # some overlap between the two
                with lock:
                    del active[slot.name]
            return execute

        shared = [BenchSlot("s2", "TH-100"), BenchSlot("s3", "TH-100")]
        a = Dispatcher(a_store, holder="A", slots=[BenchSlot("s1", "TH-100", {"scope"}), *shared],
                       execute=execute_as("A"), lease_ttl=0.6)
        b = Dispatcher(b_store, holder="B", slots=[*shared, BenchSlot("s4", "TH-100", {"rf"})],
                       execute=execute_as("B"), lease_ttl=0.6)
        out: dict[str, object] = {}

        def run(name: str, d: Dispatcher) -> None:
            try:
                out[name] = d.run(max_seconds=WAIT)
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                out[name] = exc

        threads = [threading.Thread(target=run, args=(n, d), daemon=True) for n, d in (("A", a), ("B", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT + 5)
        assert not any(t.is_alive() for t in threads) and not any(isinstance(v, BaseException) for v in out.values())
        assert sorted(qid for qid, _, _ in ran) == sorted(plain + scoped + radio)  # each exactly once
        assert clashes == []  # a bench never ran two things at once
        where = {qid: bench for qid, bench, _ in ran}
        assert {where[i] for i in scoped} == {"s1"} and {where[i] for i in radio} == {"s4"}
        assert {q.state for q in queued_runs(setup, states=["pending", "claimed", "done", "failed"])} == {"done"}
    finally:
        for s in stores:
            s.close()


def test_an_instant_health_check_with_more_benches_than_runs_still_dispatches(store: Store) -> None:
    """A lab host's heartbeat answers a health check at once: the bench matched with the one run
    must not be hidden for a poll with its idle twins (the dispatcher then stopped, idle)."""
    run = enqueue_run(store, model="TH-100")
    rec = Recorder()
    slots = [BenchSlot(f"b{i}", "TH-100") for i in range(1, 5)]
    stats = Dispatcher(store, holder="d1", slots=slots, execute=rec, health_check=lambda slot: None).run(max_seconds=WAIT)
    assert stats.dispatched == 1 and rec.order == [run] and states(store)[run] == "done"
