"""The app's background rounds (run follower, record keeper): a failing round does not end the thread."""

from __future__ import annotations

import threading

from lab.actions.periodic import Periodic


def test_a_failing_round_is_followed_by_the_next_and_stop_ends_the_thread():
    rounds: list[int] = []
    third = threading.Event()

    def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) >= 3:
            third.set()
        if len(rounds) == 1:
            raise RuntimeError("the store is down for a moment")

    ticker = Periodic("test-rounds", work, period=0.01)
    ticker.start()
    assert third.wait(5)
    ticker.stop(timeout=5)
    assert not ticker.running and len(rounds) >= 3
