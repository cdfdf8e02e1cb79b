"""The bench board (engineers): every bench of the lab's inventory and of the store, with its
model, sample, state, lease holder, current test case, quarantine reason and last health check;
and releasing a quarantined bench back into the pool (`certlab bench release NAME`).

Bounded whatever the store holds: the benches, their leases, the running runs' first unfinished
result per bench and the newest health-related events (among the newest events only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, NotFound
from lab.errors import CertlabError
from lab.store.db import StoreError
from lab.store.models import Bench, Event, Lease, Run, TestResult, utcnow
from lab.store.repo import release_bench as store_release_bench
from lab.store.unit import reading

HEALTH_KINDS = ("health-check", "health-check-passed", "health-check-failed", "bench-quarantined",
                "bench-released", "lease-expired")
HEALTH_SCAN = 500  # newest health-related events looked at for the board
EVENT_WINDOW = 50_000  # ... among this many newest events (a range of the primary key: bounded work)


@dataclass(frozen=True)
class BenchRow:
    name: str
    model: str
    sample: str | None  # the DUT serial the inventory names
    state: str  # available, leased or quarantined (a bench no run has used yet is available)
    holder: str | None
    current: str | None  # the test case its running run is at
    current_run: str | None
    reason: str | None  # why quarantined
    health: str | None  # the newest health-related event, one line
    health_at: datetime | None


def _require_engineer(who: Caller) -> None:
    if not who.is_engineer:
        raise Forbidden(f"a {who.role} may not do this; it takes: engineer")


def board(svc: Services, who: Caller) -> tuple[list[BenchRow], str | None]:
    """The board's rows by bench name, and a note if the inventory could not be read (the store's
    benches are still shown)."""
    _require_engineer(who)
    inventory: dict[str, tuple[str, str | None]] = {}
    note = None
    try:
        inv = svc.inventories.get(svc.settings.inventory)
        inventory = {name: (b.dut.model, b.dut.serial) for name, b in inv.benches.items()}
    except (CertlabError, OSError) as exc:
        note = f"the lab's inventory is unusable ({exc}); showing the benches the store knows"
    now = utcnow()
    with reading(svc.store) as s:
        stored = {b.name: b for b in s.scalars(select(Bench).order_by(Bench.name).limit(1000))}
        names = sorted(set(inventory) | set(stored))
        holders = dict(s.execute(select(Lease.bench, Lease.holder).where(
            Lease.bench.in_(names), Lease.holder.is_not(None), Lease.expires_at >= now)).all())
        running = select(Run.id).where(Run.status == "running")
        first_open = (select(TestResult.bench, func.min(TestResult.id).label("rid"))
                      .where(TestResult.run_id.in_(running), TestResult.final.is_(False))
                      .group_by(TestResult.bench).subquery())
        current = {bench: (case, run) for bench, case, run in s.execute(
            select(TestResult.bench, func.coalesce(TestResult.test_case, TestResult.test, TestResult.nodeid),
                   TestResult.run_id).join(first_open, first_open.c.rid == TestResult.id)).all()}
        health: dict[str, Event] = {}
        newest = s.execute(select(func.max(Event.id))).scalar_one_or_none() or 0
        for event in s.scalars(select(Event).where(Event.id > newest - EVENT_WINDOW, Event.kind.in_(HEALTH_KINDS),
                                                   Event.bench.is_not(None))
                               .order_by(Event.id.desc()).limit(HEALTH_SCAN)):
            health.setdefault(event.bench, event)
    rows = []
    for name in names:
        b = stored.get(name)
        model, serial = inventory.get(name, (b.model if b else "?", None))
        case, run = current.get(name, (None, None))
        event = health.get(name)
        rows.append(BenchRow(
            name=name, model=model, sample=serial, state=b.state if b else "available",
            holder=holders.get(name), current=case, current_run=run,
            reason=b.state_reason if b is not None and b.state == "quarantined" else None,
            health=f"{event.kind}: {event.message}".rstrip(": ") if event else None,
            health_at=event.at if event else None))
    return rows, note


def release(svc: Services, who: Caller, name: str) -> None:
    """Return a quarantined bench to the pool (engineers); its fault count starts again from zero."""
    _require_engineer(who)
    with reading(svc.store) as s:
        state = s.scalars(select(Bench.state).where(Bench.name == name)).first()
    if state is None:
        raise NotFound("bench", name)
    if state != "quarantined":
        raise Conflict(f"bench {name} is {state}, not quarantined; nothing to release")
    try:
        store_release_bench(svc.store, bench=name)
    except StoreError:
        raise NotFound("bench", name) from None
