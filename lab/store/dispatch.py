"""Fencing tokens for work sent to lab hosts: who may run an attempt, and whose results count.

A broker with late acknowledgement delivers a message at least once; these functions make the
effect exactly once. The orchestrator creates one row per attempt (its id is the token); a lab
host claims it before touching the bench; the orchestrator supersedes it when it gives the work
to another host (host lost) or cancels it (Ctrl-C). A redelivered message, or a host that comes
back from a partition, finds the token no longer `queued`/`running` and does nothing.
"""

from __future__ import annotations

from sqlalchemy import select, update

from lab.store.models import Dispatch, utcnow
from lab.store.unit import Target, unit

LIVE = ("queued", "running")
FENCE_ENV = "CERTLAB_FENCE_TOKEN"  # how a lab host hands the token to its pytest worker


def new_dispatch(target: Target, *, run_id: str, item_key: str, slot: str, bench: str, labhost: str,
                 attempt: int) -> int:
    """Record an attempt about to be sent; returns its fencing token."""
    with unit(target) as s:
        row = Dispatch(run_id=run_id, item_key=item_key, slot=slot, bench=bench, labhost=labhost,
                       attempt=attempt, state="queued", note="", created_at=utcnow())
        s.add(row)
        s.flush()
        return row.id


def set_task_id(target: Target, *, token: int, task_id: str) -> None:
    with unit(target) as s:
        s.execute(update(Dispatch).where(Dispatch.id == token).values(task_id=task_id))


def claim_dispatch(target: Target, *, token: int, labhost: str) -> bool:
    """queued -> running, once: False for a superseded, cancelled or already claimed attempt."""
    with unit(target) as s:
        return s.execute(update(Dispatch).where(Dispatch.id == token, Dispatch.state == "queued")
                         .values(state="running", labhost=labhost, claimed_at=utcnow())
                         .execution_options(synchronize_session=False)).rowcount == 1


def end_dispatch(target: Target, *, token: int, state: str, note: str = "") -> bool:
    """Close a live attempt (done, superseded or cancelled); False if it had ended already."""
    if state in LIVE:
        raise ValueError(f"an attempt ends as done, superseded or cancelled, not {state!r}")
    with unit(target) as s:
        return s.execute(update(Dispatch).where(Dispatch.id == token, Dispatch.state.in_(LIVE))
                         .values(state=state, note=note, ended_at=utcnow())
                         .execution_options(synchronize_session=False)).rowcount == 1


def dispatch_state(target: Target, *, token: int) -> str | None:
    with unit(target) as s:
        return s.scalar(select(Dispatch.state).where(Dispatch.id == token))


def dispatches(target: Target, *, run_id: str) -> list[Dispatch]:
    with unit(target) as s:
        return list(s.scalars(select(Dispatch).where(Dispatch.run_id == run_id).order_by(Dispatch.id)))


def holds_fence(session: object, token: int) -> bool:
    """Inside a write: is this attempt still the one allowed to record results? (shared row lock on PostgreSQL)"""
    state = session.scalar(select(Dispatch.state).where(Dispatch.id == token).with_for_update(read=True))  # type: ignore[attr-defined]
    return state == "running"
