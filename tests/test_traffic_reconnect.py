"""lab.traffic.reconnect: connection attempts judged against the documented back-off (5.9-3-2), no network."""

from __future__ import annotations

import random

from lab.ixit import Reconnect
from lab.traffic.reconnect import (Attempt, attempts, gaps_needed, judge_backoff, nominal_waits, resume_bound,
                                   retry_window)

TH100 = Reconnect(initial_seconds=0.25, factor=2, max_seconds=1, jitter=0.5)


def _times(waits: list[float], start: float = 100.0) -> list[Attempt]:
    found, at = [Attempt(start, 40000)], start
    for n, wait in enumerate(waits, start=1):
        at += wait
        found.append(Attempt(at, 40000 + n))
    return found


def test_a_retransmitted_syn_is_the_same_attempt() -> None:
    assert attempts([(2.0, 41000), (1.0, 40000), (2.5, 40000), (3.0, 41001)]) == [
        Attempt(1.0, 40000), Attempt(2.0, 41000), Attempt(3.0, 41001)]


def test_the_documented_waits_grow_to_their_cap_and_enough_retries_are_watched_to_see_jitter() -> None:
    assert nominal_waits(TH100, 5) == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert gaps_needed(TH100) == 5
    assert gaps_needed(Reconnect(initial_seconds=1, factor=1, max_seconds=1)) == 3
    assert retry_window(TH100, 5) == 2 * 3.75 + 2.0


def test_retries_with_the_documented_backoff_and_jitter_are_orderly() -> None:
    rng = random.Random(7)
    waits = [w * rng.uniform(0.5, 1.0) for w in nominal_waits(TH100, 5)]
    judged = judge_backoff(_times(waits), TH100, 5, "telemetry")
    assert judged.problems == []
    assert judged.as_dict(TH100)["earliest_allowed_s"][0] < 0.125


def test_fixed_fast_retries_are_a_storm() -> None:
    judged = judge_backoff(_times([0.05] * 5), TH100, 5, "telemetry")
    assert len(judged.problems) == 1
    assert "retried faster than its documented back-off" in judged.problems[0]
    assert "5 of 5 retries too early" in judged.problems[0]


def test_retries_at_the_initial_wait_only_show_no_backoff() -> None:
    judged = judge_backoff(_times([0.25] * 5), TH100, 5, "telemetry")
    assert "retry 3 after 0.25 s (documented 0.50-1.00 s)" in judged.problems[0]


def test_a_device_that_stops_retrying_is_named() -> None:
    judged = judge_backoff(_times([0.2]), TH100, 5, "telemetry")
    assert judged.problems == ["telemetry retried 1 time(s) where its documented back-off (initial 0.25 s, factor 2, "
                               "max 1 s) gives 5 in the window"]


def test_documented_jitter_that_never_shows_fails() -> None:
    judged = judge_backoff(_times(nominal_waits(TH100, 5)), TH100, 5, "telemetry")
    assert judged.jitter_spread == 0
    assert "do not vary" in judged.problems[0]


def test_no_jitter_documented_means_none_is_required() -> None:
    policy = Reconnect(initial_seconds=0.25, factor=2, max_seconds=1)
    assert judge_backoff(_times(nominal_waits(policy, 5)), policy, 5, "telemetry").problems == []


def test_traffic_may_take_its_interval_and_a_pending_retry_to_resume() -> None:
    assert resume_bound(5, TH100, 2) == 8
    assert resume_bound(5, None, 2) == 7
