"""lab.traffic.login_budget against a scripted SSH login double (no bench, no real waiting).

The budget decides which wrong guesses count: only those made while the DUT accepted the right
password, in batches its documented lockout tolerates, with the lockout waited out once.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lab.drivers.ssh import LoginAttempt
from lab.errors import DutError, SSHUnreachable
from lab.ixit import BruteForcePrevention
from lab.traffic.login_budget import UNKNOWN_LOCKOUT_WAIT, LoginBudget

RIGHT = "Right-Pw-1"


class LockingDut:
    """Locks after `max_fail` consecutive failures, for `unlock_after` logins or until the lab waits (sleeps)."""

    def __init__(self, max_fail: int = 99, unlock_after: int = 0, answer: str | None = None) -> None:
        self.max_fail, self.unlock_after, self.answer = max_fail, unlock_after, answer
        self.fails, self.locked_for, self.calls = 0, 0, []

    def wait(self, seconds: float) -> None:
        if self.unlock_after < 0:  # locked until the lab waits
            self.locked_for = 0

    def try_login(self, user: str, password: str, *, secret: bool = True) -> LoginAttempt:
        self.calls.append((password, secret))
        if self.answer:
            return LoginAttempt(user, self.answer, 0.01, "scripted")
        if self.locked_for:
            self.locked_for -= 1
            return LoginAttempt(user, "rejected", 0.01, "locked")
        if password == RIGHT:
            self.fails = 0
            return LoginAttempt(user, "accepted", 0.01)
        self.fails += 1
        if self.fails >= self.max_fail:
            self.locked_for, self.fails = (99 if self.unlock_after < 0 else self.unlock_after), 0
        return LoginAttempt(user, "rejected", 0.01)


def budget(dut: LockingDut, bfp: BruteForcePrevention | None, sleeps: list[float]) -> LoginBudget:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        dut.wait(seconds)

    return LoginBudget(SimpleNamespace(ssh=dut, name="bench-1"), "root", RIGHT, bfp, sleep=sleep)


def bfp(max_attempts: int | None, lockout: float | None = 60.0) -> BruteForcePrevention:
    return BruteForcePrevention(max_attempts=max_attempts, lockout_seconds=lockout, delay_seconds=None if lockout else 1.0,
                                description="lockout")


GUESSES = [(f"common default {p!r}", "root", p) for p in ("admin", "root", "1234", "toor", "pass", "guest", "12345")]


def test_guesses_go_in_batches_below_the_lockout_each_followed_by_the_right_password() -> None:
    dut, sleeps = LockingDut(max_fail=5, unlock_after=3), []
    b = budget(dut, bfp(5), sleeps)
    counted = b.guess(GUESSES)
    assert b.batch == 4 and [t.candidate for t in counted] == [g[0] for g in GUESSES]
    assert [p for p, _ in dut.calls] == [RIGHT, "admin", "root", "1234", "toor", RIGHT, "pass", "guest", "12345", RIGHT]
    assert sleeps == [] and b.lockouts_seen == 0 and all(not secret for _, secret in dut.calls[1:5])


def test_a_lockout_is_waited_out_once_and_the_batch_tried_again() -> None:
    dut, sleeps = LockingDut(max_fail=2, unlock_after=-1), []
    b = budget(dut, bfp(5, lockout=10.0), sleeps)  # the IXIT says 5, the DUT locks after 2
    with pytest.raises(DutError, match="locked out .* during 4 wrong logins although its IXIT allows 5"):
        b.guess(GUESSES)
    assert b.lockouts_seen == 1 and sleeps == [11.0]  # the documented lockout plus a second, once
    assert [t.retried_after_lockout for t in b.tried] == [False] * 4 + [True] * 4



def test_a_lockout_the_ixit_allows_for_costs_one_wait_and_the_guesses_still_count() -> None:
    class OnceLockingDut(LockingDut):
        def wait(self, seconds: float) -> None:
            super().wait(seconds)
            self.max_fail = 99  # a lockout that does not come back (e.g. left by an earlier step)

    dut, sleeps = OnceLockingDut(max_fail=2, unlock_after=-1), []
    b = budget(dut, bfp(3, lockout=10.0), sleeps)  # batches of 2
    assert len(b.guess(GUESSES[:4])) == 4
    assert b.lockouts_seen == 1 and sleeps == [11.0]
    assert [t.retried_after_lockout for t in b.tried] == [False, False, True, True, False, False]


def test_without_a_documented_lockout_the_lab_waits_its_own_bound() -> None:
    b = budget(LockingDut(), bfp(None, lockout=None), [])
    assert b.batch == 4 and b.lockout == UNKNOWN_LOCKOUT_WAIT


def test_a_dut_still_locked_after_three_waits_fails() -> None:
    dut, sleeps = LockingDut(max_fail=1, unlock_after=50), []
    b = budget(dut, bfp(3, lockout=5.0), sleeps)
    dut.locked_for = 50
    with pytest.raises(DutError, match="still rejects the right password .* lockout of 5 s"):
        b.ready()
    assert sleeps == [6.0, 2.5, 2.5]  # bounded: three waits


def test_an_unanswered_login_before_any_guess_is_the_labs_problem() -> None:
    b = budget(LockingDut(answer="refused"), bfp(5), [])
    with pytest.raises(SSHUnreachable, match="before any guess, SSH login as 'root' gave refused"):
        b.guess(GUESSES)
