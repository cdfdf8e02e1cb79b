"""Small steps the EN 303 645 test cases share. Everything product-specific comes from the IXIT.

Kept free of pytest fixtures so each step reads as what a tester does by hand.
"""

from __future__ import annotations

import re
import time

from lab.bench import Bench
from lab.errors import DutError, LabFault, SSHUnreachable
from lab.ixit import TestFacts
from lab.strategy import BenchState


def ssh_output(bench: Bench, command: str, *, timeout: float = 30) -> str:
    """Run a documented command over SSH; a non-zero exit is the DUT's failure to do as documented."""
    result = bench.ssh.run(command, timeout=timeout)
    if result.exit_status != 0:
        raise DutError(f"`{command}` exited {result.exit_status}: {(result.stderr or result.stdout).strip()[:300]}")
    return result.stdout


def installed_version(bench: Bench, facts: TestFacts) -> str:
    """The firmware version the DUT reports, read as the IXIT says."""
    text = ssh_output(bench, facts.version_command)
    match = re.search(facts.version_pattern, text)
    if not match:
        raise DutError(f"`{facts.version_command}` printed no version matching {facts.version_pattern!r}: {text.strip()[:200]!r}")
    return match.group("version")


def wait_until_back(bench: Bench, facts: TestFacts, *, why: str) -> float:
    """After a reboot the DUT started itself: wait for SSH to accept the lab's login again.

    Returns the seconds it took. A DUT that never comes back within the IXIT's bound is a FAIL
    (it was reachable before `why`); the SSH connection is reopened from scratch.
    """
    start = time.monotonic()
    bench.ssh.close()
    bench.strategy.invalidate()
    deadline = start + facts.update_seconds + facts.boot_seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            bench.ssh.wait_reachable(timeout=max(1.0, deadline - time.monotonic()))
            bench.ssh.run("true", timeout=10)
            return time.monotonic() - start
        except (LabFault, OSError, EOFError) as exc:  # still rebooting
            last = exc
            bench.ssh.close()
            time.sleep(0.5)
    raise DutError(f"the DUT did not come back within {facts.update_seconds + facts.boot_seconds:.0f} s "
                   f"after {why} (last error: {last})")


def power_cycle_and_login(bench: Bench, facts: TestFacts, *, why: str) -> float:
    """Cut power, restore it and wait until SSH works again; a DUT that does not boot FAILs."""
    bench.ssh.close()
    bench.strategy.invalidate()
    seconds = bench.strategy.power_cycle()
    try:
        return seconds + wait_until_back(bench, facts, why=why)
    except SSHUnreachable as exc:
        raise DutError(f"SSH never came back after {why}: {exc.cause}") from None


def ensure_booted(bench: Bench) -> None:
    if bench.strategy.state < BenchState.BOOTED:
        bench.strategy.transition(BenchState.BOOTED)
