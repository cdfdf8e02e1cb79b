"""The result store on SQLite and on a real PostgreSQL server.

PostgreSQL comes from `CERTLAB_DATABASE_URL` (a postgresql:// URL whose user may CREATE
DATABASE), else from a throwaway server these tests start with Debian's binaries
(/usr/lib/postgresql/*/bin, package `postgresql`), else those tests skip saying why.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from lab.errors import CertlabError
from lab.store import (
    Store,
    StoreError,
    StoreUnavailable,
    acquire_lease,
    append_event,
    claim_next_run,
    completed_nodeids,
    create_run,
    enqueue_run,
    events,
    expire_leases,
    export_verdicts,
    hash_evidence,
    lease_holder,
    open_store,
    quarantine_bench,
    queued_runs,
    record_result,
    register_bench,
    release_bench,
    release_lease,
    renew_lease,
    results,
)
from lab.store import db as store_db
from lab.store import repo
from lab.store.migrations import current_revision, head_revision, upgrade
from lab.store.models import Base, utcnow

ROOT = Path(__file__).resolve().parent.parent
TABLES = {"runs", "benches", "samples", "test_results", "evidence", "events", "leases", "queued_runs"}


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with open_store(db_url) as opened:
        yield opened


def run_threads(count: int, work: Callable[[int], object], timeout: float = 30) -> list[object]:
    """Run `work(i)` in `count` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count, timeout=timeout)
    out: list[object] = [None] * count
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            out[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"
    if errors:
        raise errors[0]
    return out


# --- schema ---------------------------------------------------------------------------------

def test_migrations_create_the_schema_and_are_idempotent(db_url: str) -> None:
    with open_store(db_url) as store:
        assert current_revision(store) == head_revision()
        assert TABLES <= set(inspect(store.engine).get_table_names())
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        with store.engine.connect() as conn:  # the migration builds exactly what the models say
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    Base.metadata) == []
        create_run(store, run_id="r1", edition="v2")
        upgrade(store)  # again: nothing to do, nothing lost
    with open_store(db_url) as again:
        assert current_revision(again) == head_revision()
        assert repo.get_run(again, run_id="r1") is not None


def test_migrations_run_once_when_orchestrators_start_together(db_url: str) -> None:
    stores = run_threads(4, lambda i: open_store(db_url))
    for s in stores:
        assert current_revision(s) == head_revision()
        s.close()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's writer: the file's write lock, held until the connection rolls back."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_sqlite_start_up_waits_beyond_one_busy_timeout_for_another_writer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_db, "SQLITE_BUSY_MS", 100)  # so that one busy timeout runs out
    path = tmp_path / "certlab.db"
    open_store(f"sqlite:///{path}").close()
    holder = _hold_write_lock(path)
    release = threading.Timer(1.0, holder.rollback)
    release.start()
    try:
        started = time.monotonic()
        with open_store(f"sqlite:///{path}", startup_wait_s=30) as store:
            assert current_revision(store) == head_revision()
        assert time.monotonic() - started >= 0.9, "it waited for the writer to finish"
    finally:
        release.join(5)
        holder.close()


def test_sqlite_start_up_gives_up_after_its_wait_with_one_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_db, "SQLITE_BUSY_MS", 100)
    path = tmp_path / "certlab.db"
    open_store(f"sqlite:///{path}").close()
    holder = _hold_write_lock(path)
    try:
        with pytest.raises(StoreUnavailable) as err:
            open_store(f"sqlite:///{path}", startup_wait_s=0.5)
    finally:
        holder.close()
    line = str(err.value)
    assert "stayed locked by another process for 0.5 s" in line and "fix:" in line and "\n" not in line


def test_sqlite_is_wal_with_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'x.db'}") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_default_store_is_sqlite_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CERTLAB_DATABASE_URL", raising=False)
    monkeypatch.setenv("CERTLAB_DATA_DIR", str(tmp_path / "data"))
    with open_store() as store:
        assert store.dialect == "sqlite"
    assert (tmp_path / "data" / "certlab.db").is_file()


def test_migrations_are_found_in_an_installed_package() -> None:
    from lab.store import migrations

    loc = Path(migrations.alembic_config().get_main_option("script_location"))
    assert loc.resolve() == Path(migrations.__file__).resolve().parent and (loc / "env.py").is_file()
    assert list((loc / "versions").glob("0001_*.py"))


# --- results --------------------------------------------------------------------------------

def _result(store: Store, nodeid: str, verdict: str = "PASS", **kw: object) -> bool:
    base = dict(run_id="run1", bench="bench1", nodeid=nodeid, verdict=verdict, test_case="5.1-1-2",
                provision="5.1-1", dut_serial="SN0001", dut_model="TH-100", firmware="1.4.0")
    return record_result(store, **{**base, **kw})


def test_results_stream_in_and_are_stored_once_per_key(store: Store, db_url: str) -> None:
    create_run(store, run_id="run1", edition="v2", lab="sim")
    with open_store(db_url, migrate=False) as reader:  # another process watching the store
        for i in range(3):
            assert _result(store, f"t::case{i}")
            assert len(results(reader, run_id="run1")) == i + 1  # visible as soon as recorded
    assert not _result(store, "t::case0", "FAIL")  # a completed result is not overwritten...
    assert _result(store, "t::case0", "FAIL", attempt=2)  # ...except by a later attempt
    rows = results(store, run_id="run1")
    assert len(rows) == 3 and Counter(r.nodeid for r in rows).most_common(1)[0][1] == 1
    assert [r.verdict for r in rows if r.nodeid == "t::case0"] == ["FAIL"]


def test_non_final_attempt_is_replaced_and_not_counted_complete(store: Store) -> None:
    create_run(store, run_id="run1", edition="v2")
    assert _result(store, "t::flaky", "INCONCLUSIVE", reason="relay silent", final=False)
    assert completed_nodeids(store, run_id="run1", bench="bench1") == set()
    assert _result(store, "t::flaky", "PASS")
    assert completed_nodeids(store, run_id="run1", bench="bench1") == {"t::flaky"}
    (row,) = results(store, run_id="run1")
    assert (row.verdict, row.reason, row.final) == ("PASS", "", True)


def test_concurrent_record_of_one_key_keeps_one_row(db_url: str, store: Store) -> None:
    create_run(store, run_id="run1", edition="v2")
    stores = [open_store(db_url, migrate=False) for _ in range(8)]
    try:
        written = run_threads(8, lambda i: _result(stores[i], "t::same"))
    finally:
        for s in stores:
            s.close()
    assert written.count(True) == 1 and len(results(store, run_id="run1")) == 1


CHILD = """
import sys, time
from lab.store import open_store, create_run, record_result
store = open_store(sys.argv[1])
create_run(store, run_id="killed", edition="v2")
for i in range(500):
    record_result(store, run_id="killed", bench="b1", nodeid=f"t::case{i:03d}", verdict="PASS")
    print(i, flush=True)
    time.sleep(0.005)
"""


def test_results_survive_sigkill_and_resume_adds_no_duplicates(db_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, db_url], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)
    try:
        lines = [proc.stdout.readline() for _ in range(20)]  # 20 results committed
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert lines[-1].strip() == "19"
    with open_store(db_url) as store:
        done = completed_nodeids(store, run_id="killed", bench="b1")
        assert len(done) >= 20 and {f"t::case{i:03d}" for i in range(20)} <= done
        for i in range(30):  # --resume: the completed ones are skipped, the rest recorded once
            nodeid = f"t::case{i:03d}"
            if nodeid not in done:
                assert record_result(store, run_id="killed", bench="b1", nodeid=nodeid, verdict="PASS")
        rows = results(store, run_id="killed")
        assert len(rows) == len({r.nodeid for r in rows}) == max(30, len(done))


def test_evidence_is_recorded_with_hashes(store: Store, tmp_path: Path) -> None:
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "console.log").write_text("login: root\n")
    create_run(store, run_id="run1", edition="v2")
    refs = hash_evidence(tmp_path, ["evidence/console.log"])
    _result(store, "t::ev", evidence=refs)
    (row,) = results(store, run_id="run1")
    assert row.evidence == ["evidence/console.log"]
    (ev,) = row.evidence_files
    assert (ev.path, ev.size, len(ev.sha256 or "")) == ("evidence/console.log", 12, 64)


def test_export_verdicts_has_the_verdicts_json_shape(store: Store) -> None:
    create_run(store, run_id="run1", edition="EN 303 645 V2.1.1", lab="sim")
    _result(store, "t::a", evidence=["evidence/bench1/console.log"])
    _result(store, "t::b", "INCONCLUSIVE", reason="power relay fault: relay silent", bench="bench2")
    _result(store, "t::c", "FAIL", reason="pending retry", final=False)
    doc = json.loads(json.dumps(export_verdicts(store, run_id="run1")))
    assert {"run_id", "edition", "results"} <= doc.keys()
    assert (doc["run_id"], doc["edition"], doc["lab"]) == ("run1", "EN 303 645 V2.1.1", "sim")
    design = {"bench", "dut_serial", "firmware", "test_case", "provision", "verdict", "reason", "evidence"}
    assert all(design <= r.keys() for r in doc["results"])
    assert [(r["bench"], r["verdict"]) for r in doc["results"]] == [("bench1", "PASS"), ("bench2", "INCONCLUSIVE")]
    first = doc["results"][0]
    assert (first["dut_serial"], first["firmware"], first["test_case"], first["provision"]) == \
        ("SN0001", "1.4.0", "5.1-1-2", "5.1-1")
    assert first["evidence"] == ["evidence/bench1/console.log"]
    with pytest.raises(StoreError):
        export_verdicts(store, run_id="nope")


# --- events ---------------------------------------------------------------------------------

def test_events_are_append_only(store: Store) -> None:
    create_run(store, run_id="run1", edition="v2")
    ids = [append_event(store, run_id="run1", bench="bench1", kind="test-start", message=f"m{i}")
           for i in range(3)]
    assert ids == sorted(ids)
    assert [e.message for e in events(store, run_id="run1")] == ["m0", "m1", "m2"]
    assert [e.message for e in events(store, run_id="run1", after_id=ids[0])] == ["m1", "m2"]
    assert not [n for n in dir(repo) if "event" in n and any(w in n for w in ("update", "delete", "edit"))]
    for sql in ("UPDATE events SET message = 'x'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"), store.transaction() as s:
            s.execute(text(sql))
    assert len(events(store)) == 3


# --- leases ---------------------------------------------------------------------------------

def test_twenty_threads_acquire_one_bench_exactly_one_wins(db_url: str, store: Store) -> None:
    register_bench(store, name="bench1", lab="sim", model="TH-100", capabilities=["power"])
    stores = [open_store(db_url, migrate=False) for _ in range(20)]
    try:
        won = run_threads(20, lambda i: acquire_lease(stores[i], bench="bench1", holder=f"orch-{i}", ttl=30))
    finally:
        for s in stores:
            s.close()
    assert won.count(True) == 1
    assert lease_holder(store, bench="bench1") == f"orch-{won.index(True)}"
    assert repo.benches(store)[0].state == "leased"


def test_an_expired_lease_can_be_taken_over(store: Store) -> None:
    register_bench(store, name="bench1", lab="sim", model="TH-100")
    t0 = utcnow()
    assert acquire_lease(store, bench="bench1", holder="a", ttl=30, now=t0)
    assert not acquire_lease(store, bench="bench1", holder="b", ttl=30, now=t0 + timedelta(seconds=10))
    assert renew_lease(store, bench="bench1", holder="a", ttl=30, now=t0 + timedelta(seconds=20))
    assert not acquire_lease(store, bench="bench1", holder="b", ttl=30, now=t0 + timedelta(seconds=40))
    later = t0 + timedelta(seconds=51)  # a stopped heartbeating at t0+20, lease ran out at t0+50
    assert acquire_lease(store, bench="bench1", holder="b", ttl=30, now=later)
    assert not renew_lease(store, bench="bench1", holder="a", ttl=30, now=later)
    assert not release_lease(store, bench="bench1", holder="a")
    assert lease_holder(store, bench="bench1", now=later) == "b"
    assert release_lease(store, bench="bench1", holder="b")
    assert repo.benches(store)[0].state == "available"


def test_expire_leases_returns_dead_holders_benches_to_the_pool(store: Store) -> None:
    for name in ("bench1", "bench2"):
        register_bench(store, name=name, lab="sim", model="TH-100")
    t0 = utcnow()
    acquire_lease(store, bench="bench1", holder="dead", ttl=5, now=t0)
    acquire_lease(store, bench="bench2", holder="alive", ttl=60, now=t0)
    assert expire_leases(store, now=t0 + timedelta(seconds=10)) == ["bench1"]
    states = {b.name: b.state for b in repo.benches(store)}
    assert states == {"bench1": "available", "bench2": "leased"}
    assert [e.kind for e in events(store, bench="bench1")] == ["lease-expired"]
    assert expire_leases(store, now=t0 + timedelta(seconds=10)) == []


def test_a_quarantined_bench_is_not_leased_until_released(store: Store) -> None:
    register_bench(store, name="bench1", lab="sim", model="TH-100")
    quarantine_bench(store, bench="bench1", reason="console silent twice")
    assert not acquire_lease(store, bench="bench1", holder="a", ttl=30)
    release_bench(store, bench="bench1")
    assert acquire_lease(store, bench="bench1", holder="a", ttl=30)
    with pytest.raises(StoreError, match="not registered"):
        acquire_lease(store, bench="ghost", holder="a", ttl=30)
    with pytest.raises(StoreError, match="another database"):
        register_bench(store, name="bench1", lab="other-lab", model="TH-100")


# --- queue ----------------------------------------------------------------------------------

def test_claim_next_run_serves_priority_then_age_matching_model_and_capabilities(store: Store) -> None:
    t0 = utcnow()
    ids = {
        "low": enqueue_run(store, model="TH-100", priority=0, at=t0),
        "high-old": enqueue_run(store, model="TH-100", priority=5, at=t0 + timedelta(seconds=1)),
        "high-new": enqueue_run(store, model="TH-100", priority=5, at=t0 + timedelta(seconds=2)),
        "needs-scope": enqueue_run(store, model="TH-100", priority=9, capabilities=["scope"]),
        "other-model": enqueue_run(store, model="CAM-7", priority=9),
    }
    order = []
    while (q := claim_next_run(store, model="TH-100", capabilities=["power", "console"], holder="h")) is not None:
        order.append(q.id)
        assert (q.state, q.claimed_by) == ("claimed", "h")
    assert order == [ids["high-old"], ids["high-new"], ids["low"]]
    scoped = claim_next_run(store, model="TH-100", capabilities=["power", "scope"], holder="h2", bench="b9")
    assert scoped is not None and (scoped.id, scoped.bench) == (ids["needs-scope"], "b9")
    assert [q.id for q in queued_runs(store, states=["pending"])] == [ids["other-model"]]


def test_a_claimed_entry_names_its_run_while_it_goes(store: Store) -> None:
    from lab.store.scheduling import finish_queued_run, note_queued_run_id

    qid = enqueue_run(store, model="TH-100")
    assert not note_queued_run_id(store, queued_id=qid, run_id="r-too-early")  # pending: not linked
    assert claim_next_run(store, model="TH-100", capabilities=[], holder="h") is not None
    assert note_queued_run_id(store, queued_id=qid, run_id="r1")
    assert [(q.state, q.run_id) for q in queued_runs(store) if q.id == qid] == [("claimed", "r1")]
    finish_queued_run(store, queued_id=qid, state="done", run_id="r1")
    assert not note_queued_run_id(store, queued_id=qid, run_id="r2")  # done: the run it became stays


def test_ten_threads_claim_each_queued_run_exactly_once(db_url: str, store: Store) -> None:
    t0 = utcnow()
    expected = {enqueue_run(store, model="TH-100", priority=i % 4, capabilities=["power"][: i % 2],
                            payload={"n": i}, at=t0 + timedelta(milliseconds=i)) for i in range(40)}
    untouched = {enqueue_run(store, model="TH-100", capabilities=["scope"]),
                 enqueue_run(store, model="CAM-7")}
    stores = [open_store(db_url, migrate=False) for _ in range(10)]

    def drain(i: int) -> list[tuple[int, int]]:
        got = []
        for _ in range(100):  # bounded: 40 runs between 10 claimers
            q = claim_next_run(stores[i], model="TH-100", capabilities=["power", "console"], holder=f"h{i}")
            if q is None:
                return got
            got.append((q.id, q.priority))
        raise AssertionError("claim loop did not end")

    try:
        claimed = run_threads(10, drain)
    finally:
        for s in stores:
            s.close()
    all_ids = [qid for got in claimed for qid, _ in got]
    assert sorted(all_ids) == sorted(expected)  # every matching run once, no other
    for got in claimed:  # each claimer saw priorities only fall: the best was always taken first
        prios = [p for _, p in got]
        assert prios == sorted(prios, reverse=True)
    assert {q.id for q in queued_runs(store, states=["pending"])} == untouched


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "this is not a url",
    "mysql://certlab:s3cr3t-pw@db.example/certlab",
    "postgresql://certlab:s3cr3t-pw@127.0.0.1:1/certlab",
    "postgresql+psycopg://certlab:s3cr3t-pw@127.0.0.1:1",
    "postgresql+nosuchdriver://certlab:s3cr3t-pw@127.0.0.1/certlab",
    "sqlite:////proc/certlab-no/such/dir/x.db",
])
def test_bad_database_url_is_one_line_without_the_password(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTLAB_DATABASE_URL", url)
    with pytest.raises(CertlabError) as caught:
        open_store()
    message = str(caught.value)
    assert message and "\n" not in message and "s3cr3t-pw" not in message
    assert "CERTLAB_DATABASE_URL" in message or "CERTLAB_DATA_DIR" in message
