"""The store's unit of work, shared by `repo` (runs and results) and `scheduling` (leases, queue).

A function takes a `Store` (it then runs in its own short transaction and commits) or a
`Session` (it joins the caller's transaction and only flushes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from lab.store.db import Store, unavailable

Target = Store | Session


@contextmanager
def unit(target: Target, *, read_only: bool = False) -> Iterator[Session]:
    """One unit of work: its own committed transaction for a Store, the caller's for a Session.

    `read_only` takes a read transaction (Store.reading: never queues for SQLite's write lock).
    """
    try:
        if isinstance(target, Session):
            yield target
            if not read_only:
                target.flush()
            return
        with (target.reading() if read_only else target.transaction()) as session:
            yield session
    except OperationalError as exc:
        if isinstance(target, Session):
            bind = target.get_bind()
            raise unavailable(exc, bind.url.render_as_string(hide_password=True), bind.url.password) from None
        raise unavailable(exc, target.url, target.engine.url.password) from None


def reading(target: Target) -> AbstractContextManager[Session]:
    """`unit` for work that only reads."""
    return unit(target, read_only=True)


def insert_for(session: Session, model: type) -> Any:
    """The dialect's INSERT, which has ON CONFLICT on both backends."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def as_ttl(ttl: float | timedelta) -> timedelta:
    return ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)


def stamp(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else "never"


def where(target: Target) -> str:
    if isinstance(target, Store):
        return target.url
    return target.get_bind().url.render_as_string(hide_password=True)
