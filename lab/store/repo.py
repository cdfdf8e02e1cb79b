"""Runs, benches, samples, results and events: keyword-only functions, one job each.

Each function takes a `Store` (it then runs in its own short transaction and commits) or a
`Session` (it joins the caller's transaction and only flushes). Objects returned from a Store
call are detached but fully loaded. Leases and the queue are in `lab.store.scheduling`.

A result is stored by `INSERT ... ON CONFLICT (run_id, bench, nodeid) DO UPDATE ... WHERE <not
final>`, which both SQLite and PostgreSQL run atomically: a resumed run re-reporting a test
changes nothing. Timestamps come from this
host's clock (aware UTC): hosts sharing a database keep their clocks in sync (NTP).

Events have no update or delete function here, and database triggers refuse both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from lab.inputfile import sha256_file
from lab.store.dispatch import holds_fence
from lab.store.db import StoreError
from lab.store.unit import Target, insert_for, stamp, unit, where
from lab.store.models import (
    CAUSES,
    RUN_STATES,
    VERDICTS,
    Bench,
    Event,
    Evidence,
    Lease,
    Run,
    Sample,
    TestResult,
    utcnow,
)



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
        refs.append(EvidenceRef(str(rel), sha256_file(full), full.stat().st_size))
    return refs


# --- runs, benches, samples -----------------------------------------------------------------

def create_run(target: Target, *, run_id: str, edition: str, lab: str | None = None,
               inventory_hash: str | None = None, operator: str | None = None,
               options: Mapping[str, Any] | None = None, status: str = "running",
               at: datetime | None = None) -> Run:
    """Record a new run; if it exists already (a resume), return it unchanged."""
    if status not in RUN_STATES:
        raise ValueError(f"run status must be one of {RUN_STATES}, not {status!r}")
    at = at or utcnow()
    with unit(target) as s:
        s.execute(insert_for(s, Run).values(
            id=run_id, edition=edition, lab=lab, inventory_hash=inventory_hash, operator=operator,
            options=dict(options or {}), status=status, created_at=at,
            started_at=at if status == "running" else None,
        ).on_conflict_do_nothing(index_elements=["id"]))
        return s.execute(select(Run).where(Run.id == run_id)
                         .execution_options(populate_existing=True)).scalar_one()


def get_run(target: Target, *, run_id: str) -> Run | None:
    with unit(target) as s:
        return s.get(Run, run_id)


def set_run_status(target: Target, *, run_id: str, status: str, at: datetime | None = None) -> None:
    """Move a run to `status`; the first `running` stamps started_at, an end state finished_at."""
    if status not in RUN_STATES:
        raise ValueError(f"run status must be one of {RUN_STATES}, not {status!r}")
    at = at or utcnow()
    with unit(target) as s:
        run = s.get(Run, run_id, with_for_update=True)
        if run is None:
            raise StoreError(f"run {run_id!r} is not in the store {where(target)}")
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
    with unit(target) as s:
        s.execute(insert_for(s, Bench).values(
            name=name, lab=lab, model=model, capabilities=caps, state="available", fault_count=0,
            updated_at=utcnow()).on_conflict_do_nothing(index_elements=["name"]))
        bench = s.get(Bench, name, with_for_update=True, populate_existing=True)
        assert bench is not None
        if bench.lab != lab and bench.lab is not None and lab is not None:
            raise StoreError(f"bench {name!r} already belongs to lab {bench.lab!r} in {where(target)}; "
                             f"fix: give benches of lab {lab!r} other names, or use another database")
        bench.lab, bench.model, bench.capabilities = lab or bench.lab, model, caps
        bench.updated_at = utcnow()
        return bench


def benches(target: Target, *, lab: str | None = None) -> list[Bench]:
    with unit(target) as s:
        query = select(Bench).order_by(Bench.name)
        return list(s.scalars(query.where(Bench.lab == lab) if lab else query))


def quarantine_bench(target: Target, *, bench: str, reason: str) -> None:
    """Take a bench out of the pool (failed health check, repeated lab faults)."""
    _set_bench_state(target, bench=bench, state="quarantined", reason=reason, kind="bench-quarantined")


def release_bench(target: Target, *, bench: str) -> None:
    """Return a quarantined bench to the pool (`certlab bench release NAME`); faults reset."""
    _set_bench_state(target, bench=bench, state="available", reason=None, kind="bench-released")


def _set_bench_state(target: Target, *, bench: str, state: str, reason: str | None, kind: str) -> None:
    with unit(target) as s:
        row = s.get(Bench, bench, with_for_update=True)
        if row is None:
            raise StoreError(f"bench {bench!r} is not registered in {where(target)}; "
                             f"fix: check the name (certlab queue / inventory)")
        if state == "available":  # back in the pool; still "leased" if someone holds a lease
            held = s.execute(select(Lease.holder).where(
                Lease.bench == bench, Lease.holder.is_not(None), Lease.expires_at >= utcnow())).first()
            state, row.fault_count = ("leased" if held else "available"), 0
        row.state, row.state_reason, row.updated_at = state, reason, utcnow()
        s.add(Event(bench=bench, kind=kind, message=reason or ""))


def note_bench_fault(target: Target, *, bench: str, message: str, run_id: str | None = None) -> int:
    """Count a lab fault against a bench; returns its fault count (the caller decides on quarantine)."""
    with unit(target) as s:
        s.execute(update(Bench).where(Bench.name == bench)
                  .values(fault_count=Bench.fault_count + 1, updated_at=utcnow()))
        s.add(Event(run_id=run_id, bench=bench, kind="lab-fault", message=message))
        s.flush()
        return s.execute(select(Bench.fault_count).where(Bench.name == bench)).scalar_one_or_none() or 0


def clear_bench_faults(target: Target, *, bench: str) -> None:
    """A bench that got through its work without a lab fault starts counting again from zero."""
    with unit(target) as s:
        s.execute(update(Bench).where(Bench.name == bench, Bench.fault_count != 0)
                  .values(fault_count=0, updated_at=utcnow()).execution_options(synchronize_session=False))


def register_sample(target: Target, *, serial: str, model: str, firmware: str | None = None,
                    received_at: datetime | None = None, condition: str | None = None) -> Sample:
    """Add a sample (model + serial) or update what is given about it."""
    with unit(target) as s:
        return _sample(s, serial=serial, model=model, firmware=firmware,
                       received_at=received_at, condition=condition)


def _sample(s: Session, *, serial: str, model: str, firmware: str | None = None,
            received_at: datetime | None = None, condition: str | None = None) -> Sample:
    s.execute(insert_for(s, Sample).values(
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
                  started_at: datetime | None = None, finished_at: datetime | None = None,
                  executed_on: str | None = None, cause: str | None = None, fence: int | None = None) -> bool:
    """Store one test's verdict as it finishes; True if this call wrote it.

    Keyed on (run, bench, nodeid): a repeated call never adds a row. It replaces a stored
    non-final attempt (e.g. a lab fault about to be retried), or a final one only with a higher
    `attempt`; otherwise the stored result stands and this returns False (a resumed run
    re-reporting a completed test changes nothing). With `fence` (a lab host's attempt token,
    lab.store.dispatch) nothing is written unless that attempt is still the running one.
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
    if cause is not None and cause not in CAUSES:
        raise ValueError(f"cause must be one of {CAUSES}, not {cause!r}")
    refs = [e if isinstance(e, EvidenceRef) else EvidenceRef(str(e)) for e in evidence]
    with unit(target) as s:
        if fence is not None and not holds_fence(s, fence):
            return False
        sample_id = _sample(s, serial=dut_serial, model=dut_model).id if dut_serial and dut_model else None
        values = dict(
            run_id=run_id, bench=bench, nodeid=nodeid, verdict=verdict, reason=reason or "",
            test_case=test_case, provision=provision, test=test, sample_id=sample_id,
            dut_serial=dut_serial, firmware=firmware, evidence=[r.path for r in refs],
            attempt=attempt, final=final, duration=duration, started_at=started_at,
            finished_at=finished_at or utcnow(), executed_on=executed_on, cause=cause,
        )
        stmt = insert_for(s, TestResult).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "bench", "nodeid"],
            set_={k: stmt.excluded[k] for k in values if k not in ("run_id", "bench", "nodeid")},
            where=or_(TestResult.final.is_(False), TestResult.attempt < stmt.excluded.attempt),
        ).returning(TestResult.id)
        try:
            result_id = s.execute(stmt).scalar_one_or_none()
        except IntegrityError as exc:
            raise StoreError(f"cannot record {nodeid!r} for run {run_id!r}: the run is not in "
                             f"{where(target)}; fix: create_run first") from exc
        if result_id is None:
            return False
        s.execute(Evidence.__table__.delete().where(Evidence.result_id == result_id))
        if refs:
            s.execute(Evidence.__table__.insert(), [
                dict(result_id=result_id, path=r.path, sha256=r.sha256, size=r.size) for r in refs])
        return True


def results(target: Target, *, run_id: str, final_only: bool = False) -> list[TestResult]:
    """A run's results, bench by bench, in the order they were first recorded."""
    with unit(target) as s:
        query = (select(TestResult).where(TestResult.run_id == run_id)
                 .options(selectinload(TestResult.evidence_files))
                 .order_by(TestResult.bench, TestResult.id))
        if final_only:
            query = query.where(TestResult.final.is_(True))
        return list(s.scalars(query))


def completed_nodeids(target: Target, *, run_id: str, bench: str, attempt: int = 1) -> set[str]:
    """Tests with a final result on this bench (at `attempt` or later): what `--resume` must not run again."""
    with unit(target) as s:
        return set(s.scalars(select(TestResult.nodeid).where(
            TestResult.run_id == run_id, TestResult.bench == bench, TestResult.final.is_(True),
            TestResult.attempt >= attempt)))


def plan_results(target: Target, *, run_id: str, bench: str, tests: Sequence[Mapping[str, Any]],
                 reason: str = "not run: the run stopped before this test started",
                 attempt: int = 1, executed_on: str | None = None, fence: int | None = None) -> int:
    """Record the tests a worker is about to run as unfinished (INCONCLUSIVE, not final).

    A planned row is what a run that dies leaves behind: `--resume` runs exactly these again,
    and progress knows each bench's total. A test already final at this attempt is untouched.
    Each item of `tests` has nodeid and may have test, test_case, provision, dut_serial, firmware.
    """
    with unit(target) as s:
        planned = 0
        for t in tests:
            planned += record_result(s, run_id=run_id, bench=bench, nodeid=t["nodeid"], verdict="INCONCLUSIVE",
                                     reason=reason, test=t.get("test"), test_case=t.get("test_case"),
                                     provision=t.get("provision"), dut_serial=t.get("dut_serial"),
                                     dut_model=t.get("dut_model"), firmware=t.get("firmware"),
                                     attempt=attempt, final=False, executed_on=executed_on, cause="not-run",
                                     fence=fence)
        return planned


def finalise_unfinished(target: Target, *, run_id: str, reason: str, cause: str,
                        bench: str | None = None) -> int:
    """Close every unfinished result of a run (or one bench of it) as INCONCLUSIVE with `reason`."""
    if cause not in CAUSES:
        raise ValueError(f"cause must be one of {CAUSES}, not {cause!r}")
    with unit(target) as s:
        query = update(TestResult).where(TestResult.run_id == run_id, TestResult.final.is_(False))
        if bench is not None:
            query = query.where(TestResult.bench == bench)
        return s.execute(query.values(verdict="INCONCLUSIVE", reason=reason, cause=cause, final=True,
                                      finished_at=utcnow())
                         .execution_options(synchronize_session=False)).rowcount


def reopen_results(target: Target, *, run_id: str, cause: str) -> int:
    """Make a run's results of one cause unfinished again (a resumed run re-runs cancelled tests)."""
    with unit(target) as s:
        return s.execute(update(TestResult).where(TestResult.run_id == run_id, TestResult.final.is_(True),
                                                  TestResult.cause == cause)
                         .values(final=False, cause="not-run").execution_options(synchronize_session=False)).rowcount


def reopen_unevidenced(target: Target, *, run_id: str, bench: str, attempt: int, root: Path, reason: str) -> list[str]:
    """Make unfinished again the final results of one attempt whose evidence files are not under `root`.

    A lab host that died took the evidence of its last tests with it: their verdicts are no
    longer evidenced in the run directory, so they are run again rather than reported.
    """
    with unit(target) as s:
        rows = s.scalars(select(TestResult).where(TestResult.run_id == run_id, TestResult.bench == bench,
                                                  TestResult.attempt == attempt, TestResult.final.is_(True)))
        lost = [r for r in rows if any(not (root / str(p)).is_file() for p in (r.evidence or []))]
        for r in lost:
            r.final, r.verdict, r.cause, r.reason = False, "INCONCLUSIVE", "not-run", reason
        return [r.nodeid for r in lost]


def result_counts(target: Target, *, run_id: str) -> dict[str, dict[str, int]]:
    """Per bench: how many tests are planned in all, and how many are final per verdict."""
    with unit(target) as s:
        rows = s.execute(select(TestResult.bench, TestResult.final, TestResult.verdict, func.count())
                         .where(TestResult.run_id == run_id)
                         .group_by(TestResult.bench, TestResult.final, TestResult.verdict)).all()
    counts: dict[str, dict[str, int]] = {}
    for bench, final, verdict, n in rows:
        c = counts.setdefault(bench, {"total": 0})
        c["total"] += n
        if final:
            c[verdict] = c.get(verdict, 0) + n
    return counts


def retry_candidates(target: Target, *, run_id: str, bench: str, attempt: int = 1) -> list[TestResult]:
    """Final results of a bench's slot that a lab fault decided at this attempt: to try elsewhere."""
    with unit(target) as s:
        return list(s.scalars(select(TestResult).where(
            TestResult.run_id == run_id, TestResult.bench == bench, TestResult.final.is_(True),
            TestResult.cause == "lab-fault", TestResult.attempt == attempt).order_by(TestResult.id)))


def export_verdicts(target: Target, *, run_id: str) -> dict[str, Any]:
    """The run's final results in the `verdicts.json` shape of docs/architecture.md (plus lab, nodeid, timing)."""
    with unit(target) as s:
        run = s.get(Run, run_id)
        if run is None:
            raise StoreError(f"run {run_id!r} is not in the store {where(target)}")
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
                "executed_on": r.executed_on or r.bench,
                "cause": r.cause,
                "attempt": r.attempt,
                "duration": r.duration,
                "finished": stamp(r.finished_at) if r.finished_at else None,
            } for r in rows],
        }


# --- events (append-only) -------------------------------------------------------------------

def append_event(target: Target, *, kind: str, message: str = "", run_id: str | None = None,
                 bench: str | None = None, at: datetime | None = None) -> int:
    """Add one line to the log; returns its id (ids grow: read on with `after_id`)."""
    with unit(target) as s:
        event = Event(run_id=run_id, bench=bench, kind=kind, message=message, at=at or utcnow())
        s.add(event)
        s.flush()
        return event.id


def last_event_id(target: Target) -> int:
    """The newest event's id (0 when there is none): read on from here with `after_id`."""
    with unit(target) as s:
        return s.execute(select(func.max(Event.id))).scalar_one_or_none() or 0


def events(target: Target, *, run_id: str | None = None, bench: str | None = None,
           after_id: int = 0, limit: int = 1000) -> list[Event]:
    with unit(target) as s:
        query = select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
        if run_id is not None:
            query = query.where(Event.run_id == run_id)
        if bench is not None:
            query = query.where(Event.bench == bench)
        return list(s.scalars(query))
