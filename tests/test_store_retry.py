"""Store writes wait (bounded) for SQLite's write lock: a worker keeps its plan and verdicts, start-up its turn."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from lab.store import db
from lab.store.db import StoreUnavailable, retry_while_locked


def test_a_locked_store_is_tried_again_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db.time, "sleep", lambda s: None)
    calls = []

    def write() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailable("database sqlite:///x.db is unavailable: database is locked; fix: ...")
        return 83

    assert retry_while_locked(write) == 83 and len(calls) == 3


def test_other_errors_and_a_lock_held_too_long_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db.time, "sleep", lambda s: None)
    calls = []

    def broken() -> None:
        calls.append(1)
        raise StoreUnavailable("database sqlite:///x.db is unavailable: no such table: results")

    with pytest.raises(StoreUnavailable, match="no such table"):
        retry_while_locked(broken)
    assert len(calls) == 1

    def locked() -> None:
        calls.append(1)
        raise StoreUnavailable("database is locked")

    with pytest.raises(StoreUnavailable, match="locked"):
        retry_while_locked(locked, max_tries=5)
    assert len(calls) == 6  # bounded in count (and in time: wait_s)


def test_a_write_transaction_waits_past_one_busy_timeout_for_the_lock(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds SQLite's write lock longer than the busy timeout: the writer waits its turn."""
    import sqlite3
    import threading

    from lab.store.db import open_store

    monkeypatch.setattr(db, "SQLITE_BUSY_MS", 100)
    store = open_store(f"sqlite:///{tmp_path / 'certlab.db'}")
    holder = sqlite3.connect(tmp_path / "certlab.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, holder.execute, args=("COMMIT",))  # ten busy timeouts later
    release.start()
    try:
        with store.transaction() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
    finally:
        release.join(5)
        holder.close()
        store.close()


def test_the_write_lock_wait_is_bounded(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from lab.store.db import open_store

    monkeypatch.setattr(db, "SQLITE_BUSY_MS", 50)
    monkeypatch.setattr(db, "WRITE_LOCK_WAIT_S", 0.3)
    store = open_store(f"sqlite:///{tmp_path / 'certlab.db'}")
    holder = sqlite3.connect(tmp_path / "certlab.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Exception, match="database is locked"):
            with store.transaction() as session:
                session.execute(text("SELECT 1"))
    finally:
        holder.execute("COMMIT")
        holder.close()
        store.close()
