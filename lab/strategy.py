"""The bench strategy: the one place that knows how to bring a DUT to a known state.

States are ordered: OFF -> BOOTED (powered, boot banner seen) -> SHELL (logged in on the
console) -> PROVISIONED (the lab's playbook ran over SSH). `transition()` is idempotent and
walks up in order; asking for OFF always switches the power off; from UNKNOWN it power-cycles,
because nothing else gives a known state. A LabFault in a transition is latched
(labgrid's never_retry): a bench that lost its relay or console stays lost for the run, so
later tests report INCONCLUSIVE at once instead of hammering a dead instrument.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.drivers.console import ConsoleDriver
from lab.drivers.power import PowerDriver
from lab.drivers.provision import ProvisionDriver
from lab.drivers.ssh import SSHDriver
from lab.errors import BootFailure, CertlabError, DutError, ExpectTimeout, LabFault, SampleUnusable
from lab.steps import NullSteps, StepRecorder


class BenchState(enum.IntEnum):
    UNKNOWN = 0
    OFF = 1
    BOOTED = 2
    SHELL = 3
    PROVISIONED = 4


@dataclass(frozen=True)
class ConsolePrompts:
    """The product's console prompts (regexes), from the manufacturer's IXIT."""

    boot_banner: str
    login_prompt: str
    password_prompt: str
    shell_prompt: str
    login_incorrect: str = "Login incorrect"


class BenchStrategy:
    def __init__(self, *, power: PowerDriver, console: ConsoleDriver, ssh: SSHDriver | None = None,
                 provision: ProvisionDriver | None = None, prompts: ConsolePrompts,
                 credentials: Callable[[], tuple[str, str]], boot_timeout: float = 60.0,
                 login_timeout: float = 15.0, playbook: str | Path | None = None,
                 bench: str | None = None, steps: StepRecorder | None = None) -> None:
        self.power = power
        self.console = console
        self.ssh = ssh
        self.provision = provision
        self.prompts = prompts
        self._credentials = credentials
        self.boot_timeout = boot_timeout
        self.login_timeout = login_timeout
        self.playbook = Path(playbook) if playbook else None
        self.bench = bench
        self._steps = steps or NullSteps()
        self._lock = threading.RLock()
        self.state = BenchState.UNKNOWN
        self.fault: LabFault | None = None  # latched: this bench is lost for the rest of the run
        self.unbootable: str | None = None  # latched: the sample stopped booting (a test found a defect)
        self.boot_seconds: float | None = None  # last power-on -> boot banner time
        self.unauthenticated_console: bool | None = None  # the console gave a shell without a login

    # --- public ----------------------------------------------------------------------------
    def transition(self, target: BenchState | str) -> None:
        """Bring the bench to `target` (idempotent; ordered; a lab fault is latched)."""
        target = BenchState[target.upper()] if isinstance(target, str) else BenchState(target)
        if target is BenchState.UNKNOWN:
            raise CertlabError("cannot transition a bench to UNKNOWN; use invalidate()")
        with self._lock:
            self._raise_latched()
            if target is not BenchState.OFF and self.state >= target:
                return
            with self._steps.step("bench transition", bench=self.bench, source=self.state.name, target=target.name):
                self._guarded(lambda: self._walk(target))

    def power_cycle(self, off_time: float = 1.0) -> float:
        """Power off, wait, power on; seconds from power-on to the boot banner (state BOOTED)."""
        with self._lock:
            self._raise_latched()
            with self._steps.step("power cycle to boot banner", bench=self.bench, off_time=off_time):
                return self._guarded(lambda: self._cycle(off_time))

    def invalidate(self) -> None:
        """Forget the state (a test disturbed the DUT); the next transition starts from a power cycle."""
        with self._lock:
            self.state = BenchState.UNKNOWN

    # --- the walk --------------------------------------------------------------------------
    def _walk(self, target: BenchState) -> None:
        if target is BenchState.OFF:
            self.power.off()
            self.state = BenchState.OFF
            return
        if self.state < BenchState.BOOTED:
            if self.state is BenchState.OFF:
                self._boot()
            else:
                self._cycle(1.0)
            fresh = True
        else:
            fresh = False
        if target >= BenchState.SHELL and self.state < BenchState.SHELL:
            self._login(fresh_boot=fresh)
        if target >= BenchState.PROVISIONED and self.state < BenchState.PROVISIONED:
            self._provision()

    def _cycle(self, off_time: float) -> float:
        self.state = BenchState.UNKNOWN
        self.console.open()  # before power-on, so the first boot byte is in the transcript
        self.power.off()
        self.state = BenchState.OFF
        time.sleep(off_time)
        return self._boot()

    def _boot(self) -> float:
        self.console.open()
        self.console.clear()  # what a dying DUT printed is not this boot
        self.state = BenchState.UNKNOWN
        self.power.on()
        start = time.monotonic()
        try:
            self.console.expect(self.prompts.boot_banner, timeout=self.boot_timeout)
        except ExpectTimeout as exc:
            raise BootFailure(
                f"{self._who()}DUT printed output after power-on but no boot banner "
                f"{self.prompts.boot_banner!r} within {self.boot_timeout} s; last output: {exc.tail[-200:]!r}"
            ) from None
        self.boot_seconds = time.monotonic() - start
        self.state = BenchState.BOOTED
        return self.boot_seconds

    def _login(self, *, fresh_boot: bool) -> None:
        """Log in on the console; a prompt that needs no login is noted (it matters for 5.6-4)."""
        user, password = self._credentials()
        p = self.prompts
        patterns = [p.login_incorrect, p.login_prompt, p.password_prompt, p.shell_prompt]
        deadline = time.monotonic() + self.login_timeout
        sent_user = sent_password = False
        if not fresh_boot:
            self.console.read_until_quiet(quiet=0.2, timeout=2.0)
            self.console.sendline("")  # ask for a fresh prompt
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise ExpectTimeout("login time is up", tail="")
                found = self.console.expect(patterns, timeout=remaining)
            except ExpectTimeout as exc:
                raise ExpectTimeout(
                    f"{self._who()}no login, password or shell prompt on the console within "
                    f"{self.login_timeout} s; last output: {exc.tail[-200:]!r}", tail=exc.tail
                ) from None
            if found.index == 0 or (found.index == 1 and (sent_user or sent_password)):
                raise DutError(f"{self._who()}console login as {user!r} was rejected "
                               "with the lab's documented credentials")
            if found.index == 1:
                self.console.sendline(user)
                sent_user = True
            elif found.index == 2:
                self.console.sendline(password, secret=True)
                sent_password = True
            else:
                self.unauthenticated_console = not (sent_user or sent_password)
                if self.unauthenticated_console:
                    self._note("console showed a shell prompt without asking to log in (see 5.6-4)")
                self.state = BenchState.SHELL
                return

    def _provision(self) -> None:
        if self.provision is None or self.playbook is None:
            raise CertlabError(f"{self._who()}no provisioning playbook configured; set certlab.playbook")
        if self.ssh is not None:
            self.ssh.wait_reachable(timeout=self.boot_timeout)
        self.provision.run_playbook(self.playbook)
        self.state = BenchState.PROVISIONED

    # --- faults ----------------------------------------------------------------------------
    def _guarded(self, action: Callable[[], object]):
        try:
            return action()
        except LabFault as exc:
            self.fault = exc
            self.state = BenchState.UNKNOWN
            self._note(f"lab fault latched: {exc}")
            raise
        except BootFailure as exc:
            # The test that caused it reports the defect; every later test would only wait out
            # the boot timeout again, so they end at once as undecidable.
            self.unbootable = str(exc).splitlines()[0][:300]
            self.state = BenchState.UNKNOWN
            self._note(f"sample no longer boots: {self.unbootable}")
            raise
        except BaseException:
            self.state = BenchState.UNKNOWN
            raise

    def _raise_latched(self) -> None:
        if self.unbootable is not None:
            raise SampleUnusable(f"the sample no longer boots since an earlier test ({self.unbootable})",
                                 bench=self.bench)
        if self.fault is not None:
            first = self.fault
            raise type(first)(f"{first.cause} (earlier in this run; this bench is not retried)",
                              bench=first.bench or self.bench) from first

    def _who(self) -> str:
        return f"bench {self.bench}: " if self.bench else ""

    def _note(self, text: str) -> None:
        if self.console.transcript is not None:
            self.console.transcript.note(text)
