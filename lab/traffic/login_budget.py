"""Wrong-password guesses within the DUT's documented brute-force budget (5.1-1-2, 5.1-4-2, 5.1-5-2).

A guess made while the DUT is locked out proves nothing, and tripping a lockout the IXIT allows
for is not a finding; so guesses go in batches the lockout tolerates, each followed by the right
password. Kept apart from the suites so its bookkeeping is unit-tested without a bench.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lab.errors import DutError, SSHUnreachable
from lab.ixit import BruteForcePrevention

UNKNOWN_LOCKOUT_WAIT = 30.0  # s to wait when the DUT locks out although its IXIT gives no lockout time
NOT_ANSWERED = ("refused", "timeout", "error")


@dataclass
class Tried:
    """One wrong-password guess and what the DUT answered (evidence)."""

    candidate: str  # what was tried, in words (never a sample's label password)
    user: str
    outcome: str
    seconds: float
    detail: str = ""
    retried_after_lockout: bool = False


class LoginBudget:
    """Sends wrong-password guesses without tripping the DUT's documented lockout.

    Guesses go in batches of `max_attempts - 1`; after each batch the right password must be
    accepted (which also shows the guesses were not made while the DUT was locked). If it is
    not, the documented lockout is waited out and the batch tried once more.
    """

    def __init__(self, bench, user: str, right: str, bfp: BruteForcePrevention | None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.bench, self.user, self.right, self.bfp = bench, user, right, bfp
        self.sleep = sleep  # waits for lockouts (a unit test passes its own, so nothing really waits)
        self.batch = max(1, min(bfp.max_attempts - 1, 4)) if bfp and bfp.max_attempts else 4
        self.lockout = (bfp.lockout_seconds if bfp and bfp.lockout_seconds is not None else UNKNOWN_LOCKOUT_WAIT)
        self.checks: list[dict] = []
        self.tried: list[Tried] = []
        self.lockouts_seen = 0

    def _right_accepted(self, why: str) -> bool:
        attempt = self.bench.ssh.try_login(self.user, self.right)
        self.checks.append({"why": why, "outcome": attempt.outcome, "seconds": round(attempt.seconds, 3)})
        return attempt.outcome == "accepted"

    def ready(self) -> None:
        """Before any guess: the right password works (else the bench, or a leftover lockout)."""
        attempt = self.bench.ssh.try_login(self.user, self.right)
        self.checks.append({"why": "before the first guess", "outcome": attempt.outcome,
                            "seconds": round(attempt.seconds, 3)})
        if attempt.outcome == "accepted":
            return
        if attempt.outcome in NOT_ANSWERED:
            raise SSHUnreachable(f"before any guess, SSH login as {self.user!r} gave {attempt.outcome} "
                                 f"({attempt.detail})", bench=self.bench.name)
        self.wait_out("the right password was rejected before the first guess (a lockout left by an earlier test?)")

    def wait_out(self, why: str, *, waited: float = 0.0) -> None:
        """Wait the documented lockout out (bounded: three tries); the DUT must accept the right password again.

        `waited`: seconds of the lockout that have already passed.
        """
        self.lockouts_seen += 1
        start = time.monotonic() - waited
        for n in range(3):
            self.sleep(max(0.5, self.lockout + 1.0 - waited) if n == 0 else max(2.0, self.lockout / 2))
            if self._right_accepted(f"after waiting out a lockout ({why})"):
                return
        raise DutError(f"the DUT still rejects the right password for {self.user!r} "
                       f"{time.monotonic() - start:.0f} s after {why}; the IXIT gives a lockout of {self.lockout:g} s")

    def guess(self, candidates: list[tuple[str, str, str]]) -> list[Tried]:
        """Try (description, user, password) guesses, each while the DUT accepted logins.

        Returns the attempts that count; `self.tried` keeps every attempt (evidence).
        """
        self.ready()
        counted: list[Tried] = []
        for start in range(0, len(candidates), self.batch):
            chunk = candidates[start:start + self.batch]
            span = f"guesses {start + 1}-{start + len(chunk)}"
            for again in (False, True):
                results = []
                for what, user, password in chunk:
                    # public factory defaults stay readable in the transcript; samples' passwords do not
                    a = self.bench.ssh.try_login(user, password, secret=not what.startswith("common default"))
                    results.append(Tried(what, user, a.outcome, round(a.seconds, 3), a.detail, again))
                self.tried.extend(results)
                if self.bfp and self.bfp.max_attempts == 1 and self.bfp.lockout_seconds:
                    self.sleep(self.bfp.lockout_seconds + 1.0)  # one failure locks: let it pass first
                answered = not any(r.outcome in NOT_ANSWERED for r in results)
                if self._right_accepted(f"after {span}") and answered:
                    counted.extend(results)
                    break
                if again:
                    raise DutError(f"the DUT locked out (or stopped answering) during {len(chunk)} wrong logins although "
                                   f"its IXIT allows {self.bfp.max_attempts if self.bfp else '?'} failed attempts; "
                                   "the guesses could not be tried while it accepted logins")
                self.wait_out(span)
        return counted
