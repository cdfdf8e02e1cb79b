"""Bench leases and the queue of pending runs: who may use a bench, and which run it takes next.

Concurrency rests on conditional statements that SQLite and PostgreSQL both run atomically: a
lease is taken by `UPDATE ... WHERE holder IS NULL OR expires_at < now`, a queued run is claimed
by `UPDATE ... WHERE state = 'pending'`. Whoever's statement changes the row has won; the others
see a row count of 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lab.store.db import StoreError
from lab.store.models import Bench, Event, Lease, QueuedRun, utcnow
from lab.store.unit import Target, as_ttl, insert_for, stamp, unit, where

CLAIM_PAGE = 64
CLAIM_ROUNDS = 8


# --- leases ---------------------------------------------------------------------------------

def acquire_lease(target: Target, *, bench: str, holder: str, ttl: float | timedelta,
                  now: datetime | None = None) -> bool:
    """Reserve a bench for `ttl` (seconds); True if `holder` now holds it.

    Free means no holder or an expired lease; a quarantined bench is never leased. Taking it
    again as the same holder renews it.
    """
    now = now or utcnow()
    with unit(target) as s:
        try:
            s.execute(insert_for(s, Lease).values(bench=bench).on_conflict_do_nothing(index_elements=["bench"]))
        except IntegrityError:
            raise StoreError(f"bench {bench!r} is not registered in {where(target)}; "
                             f"fix: register_bench before leasing it") from None
        quarantined = exists().where(Bench.name == bench, Bench.state == "quarantined")
        won = s.execute(
            update(Lease)
            .where(Lease.bench == bench,
                   or_(Lease.holder.is_(None), Lease.expires_at < now, Lease.holder == holder),
                   ~quarantined)
            .values(holder=holder, acquired_at=now, heartbeat_at=now, expires_at=now + as_ttl(ttl))
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
    with unit(target) as s:
        return s.execute(
            update(Lease).where(Lease.bench == bench, Lease.holder == holder)
            .values(heartbeat_at=now, expires_at=now + as_ttl(ttl))
            .execution_options(synchronize_session=False)
        ).rowcount == 1


def acquire_leases(target: Target, *, benches: Iterable[str], holder: str, ttl: float | timedelta,
                   now: datetime | None = None) -> list[str]:
    """Reserve several benches in one transaction; returns those `holder` now holds.

    The bulk form of `acquire_lease` (same rules), so that a dispatcher serving hundreds of
    benches leases them in three statements rather than hundreds of transactions.
    """
    names = sorted(set(benches))
    if not names:
        return []
    now = now or utcnow()
    with unit(target) as s:
        known = set(s.scalars(select(Bench.name).where(Bench.name.in_(names))))
        missing = [n for n in names if n not in known]
        if missing:
            raise StoreError(f"bench {missing[0]!r} is not registered in {where(target)}; "
                             f"fix: register_bench before leasing it")
        s.execute(insert_for(s, Lease).on_conflict_do_nothing(index_elements=["bench"]),
                  [{"bench": n} for n in names])
        quarantined = select(Bench.name).where(Bench.state == "quarantined")
        won = sorted(s.scalars(
            update(Lease)
            .where(Lease.bench.in_(names),
                   or_(Lease.holder.is_(None), Lease.expires_at < now, Lease.holder == holder),
                   Lease.bench.not_in(quarantined))
            .values(holder=holder, acquired_at=now, heartbeat_at=now, expires_at=now + as_ttl(ttl))
            .returning(Lease.bench)
            .execution_options(synchronize_session=False)))
        if won:
            s.execute(update(Bench).where(Bench.name.in_(won)).values(state="leased", updated_at=now)
                      .execution_options(synchronize_session=False))
        return won


def renew_leases(target: Target, *, holder: str, ttl: float | timedelta,
                 now: datetime | None = None) -> int:
    """Heartbeat every lease of `holder` in one UPDATE; returns how many it still holds.

    Fewer than the caller expects means some were lost (expired and taken, or released).
    """
    now = now or utcnow()
    with unit(target) as s:
        return s.execute(
            update(Lease).where(Lease.holder == holder)
            .values(heartbeat_at=now, expires_at=now + as_ttl(ttl))
            .execution_options(synchronize_session=False)
        ).rowcount


def held_leases(target: Target, *, holder: str, now: datetime | None = None) -> list[str]:
    """The benches `holder` holds now (unexpired): what a heartbeat that fell short still has."""
    now = now or utcnow()
    with unit(target) as s:
        return list(s.scalars(select(Lease.bench).where(
            Lease.holder == holder, Lease.expires_at >= now).order_by(Lease.bench)))


def release_leases(target: Target, *, holder: str, benches: Iterable[str] | None = None) -> list[str]:
    """Give back all of `holder`'s leases (or only these benches) at once; returns those freed."""
    with unit(target) as s:
        query = update(Lease).where(Lease.holder == holder)
        if benches is not None:
            names = sorted(set(benches))
            if not names:
                return []
            query = query.where(Lease.bench.in_(names))
        freed = sorted(s.scalars(query.values(holder=None, expires_at=None).returning(Lease.bench)
                                 .execution_options(synchronize_session=False)))
        _mark_available(s, freed)
        return freed


def release_lease(target: Target, *, bench: str, holder: str) -> bool:
    """Give a bench back; False if `holder` no longer held it."""
    with unit(target) as s:
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
    with unit(target) as s:
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
                        message=f"holder stopped heartbeating (last {stamp(r.heartbeat_at)})"))
        return names


def lease_holder(target: Target, *, bench: str, now: datetime | None = None) -> str | None:
    """Who holds the bench now (None when free or expired)."""
    now = now or utcnow()
    with unit(target) as s:
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
    with unit(target) as s:
        row = QueuedRun(model=model, capabilities=sorted(set(capabilities)), payload=dict(payload or {}),
                        priority=priority, state="pending", created_at=at or utcnow())
        s.add(row)
        s.flush()
        return row.id


def claim_next_run(target: Target, *, model: str, capabilities: Iterable[str], holder: str,
                   bench: str | None = None, now: datetime | None = None) -> QueuedRun | None:
    """Atomically take the best pending run this bench can do: highest priority, then oldest.

    A run fits when its model is the bench's and its required capabilities are a subset of the
    bench's. Candidates are read in pages (capabilities matched in SQL, see `_page_query`) and
    taken by a conditional UPDATE; one lost to another claimer is skipped and the next one tried.
    """
    have = set(capabilities)
    now = now or utcnow()
    with unit(target) as s:
        after: tuple[int, datetime, int] | None = None
        while True:
            page = _pending_page(s, model, after, CLAIM_PAGE, frozenset(have))
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
            after = _keyset(s, page[-1])


def match_runs(target: Target, *, benches: Iterable[tuple[str, str, Iterable[str]]]) -> dict[str, int]:
    """Which pending run each free bench (name, model, capabilities) would get now, claiming none.

    A cheap look before a costly step: a dispatcher health-checks a bench only if work waits
    for it. Same choice as `claim_runs`; benches without work are left out.
    """
    with unit(target) as s:
        return {name: qid for qid, name in _match(s, _bench_specs(benches))}


def claim_runs(target: Target, *, benches: Iterable[tuple[str, str, Iterable[str]]], holder: str,
               now: datetime | None = None) -> list[QueuedRun]:
    """Claim the best pending run for each of several free benches (name, model, capabilities).

    The bulk form of `claim_next_run`, so that a dispatcher with hundreds of benches claims for
    all its free ones in a few statements instead of a transaction each. Runs are served highest
    priority first, then oldest; each goes to a free bench of its model that has all its
    capabilities, the one with the fewest (a bench with a rare capability stays free for work
    only it can do), ties to the bench listed first. One UPDATE per round takes the matched rows
    if still pending; a row lost to a concurrent claimer sends its bench to the next round.
    A bench that gets nothing has no pending run it can do. Returns the claimed runs (`.bench`
    says whose), best first.
    """
    now = now or utcnow()
    todo = _bench_specs(benches)
    table = QueuedRun.__table__
    take = (update(table).where(table.c.id == bindparam("q_id"), table.c.state == "pending")
            .values(state="claimed", claimed_by=holder, claimed_at=now, bench=bindparam("q_bench")))
    claimed: list[int] = []
    with unit(target) as s:
        for _ in range(CLAIM_ROUNDS):  # a round only loses rows that another claimer took
            plan = _match(s, todo)
            if not plan:
                break
            taken = s.execute(take, [{"q_id": qid, "q_bench": name} for qid, name in plan])  # executemany
            if taken.rowcount == len(plan) and s.get_bind().dialect.supports_sane_multi_rowcount:
                won = {qid for qid, _ in plan}
            else:  # some went to another claimer: which?
                won = set(s.scalars(select(QueuedRun.id).where(
                    QueuedRun.id.in_([qid for qid, _ in plan]), QueuedRun.state == "claimed",
                    QueuedRun.claimed_by == holder, QueuedRun.claimed_at == now)))
            claimed += [qid for qid, _ in plan if qid in won]
            todo = {name: todo[name] for qid, name in plan if qid not in won}
            if not todo:
                break
        if not claimed:
            return []
        return list(s.scalars(
            select(QueuedRun).where(QueuedRun.id.in_(claimed))
            .order_by(QueuedRun.priority.desc(), QueuedRun.created_at, QueuedRun.id)
            .execution_options(populate_existing=True)))


def _bench_specs(benches: Iterable[tuple[str, str, Iterable[str]]]) -> dict[str, tuple[str, frozenset[str]]]:
    return {name: (model, frozenset(caps)) for name, model, caps in benches}


def _pending_page(s: Session, model: str, after: tuple[int, datetime, int] | None, limit: int,
                  within: frozenset[str]) -> Sequence[Any]:
    """One page of a model's pending runs in serving order, after the keyset `after`, leaving
    out those needing a capability outside `within` (no waiting bench could take them).

    Only id, priority and capabilities, read without the ORM, by a statement built once: a
    dispatcher reads thousands of these a second, and building statements and parsing
    timestamps it does not need were most of the cost (`_keyset` fetches the one it needs)."""
    dialect = s.get_bind().dialect.name
    query = _PAGE_QUERIES.get((dialect, after is not None))
    if query is None:
        query = _PAGE_QUERIES[dialect, after is not None] = _page_query(dialect, after is not None)
    params: dict[str, Any] = {"model": model, "have": sorted(within), "lim": limit}
    if after is not None:
        params.update(zip(("p", "c", "i"), after))
    return s.execute(query, params).all()


_PAGE_QUERIES: dict[tuple[str, bool], Any] = {}  # (dialect, with keyset) -> statement; immutable


def _page_query(dialect: str, keyset: bool) -> Any:
    t = QueuedRun.__table__
    if dialect == "postgresql":  # required capabilities all in `have`: JSON differs per database
        fits = t.c.capabilities.cast(postgresql.JSONB).contained_by(bindparam("have", type_=postgresql.JSONB))
    else:
        each = func.json_each(t.c.capabilities).table_valued("value")
        fits = ~select(each.c.value).where(each.c.value.not_in(bindparam("have", expanding=True))).exists()
    query = (select(t.c.id, t.c.priority, t.c.capabilities)
             .where(t.c.state == "pending", t.c.model == bindparam("model"), fits)
             .order_by(t.c.priority.desc(), t.c.created_at, t.c.id)
             .limit(bindparam("lim")))
    if keyset:
        p, c, i = bindparam("p"), bindparam("c", type_=t.c.created_at.type), bindparam("i")
        query = query.where(or_(t.c.priority < p, and_(t.c.priority == p, t.c.created_at > c),
                                and_(t.c.priority == p, t.c.created_at == c, t.c.id > i)))
    return query


def _keyset(s: Session, row: Any) -> tuple[int, datetime, int]:
    """Where the page ending with `row` left off, for the next `_pending_page`."""
    t = QueuedRun.__table__
    return row.priority, s.execute(select(t.c.created_at).where(t.c.id == row.id)).scalar_one(), row.id


def _match(s: Session, todo: Mapping[str, tuple[str, frozenset[str]]]) -> list[tuple[int, str]]:
    """Pending runs (best first) paired with free benches: (queued id, bench), as described
    in `claim_runs`. Reads each model's runs in pages until its benches are served or its
    runs run out, so a bench left over has nothing it can do."""
    by_model: dict[str, dict[frozenset[str], list[str]]] = {}
    for name, (model, caps) in todo.items():
        by_model.setdefault(model, {}).setdefault(caps, []).append(name)
    plan: list[tuple[int, str]] = []
    for model, free in by_model.items():
        waiting = {caps: names[::-1] for caps, names in free.items()}  # pop() takes the first listed
        after: tuple[int, datetime, int] | None = None
        while waiting:
            wanted = sum(map(len, waiting.values()))
            limit = wanted + wanted // 4 + 4  # a little over: not every row fits every bench
            page = _pending_page(s, model, after, limit, frozenset().union(*waiting))
            for row in page:
                need = frozenset(row.capabilities or ())
                fits = [caps for caps in waiting if need <= caps]
                if not fits:
                    continue
                caps = min(fits, key=len)
                plan.append((row.id, waiting[caps].pop()))
                if not waiting[caps]:
                    del waiting[caps]
                    if not waiting:
                        break
            if not waiting or len(page) < limit:
                break
            after = _keyset(s, page[-1])
    return plan


def note_queued_run_id(target: Target, *, queued_id: int, run_id: str) -> bool:
    """Link a claimed entry to its run as soon as the run directory exists, so whoever follows the
    entry (a product record's keeper) names the run while it is going; False if no longer claimed."""
    with unit(target) as s:
        result = s.execute(update(QueuedRun).where(QueuedRun.id == queued_id, QueuedRun.state == "claimed")
                           .values(run_id=run_id))
        return bool(result.rowcount)


def finish_queued_run(target: Target, *, queued_id: int, state: str = "done",
                      run_id: str | None = None, error: str | None = None) -> None:
    """Close a claimed queue entry (done / failed / cancelled), linking the run it became.

    `error` (why it failed) goes to the event log, bench and entry named, for `certlab queue`.
    """
    finish_queued_runs(target, finished=[(queued_id, state, run_id, error)])


def finish_queued_runs(target: Target, *, finished: Iterable[tuple[int, str, str | None, str | None]]) -> None:
    """Close many claimed entries in one transaction: (queued id, state, run id, error) each.

    The bulk form of `finish_queued_run`, for a dispatcher whose benches finish hundreds of runs
    a second; a run id of None keeps the stored one.
    """
    rows = list(finished)
    if not rows:
        return
    table = QueuedRun.__table__
    with unit(target) as s:
        s.execute(update(table).where(table.c.id == bindparam("q_id"))
                  .values(state=bindparam("q_state"), run_id=func.coalesce(bindparam("q_run"), table.c.run_id)),
                  [{"q_id": qid, "q_state": state, "q_run": run_id} for qid, state, run_id, _ in rows])
        errors = {qid: (state, error) for qid, state, _, error in rows if error}
        if errors:
            where = dict(s.execute(select(table.c.id, table.c.bench).where(table.c.id.in_(errors))).all())
            s.add_all([Event(bench=where.get(qid), kind=f"queued-run-{state}",
                             message=f"queued run {qid}: {error}") for qid, (state, error) in errors.items()])


def requeue_claimed(target: Target, *, holder: str) -> int:
    """Put back the runs a dead holder had claimed but not finished; returns how many."""
    with unit(target) as s:
        return s.execute(
            update(QueuedRun).where(QueuedRun.state == "claimed", QueuedRun.claimed_by == holder)
            .values(state="pending", claimed_by=None, claimed_at=None, bench=None)
            .execution_options(synchronize_session=False)
        ).rowcount


def queued_runs(target: Target, *, states: Sequence[str] = ("pending", "claimed"),
                limit: int | None = None) -> list[QueuedRun]:
    """The queue as `certlab queue` shows it: by state, then the order it will be served (the first
    `limit` only, for a page)."""
    with unit(target, read_only=True) as s:  # a read: never queues behind the dispatcher's writes
        query = select(QueuedRun).where(QueuedRun.state.in_(states)).order_by(
            QueuedRun.state.desc(), QueuedRun.priority.desc(), QueuedRun.created_at, QueuedRun.id)
        return list(s.scalars(query if limit is None else query.limit(limit)))


def cancel_queued_run(target: Target, *, queued_id: int) -> bool:
    """Take a pending run off the queue; False if it was not pending (claimed meanwhile, or gone)."""
    with unit(target) as s:
        return s.execute(update(QueuedRun).where(QueuedRun.id == queued_id, QueuedRun.state == "pending")
                         .values(state="cancelled").execution_options(synchronize_session=False)).rowcount == 1


def set_queue_priority(target: Target, *, queued_id: int, priority: int) -> bool:
    """Change a pending run's priority; False if it was not pending."""
    with unit(target) as s:
        return s.execute(update(QueuedRun).where(QueuedRun.id == queued_id, QueuedRun.state == "pending")
                         .values(priority=priority).execution_options(synchronize_session=False)).rowcount == 1


def move_queued_run(target: Target, *, queued_id: int, up: bool) -> int | None:
    """Move a pending run up (served sooner) or down past its neighbour among the pending runs, by
    taking a priority one past the neighbour's (so it also passes the neighbour's equals); its new
    priority, or None if it is not pending. At the top (or bottom) already, nothing changes."""
    with unit(target) as s:
        row = s.execute(select(QueuedRun.priority, QueuedRun.created_at)
                        .where(QueuedRun.id == queued_id, QueuedRun.state == "pending")).first()
        if row is None:
            return None
        p, c = row
        ahead = or_(QueuedRun.priority > p, and_(QueuedRun.priority == p, QueuedRun.created_at < c),
                    and_(QueuedRun.priority == p, QueuedRun.created_at == c, QueuedRun.id < queued_id))
        query = select(QueuedRun.priority).where(QueuedRun.state == "pending", QueuedRun.id != queued_id)
        if up:
            query = query.where(ahead).order_by(QueuedRun.priority, QueuedRun.created_at.desc(), QueuedRun.id.desc())
        else:
            query = query.where(~ahead).order_by(QueuedRun.priority.desc(), QueuedRun.created_at, QueuedRun.id)
        neighbour = s.execute(query.limit(1)).scalar_one_or_none()
        if neighbour is None:
            return p
        priority = neighbour + 1 if up else neighbour - 1
        s.execute(update(QueuedRun).where(QueuedRun.id == queued_id, QueuedRun.state == "pending")
                  .values(priority=priority).execution_options(synchronize_session=False))
        return priority


def take_over_lease(target: Target, *, bench: str, old_holder: str, holder: str, ttl: float | timedelta,
                    now: datetime | None = None) -> bool:
    """Take a lease from a holder known to be dead (a resumed run on the same host); True if taken.

    Conditional on the old holder still holding it, so a live claimer that got there first wins.
    """
    now = now or utcnow()
    with unit(target) as s:
        won = s.execute(
            update(Lease).where(Lease.bench == bench, Lease.holder == old_holder)
            .values(holder=holder, acquired_at=now, heartbeat_at=now, expires_at=now + as_ttl(ttl))
            .execution_options(synchronize_session=False)
        ).rowcount == 1
        if won:
            s.add(Event(bench=bench, kind="lease-taken-over", message=f"from {old_holder} (not running) by {holder}"))
        return won
