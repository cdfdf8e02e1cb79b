"""A worker's store writes wait (bounded) for SQLite's write lock instead of losing the plan or a verdict."""

from __future__ import annotations

import pytest

from fixtures import streaming
from lab.store.db import StoreUnavailable


def test_a_locked_store_is_tried_again_until_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming.time, "sleep", lambda s: None)
    calls = []

    def write() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailable("database sqlite:///x.db is unavailable: database is locked; fix: ...")
        return 83

    assert streaming.retry_while_locked(write) == 83 and len(calls) == 3


def test_other_errors_and_a_lock_held_too_long_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming.time, "sleep", lambda s: None)
    calls = []

    def broken() -> None:
        calls.append(1)
        raise StoreUnavailable("database sqlite:///x.db is unavailable: no such table: results")

    with pytest.raises(StoreUnavailable, match="no such table"):
        streaming.retry_while_locked(broken)
    assert len(calls) == 1

    def locked() -> None:
        calls.append(1)
        raise StoreUnavailable("database is locked")

    with pytest.raises(StoreUnavailable, match="locked"):
        streaming.retry_while_locked(locked, max_tries=5)
    assert len(calls) == 6  # bounded in count (and in time: wait_s)
