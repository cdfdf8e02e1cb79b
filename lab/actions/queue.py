"""The queue of pending runs (engineers): list it, add a run for any bench of a model with some
capabilities, reorder (priority, or one place up or down), cancel. The same rows as `certlab
queue` and `certlab queue add`; `certlab queue work` serves them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from lab import resources
from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound
from lab.catalog import CatalogError, normalise_edition
from lab.store.models import QueuedRun
from lab.store.scheduling import cancel_queued_run, move_queued_run, queued_runs, set_queue_priority
from lab.store.unit import reading

SHOWN = 50  # queue rows a page shows (each carries its forms; `certlab queue` lists them all)
PRIORITIES = (-1000, 1000)
SUITES = resources.NAMED_SUITES
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")


@dataclass(frozen=True)
class QueueRow:
    id: int
    state: str
    priority: int
    model: str
    capabilities: list[str]
    suites: list[str]
    requested_by: str | None
    created_at: datetime
    bench: str | None
    run_id: str | None


def _require_engineer(who: Caller) -> None:
    if not who.is_engineer:
        raise Forbidden(f"a {who.role} may not do this; it takes: engineer")


def _row(q: QueuedRun) -> QueueRow:
    payload = q.payload or {}
    root = str(resources.suites_root().resolve())
    suites = [s.removeprefix(root).lstrip("/") or s for s in payload.get("suites") or []]
    return QueueRow(id=q.id, state=q.state, priority=q.priority, model=q.model, capabilities=list(q.capabilities or []),
                    suites=suites, requested_by=payload.get("requested_by"), created_at=q.created_at, bench=q.bench,
                    run_id=q.run_id)


def listing(svc: Services, who: Caller, *, limit: int = SHOWN) -> list[QueueRow]:
    """Pending and claimed runs in the order they are served (the first `limit`)."""
    _require_engineer(who)
    return [_row(q) for q in queued_runs(svc.store, limit=limit)]


def _priority(value: object) -> int:
    try:
        priority = int(str(value).strip() or "0")
    except ValueError:
        raise Invalid(["body", "priority"], f"priority {value!r}: give a whole number from {PRIORITIES[0]} to "
                                            f"{PRIORITIES[1]} (higher runs first)") from None
    if not PRIORITIES[0] <= priority <= PRIORITIES[1]:
        raise Invalid(["body", "priority"], f"priority {priority}: give a number from {PRIORITIES[0]} to {PRIORITIES[1]}")
    return priority


def add(svc: Services, who: Caller, *, model: str, capabilities: str | list[str] = "", priority: object = 0,
        suite: str = "en303645", edition: str = "v2") -> int:
    """Queue a run for any bench holding `model` with all `capabilities` (comma- or space-separated),
    with the inventory's product files for the model (as `certlab queue add` without --ics); its id."""
    _require_engineer(who)
    model = (model or "").strip()
    if not NAME.fullmatch(model):
        raise Invalid(["body", "model"], "model: give the DUT model the run is for (letters, digits, . _ - : +; "
                                         "at most 128), e.g. TH-100")
    caps = capabilities if isinstance(capabilities, list) else re.split(r"[\s,]+", capabilities or "")
    caps = sorted({c.strip() for c in caps if c.strip()})
    bad = [c for c in caps if not NAME.fullmatch(c)]
    if bad:
        raise Invalid(["body", "capabilities"], f"capability {bad[0]!r}: use letters, digits, . _ - : + only, "
                                                "separated by commas or spaces")
    if suite not in SUITES:
        raise Invalid(["body", "suite"], f"suite {suite!r}: choose one of {', '.join(SUITES)}")
    try:
        edition = normalise_edition(edition)
    except CatalogError as exc:
        raise Invalid(["body", "edition"], str(exc)) from None
    level = _priority(priority)
    from lab.orchestrator import queued  # the same payload as `certlab queue add` (heavy: only when adding)

    suites = [str(resources.resolve_suite(SUITES[suite]).resolve())]
    return queued.add(svc.store, model=model, capabilities=caps, suites=suites, options=["--edition", edition],
                      edition=edition, reports_dir=svc.settings.reports_dir, priority=level, requested_by=who.name)


def _pending_or_refuse(svc: Services, queued_id: int, done: object) -> None:
    if done is None or done is False:
        with reading(svc.store) as s:
            state = s.get(QueuedRun, queued_id)
            if state is None:
                raise NotFound("queued run", queued_id)
            raise Conflict(f"queued run {queued_id} is {state.state}; only a pending run can be changed")


def reprioritise(svc: Services, who: Caller, queued_id: int, priority: object) -> int:
    _require_engineer(who)
    level = _priority(priority)
    _pending_or_refuse(svc, queued_id, set_queue_priority(svc.store, queued_id=queued_id, priority=level))
    return level


def move(svc: Services, who: Caller, queued_id: int, direction: str) -> int:
    """One place up (served sooner) or down; the run's new priority."""
    _require_engineer(who)
    if direction not in ("up", "down"):
        raise Invalid(["body", "direction"], f"direction {direction!r}: use up or down")
    moved = move_queued_run(svc.store, queued_id=queued_id, up=direction == "up")
    _pending_or_refuse(svc, queued_id, moved)
    assert moved is not None
    return moved


def cancel(svc: Services, who: Caller, queued_id: int) -> None:
    _require_engineer(who)
    _pending_or_refuse(svc, queued_id, cancel_queued_run(svc.store, queued_id=queued_id))
