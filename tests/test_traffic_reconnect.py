"""lab.traffic.reconnect: connection attempts judged against the documented back-off (5.9-3-2), no network."""

from __future__ import annotations

import random

from lab.ixit import Reconnect
from lab.traffic.reconnect import (Attempt, attempts, attempts_since, gaps_needed, judge_backoff, nominal_waits,
                                   resume_bound, retry_window)

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


def _syns(found: list[Attempt]) -> list[tuple[float, int]]:
    return [(a.at, a.sport) for a in found]


def test_the_connection_the_refusal_cut_is_the_first_failure() -> None:
    # the last exchange's connection (SYN before the capture) is refused mid-way at 100.0: its retries count from it
    retries = _times([0.4, 0.8, 1.0, 0.7], start=100.2)  # 0.2 s after the cut: the first retry
    found = attempts_since(_syns(retries), [(99.9, 39000), (100.0, 39000)], since=99.95, policy=TH100)
    assert found[0] == Attempt(100.0, 39000) and found[1:] == retries
    assert judge_backoff(found, TH100, 4, "telemetry").problems == []


def test_an_attempt_that_went_through_as_the_refusal_began_is_not_the_first_failure() -> None:
    # an exchange at 100.0 succeeded; the next attempt, a whole interval later, is the first refused one
    refused = _times([0.13, 0.26, 0.55, 0.6], start=105.0)
    went_through = [(100.0, 38000)] + _syns(refused)
    found = attempts_since(went_through, [(100.1, 38000)], since=99.99, policy=TH100)
    assert found == refused and judge_backoff(found, TH100, 4, "telemetry").problems == []
    # counted as the first failure, it would shift every retry onto the next documented wait: "too early"
    assert judge_backoff(attempts(went_through), TH100, 4, "telemetry").problems
    # packets of a connection that ended before the refusal began are no failure either
    assert attempts_since(_syns(refused), [(99.0, 37000)], since=99.99, policy=TH100) == refused
    # SYNs before the refusal began are not its attempts
    assert attempts_since([(99.0, 36000)] + _syns(refused), [], since=99.99, policy=TH100) == refused


def test_a_storm_stays_a_storm_whatever_the_alignment() -> None:
    storm = _times([0.05] * 6, start=100.0)
    found = attempts_since(_syns(storm), [(99.99, 35000)], since=99.98, policy=TH100)
    assert judge_backoff(found, TH100, 5, "telemetry").problems
