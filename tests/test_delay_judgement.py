"""5.1-5-2's timing judgement: is a failed login slowed down by the delay the IXIT documents?

The judgement is on (baseline, failed) pairs timed back to back: one slow baseline must not
turn a padded failure into "not slowed"; a spread straddling the threshold is undecidable
(INCONCLUSIVE), never a FAIL.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from suitelib import load_suite_module  # tests/suitelib.py



@pytest.fixture(scope="module")
def support():
    return load_suite_module("support.py", "certlab_suite_support_delay")


def test_median_and_its_interval(support):
    assert support.median([3, 1, 2]) == 2
    assert support.median([4, 1, 2, 3]) == 2.5
    assert support.median_interval([1, 2, 3, 4, 5]) is None  # 5 values cannot give 95 %
    low, high, level = support.median_interval([6, 1, 5, 2, 4, 3])
    assert (low, high) == (1, 6) and level == pytest.approx(1 - 2 / 64)
    low, high, level = support.median_interval(list(range(1, 10)))
    assert (low, high) == (2, 8) and level >= 0.95
    low, high, level = support.median_interval(list(range(1, 13)))
    assert (low, high) == (3, 10) and level >= 0.95


def _pairs(rng, n, accepted=0.18, delay=0.25, jitter=0.02):
    return [(accepted + rng.uniform(0, jitter), accepted + delay + rng.uniform(0, jitter)) for _ in range(n)]


def test_a_padded_failure_is_slowed(support):
    judged = support.judge_failure_delay(_pairs(random.Random(1), 6), 0.25)
    assert judged.decision == "slowed", judged.how()
    assert "threshold 0.200 s = 80% of the documented 0.25 s" in judged.how()


def test_one_slow_baseline_cannot_make_it_not_slowed(support):
    rng = random.Random(2)
    pairs = _pairs(rng, 6)
    pairs[2] = (0.376, pairs[2][1])  # the run that once FAILed a conforming device
    judged = support.judge_failure_delay(pairs, 0.25)
    assert judged.decision != "not slowed"
    more = pairs + _pairs(rng, 3)
    assert support.judge_failure_delay(more, 0.25).decision == "slowed"  # more pairs decide it


def test_no_delay_is_not_slowed(support):
    judged = support.judge_failure_delay(_pairs(random.Random(3), 6, delay=0.0), 0.25)
    assert judged.decision == "not slowed", judged.how()


def test_a_spread_straddling_the_threshold_is_undecidable(support):
    rng = random.Random(4)
    pairs = [(0.2, 0.2 + d) for d in (0.05, 0.35, 0.1, 0.3, 0.05, 0.3, 0.1, 0.35)]
    rng.shuffle(pairs)
    judged = support.judge_failure_delay(pairs, 0.25)
    assert judged.decision == "undecidable"
    assert "interval" in judged.how()


def test_too_few_pairs_are_undecidable(support):
    assert support.judge_failure_delay(_pairs(random.Random(5), 5), 0.25).decision == "undecidable"
    assert support.judge_failure_delay([], 0.25).decision == "undecidable"
    assert "no pair" in support.judge_failure_delay([], 0.25).how()
