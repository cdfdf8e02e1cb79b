"""StepClock: the time a test spends waiting on its drivers, measured as steps run (bench/suite_time.py)."""

from __future__ import annotations

import threading

import pytest

from lab.steps import ListSteps, StepClock


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_nested_steps_count_once_and_the_rest_not_at_all() -> None:
    t = FakeClock()
    inner = ListSteps()
    clock = StepClock(inner, clock=t)
    t.now = 1.0  # the test computing: not driver time
    with clock.step("outer", bench="b1"):
        t.now = 3.0
        with clock.step("inner"):
            t.now = 4.0
        t.now = 5.0
    t.now = 9.0
    assert clock.take() == pytest.approx(4.0)
    assert clock.take() == 0.0
    assert [r[0] for r in inner.records] == ["inner", "outer"]  # passed on to the inner recorder


def test_overlapping_steps_in_threads_count_once() -> None:
    t = FakeClock()
    clock = StepClock(clock=t)
    started, release = threading.Event(), threading.Event()

    def capture() -> None:
        with clock.step("capture"):
            started.set()
            assert release.wait(5)

    worker = threading.Thread(target=capture)
    worker.start()
    assert started.wait(5)
    t.now = 2.0
    with clock.step("console expect"):
        t.now = 3.0
    t.now = 6.0
    release.set()
    worker.join(5)
    assert clock.take() == pytest.approx(6.0)


def test_take_during_a_step_splits_it_between_phases() -> None:
    t = FakeClock()
    clock = StepClock(clock=t)
    with clock.step("power cycle"):
        t.now = 2.0
        assert clock.take() == pytest.approx(2.0)
        t.now = 5.0
    assert clock.take() == pytest.approx(3.0)


def test_a_failing_step_is_still_timed() -> None:
    t = FakeClock()
    clock = StepClock(clock=t)
    with pytest.raises(TimeoutError):
        with clock.step("console expect"):
            t.now = 1.5
            raise TimeoutError("no prompt")
    assert clock.take() == pytest.approx(1.5)
