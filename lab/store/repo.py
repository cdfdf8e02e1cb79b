"""What the orchestrator and the API do with the store: keyword-only functions, one job each.

Each function takes a `Store` (it then runs in its own short transaction and commits) or a
`Session` (it joins the caller's transaction and only flushes). Objects returned from a Store
call are detached but fully loaded.

Concurrency rests on conditional statements that both SQLite and PostgreSQL run atomically:
a lease is taken by `UPDATE ... WHERE holder IS NULL OR expires_at < now`, a queued run is
claimed by `UPDATE ... WHERE state = 'pending'`, a result is stored by
`INSERT ... ON CONFLICT (run_id, bench, nodeid) DO UPDATE ... WHERE <not final>`. Whoever's
statement changes the row has won; the others see a row count of 0. Timestamps come from this
host's clock (aware UTC): hosts sharing a database keep their clocks in sync (NTP).

Events have no update or delete function here, and database triggers refuse both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from lab.store.db import Store, StoreError, unavailable
from lab.store.models import (
    RUN_STATES,
    VERDICTS,
    Bench,
    Event,
    Evidence,
    Lease,
    QueuedRun,
    Run,
    Sample,
    TestResult,
    utcnow,
)

Target = Store | Session
CLAIM_PAGE = 64


@dataclass(frozen=True)
class EvidenceRef:
    """An evidence file as recorded: its path (relative to the run directory) and its hash."""

    path: str
    sha256: str | None = None
    size: int | None = None


def hash_evidence(root: Path, paths: Iterable[str | Path]) -> list[EvidenceRef]:
    """EvidenceRefs for files under `root` (the run directory), hashed now."""
    refs = []
    for rel in paths:
        full = root / rel
        digest = hashlib.sha256()
        with open(full, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        refs.append(EvidenceRef(str(rel), digest.hexdigest(), full.stat().st_size))
    return refs


# --- plumbing -------------------------------------------------------------------------------

@contextmanager
def _unit(target: Target) -> Iterator[Session]:
    """One unit of work: its own committed transaction for a Store, the caller's for a Session."""
    if isinstance(target, Session):
        try:
            yield target
            target.flush()
        except OperationalError as exc:
            bind = target.get_bind()
            raise unavailable(exc, bind.url.render_as_string(hide_password=True), bind.url.password) from None
        return
    try:
        with target.transaction() as session:
            yield session
    except OperationalError as exc:
        raise unavailable(exc, target.url, target.engine.url.password) from None


def _insert(session: Session, model: type) -> Any:
    """The dialect's INSERT, which has ON CONFLICT on both backends."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _ttl(ttl: float | timedelta) -> timedelta:
    return ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)


# --- runs, benches, samples -----------------------------------------------------------------

def create_run(target: Target, *, run_id: str, edition: str, lab: str | None = None,
               inventory_hash: str | None = None, operator: str | None = None,
               options: Mapping[str, Any] | None = None, status: str = "running",
               at: datetime | None = None) -> Run:
    """Record a new run; if it exists already (a resume), return it unchanged."""
    if status not in RUN_STATES:
        raise ValueError(f"run status must be one of {RUN_STATES}, not {status!r}")
    at = at or utcnow()
    with _unit(target) as s:
        s.execute(_insert(s, Run).values(
            id=run_id, edition=edition, lab=lab, inventory_hash=inventory_hash, operator=operator,
            options=dict(options or {}), status=status, created_at=at,
            started_at=at if status == "running" else None,
        ).on_conflict_do_nothing(index_elements=["id"]))
        return s.execute(select(Run).where(Run.id == run_id)
                         .execution_options(populate_existing=True)).scalar_one()


def get_run(target: Target, *, run_id: str) -> Run | None:
    with _unit(target) as s:
        return s.get(Run, run_id)


def set_run_status(target: Target, *, run_id: str, status: str, at: datetime | None = None) -> None:
    """Move a run to `status`; the first `running` stamps started_at, an end state finished_at."""
    if status not in RUN_STATES:
        raise ValueError(f"run status must be one of {RUN_STATES}, not {status!r}")
    at = at or utcnow()
    with _unit(target) as s:
        run = s.get(Run, run_id, with_for_update=True)
        if run is None:
            raise StoreError(f"run {run_id!r} is not in the store {_where(target)}")
        run.status = status
        if status == "running":
            run.started_at = run.started_at or at
            run.finished_at = None
        elif status in ("finished", "interrupted", "cancelled"):
            run.finished_at = at


def register_bench(target: Target, *, name: str, model: str, lab: str | None = None,
                   capabilities: Iterable[str] = ()) -> Bench:
    """Add a bench or refresh its model and capabilities; its state and faults are kept.

    Bench names are unique within one store: a name already used by another lab is refused.
    """
    caps = sorted(set(capabilities))
    with _unit(target) as s:
        s.execute(_insert(s, Bench).values(
            name=name, lab=lab, model=model, capabilities=caps, state="available", fault_count=0,
            updated_at=utcnow()).on_conflict_do_nothing(index_elements=["name"]))
        bench = s.get(Bench, name, with_for_update=True, populate_existing=True)
        assert bench is not None
        if bench.lab != lab and bench.lab is not None and lab is not None:
            raise StoreError(f"bench {name!r} already belongs to lab {bench.lab!r} in {_where(target)}; "
                             f"fix: give benches of lab {lab!r} other names, or use another database")
        bench.lab, bench.model, bench.capabilities = lab or bench.lab, model, caps
        bench.updated_at = utcnow()
        return bench


def benches(target: Target, *, lab: str | None = None) -> list[Bench]:
    with _unit(target) as s:
        query = select(Bench).order_by(Bench.name)
        return list(s.scalars(query.where(Bench.lab == lab) if lab else query))


def quarantine_bench(target: Target, *, bench: str, reason: str) -> None:
    """Take a bench out of the pool (failed health check, repeated lab faults)."""
    _set_bench_state(target, bench=bench, state="quarantined", reason=reason, kind="bench-quarantined")


def release_bench(target: Target, *, bench: str) -> None:
    """Return a quarantined bench to the pool (`certlab bench release NAME`); faults reset."""
    _set_bench_state(target, bench=bench, state="available", reason=None, kind="bench-released")


def _set_bench_state(target: Target, *, bench: str, state: str, reason: str | None, kind: str) -> None:
    with _unit(target) as s:
        row = s.get(Bench, bench, with_for_update=True)
        if row is None:
            raise StoreError(f"bench {bench!r} is not registered in {_where(target)}; "
                             f"fix: check the name (certlab queue / inventory)")
        if state == "available":  # back in the pool; still "leased" if someone holds a lease
            held = s.execute(select(Lease.holder).where(
                Lease.bench == bench, Lease.holder.is_not(None), Lease.expires_at >= utcnow())).first()
            state, row.fault_count = ("leased" if held else "available"), 0
        row.state, row.state_reason, row.updated_at = state, reason, utcnow()
        s.add(Event(bench=bench, kind=kind, message=reason or ""))


def note_bench_fault(target: Target, *, bench: str, message: str, run_id: str | None = None) -> int:
    """Count a lab fault against a bench; returns its fault count (the caller decides on quarantine)."""
    with _unit(target) as s:
        s.execute(update(Bench).where(Bench.name == bench)
                  .values(fault_count=Bench.fault_count + 1, updated_at=utcnow()))
        s.add(Event(run_id=run_id, bench=bench, kind="lab-fault", message=message))
        s.flush()
        return s.execute(select(Bench.fault_count).where(Bench.name == bench)).scalar_one_or_none() or 0


def register_sample(target: Target, *, serial: str, model: str, firmware: str | None = None,
                    received_at: datetime | None = None, condition: str | None = None) -> Sample:
    """Add a sample (model + serial) or update what is given about it."""
    with _unit(target) as s:
        return _sample(s, serial=serial, model=model, firmware=firmware,
                       received_at=received_at, condition=condition)


def _sample(s: Session, *, serial: str, model: str, firmware: str | None = None,
            received_at: datetime | None = None, condition: str | None = None) -> Sample:
    s.execute(_insert(s, Sample).values(
        serial=serial, model=model, firmware=firmware, received_at=received_at, condition=condition,
    ).on_conflict_do_nothing(index_elements=["model", "serial"]))
    sample = s.execute(select(Sample).where(Sample.model == model, Sample.serial == serial)
                       .execution_options(populate_existing=True)).scalar_one()
    for field, value in (("firmware", firmware), ("received_at", received_at), ("condition", condition)):
        if value is not None and getattr(sample, field) != value:
            setattr(sample, field, value)
    return sample


# --- results --------------------------------------------------------------------------------

def record_result(target: Target, *, run_id: str, bench: str, nodeid: str, verdict: str,
                  reason: str = "", test_case: str | None = None, provision: str | None = None,
                  test: str | None = None, dut_serial: str | None = None, dut_model: str | None = None,
                  firmware: str | None = None, evidence: Sequence[str | EvidenceRef] = (),
                  attempt: int = 1, final: bool = True, duration: float | None = None,
                  started_at: datetime | None = None, finished_at: datetime | None = None) -> bool:
    """Store one test's verdict as it finishes; True if this call wrote it.

    Keyed on (run, bench, nodeid): a repeated call never adds a row. It replaces a stored
    non-final attempt (e.g. a lab fault about to be retried), or a final one only with a higher
    `attempt`; otherwise the stored result stands and this returns False (a resumed run
    re-reporting a completed test changes nothing).
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
    refs = [e if isinstance(e, EvidenceRef) else EvidenceRef(str(e)) for e in evidence]
    with _unit(target) as s:
        sample_id = _sample(s, serial=dut_serial, model=dut_model).id if dut_serial and dut_model else None
        values = dict(
            run_id=run_id, bench=bench, nodeid=nodeid, verdict=verdict, reason=reason or "",
            test_case=test_case, provision=provision, test=test, sample_id=sample_id,
            dut_serial=dut_serial, firmware=firmware, evidence=[r.path for r in refs],
            attempt=attempt, final=final, duration=duration, started_at=started_at,
            finished_at=finished_at or utcnow(),
        )
        stmt = _insert(s, TestResult).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "bench", "nodeid"],
            set_={k: stmt.excluded[k] for k in values if k not in ("run_id", "bench", "nodeid")},
            where=or_(TestResult.final.is_(False), TestResult.attempt < stmt.excluded.attempt),
        ).returning(TestResult.id)
        try:
            result_id = s.execute(stmt).scalar_one_or_none()
        except IntegrityError as exc:
            raise StoreError(f"cannot record {nodeid!r} for run {run_id!r}: the run is not in "
                             f"{_where(target)}; fix: create_run first") from exc
        if result_id is None:
            return False
        s.execute(Evidence.__table__.delete().where(Evidence.result_id == result_id))
        if refs:
            s.execute(Evidence.__table__.insert(), [
                dict(result_id=result_id, path=r.path, sha256=r.sha256, size=r.size) for r in refs])
        return True


def results(target: Target, *, run_id: str, final_only: bool = False) -> list[TestResult]:
    """A run's results, bench by bench, in the order they were first recorded."""
    with _unit(target) as s:
        query = (select(TestResult).where(TestResult.run_id == run_id)
                 .options(selectinload(TestResult.evidence_files))
                 .order_by(TestResult.bench, TestResult.id))
        if final_only:
            query = query.where(TestResult.final.is_(True))
        return list(s.scalars(query))


def completed_nodeids(target: Target, *, run_id: str, bench: str) -> set[str]:
    """Tests with a final result on this bench: what `--resume` must not run again."""
    with _unit(target) as s:
        return set(s.scalars(select(TestResult.nodeid).where(
            TestResult.run_id == run_id, TestResult.bench == bench, TestResult.final.is_(True))))


def export_verdicts(target: Target, *, run_id: str) -> dict[str, Any]:
    """The run's final results in the DESIGN.md `verdicts.json` shape (plus lab, nodeid, timing)."""
    with _unit(target) as s:
        run = s.get(Run, run_id)
        if run is None:
            raise StoreError(f"run {run_id!r} is not in the store {_where(target)}")
        rows = results(s, run_id=run_id, final_only=True)
        return {
            "run_id": run.id,
            "edition": run.edition,
            "lab": run.lab,
            "results": [{
                "bench": r.bench,
                "dut_serial": r.dut_serial,
                "firmware": r.firmware,
                "test_case": r.test_case or r.test or r.nodeid,
                "test": r.test,
                "provision": r.provision,
                "verdict": r.verdict,
                "reason": r.reason,
                "evidence": list(r.evidence or []),
                "nodeid": r.nodeid,
                "attempt": r.attempt,
                "duration": r.duration,
                "finished": _stamp(r.finished_at) if r.finished_at else None,
            } for r in rows],
        }


# --- events (append-only) -------------------------------------------------------------------

def append_event(target: Target, *, kind: str, message: str = "", run_id: str | None = None,
                 bench: str | None = None, at: datetime | None = None) -> int:
    """Add one line to the log; returns its id (ids grow: read on with `after_id`)."""
    with _unit(target) as s:
        event = Event(run_id=run_id, bench=bench, kind=kind, message=message, at=at or utcnow())
        s.add(event)
        s.flush()
        return event.id


def events(target: Target, *, run_id: str | None = None, bench: str | None = None,
           after_id: int = 0, limit: int = 1000) -> list[Event]:
    with _unit(target) as s:
        query = select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
        if run_id is not None:
            query = query.where(Event.run_id == run_id)
        if bench is not None:
            query = query.where(Event.bench == bench)
        return list(s.scalars(query))


# --- leases ---------------------------------------------------------------------------------

def acquire_lease(target: Target, *, bench: str, holder: str, ttl: float | timedelta,
                  now: datetime | None = None) -> bool:
    """Reserve a bench for `ttl` (seconds); True if `holder` now holds it.

    Free means no holder or an expired lease; a quarantined bench is never leased. Taking it
    again as the same holder renews it.
    """
    now = now or utcnow()
    with _unit(target) as s:
        try:
            s.execute(_insert(s, Lease).values(bench=bench).on_conflict_do_nothing(index_elements=["bench"]))
        except IntegrityError:
            raise StoreError(f"bench {bench!r} is not registered in {_where(target)}; "
                             f"fix: register_bench before leasing it") from None
        quarantined = exists().where(Bench.name == bench, Bench.state == "quarantined")
        won = s.execute(
            update(Lease)
            .where(Lease.bench == bench,
                   or_(Lease.holder.is_(None), Lease.expires_at < now, Lease.holder == holder),
                   ~quarantined)
            .values(holder=holder, acquired_at=now, heartbeat_at=now, expires_at=now + _ttl(ttl))
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            s.execute(update(Bench).where(Bench.name == bench).values(state="leased", updated_at=now)
                      .execution_options(synchronize_session=False))
        return won


def renew_lease(target: Target, *, bench: str, holder: str, ttl: float | timedelta,
                now: datetime | None = None) -> bool:
    """Heartbeat: extend the lease; False means it was lost (expired and taken, or released)."""
    now = now or utcnow()
    with _unit(target) as s:
        return s.execute(
            update(Lease).where(Lease.bench == bench, Lease.holder == holder)
            .values(heartbeat_at=now, expires_at=now + _ttl(ttl))
            .execution_options(synchronize_session=False)
        ).rowcount == 1


def release_lease(target: Target, *, bench: str, holder: str) -> bool:
    """Give a bench back; False if `holder` no longer held it."""
    with _unit(target) as s:
        freed = s.execute(
            update(Lease).where(Lease.bench == bench, Lease.holder == holder)
            .values(holder=None, expires_at=None).execution_options(synchronize_session=False)
        ).rowcount == 1
        if freed:
            _mark_available(s, [bench])
        return freed


def expire_leases(target: Target, *, now: datetime | None = None) -> list[str]:
    """Free every lease whose holder stopped heartbeating; returns those benches."""
    now = now or utcnow()
    with _unit(target) as s:
        rows = s.execute(
            update(Lease).where(Lease.holder.is_not(None), Lease.expires_at < now)
            .values(holder=None, expires_at=None)
            .returning(Lease.bench, Lease.heartbeat_at)
            .execution_options(synchronize_session=False)
        ).all()
        names = sorted(r.bench for r in rows)
        _mark_available(s, names)
        for r in rows:
            s.add(Event(bench=r.bench, kind="lease-expired", at=now,
                        message=f"holder stopped heartbeating (last {_stamp(r.heartbeat_at)})"))
        return names


def lease_holder(target: Target, *, bench: str, now: datetime | None = None) -> str | None:
    """Who holds the bench now (None when free or expired)."""
    now = now or utcnow()
    with _unit(target) as s:
        return s.execute(select(Lease.holder).where(
            Lease.bench == bench, Lease.holder.is_not(None), Lease.expires_at >= now)).scalar_one_or_none()


def _mark_available(s: Session, names: Sequence[str]) -> None:
    if names:
        s.execute(update(Bench).where(Bench.name.in_(names), Bench.state == "leased")
                  .values(state="available", updated_at=utcnow())
                  .execution_options(synchronize_session=False))


# --- queue ----------------------------------------------------------------------------------

def enqueue_run(target: Target, *, model: str, capabilities: Iterable[str] = (),
                payload: Mapping[str, Any] | None = None, priority: int = 0,
                at: datetime | None = None) -> int:
    """Queue a run for a bench with this DUT model and all these capabilities; returns its id."""
    with _unit(target) as s:
        row = QueuedRun(model=model, capabilities=sorted(set(capabilities)), payload=dict(payload or {}),
                        priority=priority, state="pending", created_at=at or utcnow())
        s.add(row)
        s.flush()
        return row.id


def claim_next_run(target: Target, *, model: str, capabilities: Iterable[str], holder: str,
                   bench: str | None = None, now: datetime | None = None) -> QueuedRun | None:
    """Atomically take the best pending run this bench can do: highest priority, then oldest.

    A run fits when its model is the bench's and its required capabilities are a subset of the
    bench's. Candidates are read in pages (capabilities are matched here, portably) and taken by
    a conditional UPDATE; one lost to another claimer is skipped and the next one tried.
    """
    have = set(capabilities)
    now = now or utcnow()
    with _unit(target) as s:
        after: tuple[int, datetime, int] | None = None
        while True:
            query = (select(QueuedRun.id, QueuedRun.priority, QueuedRun.created_at, QueuedRun.capabilities)
                     .where(QueuedRun.state == "pending", QueuedRun.model == model)
                     .order_by(QueuedRun.priority.desc(), QueuedRun.created_at, QueuedRun.id)
                     .limit(CLAIM_PAGE))
            if after is not None:
                p, c, i = after
                query = query.where(or_(QueuedRun.priority < p,
                                        and_(QueuedRun.priority == p, QueuedRun.created_at > c),
                                        and_(QueuedRun.priority == p, QueuedRun.created_at == c,
                                             QueuedRun.id > i)))
            page = s.execute(query).all()
            if not page:
                return None
            for row in page:
                if not set(row.capabilities or []) <= have:
                    continue
                taken = s.execute(
                    update(QueuedRun).where(QueuedRun.id == row.id, QueuedRun.state == "pending")
                    .values(state="claimed", claimed_by=holder, claimed_at=now, bench=bench)
                    .execution_options(synchronize_session=False)
                ).rowcount == 1
                if taken:
                    return s.execute(select(QueuedRun).where(QueuedRun.id == row.id)
                                     .execution_options(populate_existing=True)).scalar_one()
            last = page[-1]
            after = (last.priority, last.created_at, last.id)


def finish_queued_run(target: Target, *, queued_id: int, state: str = "done",
                      run_id: str | None = None) -> None:
    """Close a claimed queue entry (done / failed / cancelled), linking the run it became."""
    with _unit(target) as s:
        values: dict[str, Any] = {"state": state}
        if run_id is not None:
            values["run_id"] = run_id
        s.execute(update(QueuedRun).where(QueuedRun.id == queued_id).values(**values)
                  .execution_options(synchronize_session=False))


def requeue_claimed(target: Target, *, holder: str) -> int:
    """Put back the runs a dead holder had claimed but not finished; returns how many."""
    with _unit(target) as s:
        return s.execute(
            update(QueuedRun).where(QueuedRun.state == "claimed", QueuedRun.claimed_by == holder)
            .values(state="pending", claimed_by=None, claimed_at=None, bench=None)
            .execution_options(synchronize_session=False)
        ).rowcount


def queued_runs(target: Target, *, states: Sequence[str] = ("pending", "claimed")) -> list[QueuedRun]:
    """The queue as `certlab queue` shows it: by state, then the order it will be served."""
    with _unit(target) as s:
        return list(s.scalars(select(QueuedRun).where(QueuedRun.state.in_(states)).order_by(
            QueuedRun.state.desc(), QueuedRun.priority.desc(), QueuedRun.created_at, QueuedRun.id)))


def _stamp(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else "never"


def _where(target: Target) -> str:
    if isinstance(target, Store):
        return target.url
    return target.get_bind().url.render_as_string(hide_password=True)
