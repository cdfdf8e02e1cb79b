"""Store writes wait (bounded) for SQLite's write lock: a worker keeps its plan and verdicts, start-up its turn."""

from __future__ import annotations

import pytest

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
