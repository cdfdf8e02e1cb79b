"""The bench strategy: the one place that knows how to bring a DUT to a known state.

States are ordered: OFF -> BOOTED (powered, boot banner seen) -> SHELL (logged in on the
console) -> PROVISIONED (the lab's playbook ran over SSH). `transition()` is idempotent and
walks up in order; asking for OFF always switches the power off; from UNKNOWN it power-cycles,
because nothing else gives a known state. A LabFault in a transition is latched
(labgrid's never_retry): a bench that lost its relay or console stays lost for the run, so
later tests report INCONCLUSIVE at once instead of hammering a dead instrument.

Readiness: a bench is ready when every interface the test uses answers. The console is waited
for here (banner, prompts); SSH is waited for where it is used: after this strategy powers the
DUT on, the first use of the SSH driver (a command, a login attempt, a probe) waits until the
SSH server sends its banner, bounded by the console's boot timeout counted from power-on
(`wait_ssh_ready`). A console may offer its shell before the SSH server listens; "connection
refused" then means "still booting". After the boot timeout a refusal is the DUT's answer. A
test that never touches SSH never waits for it. Every power switch drops the kept SSH connection.
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
from lab.errors import BootFailure, CertlabError, ExpectTimeout, LabFault, LabLoginRejected, SampleUnusable
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
                 credentials: Callable[[], tuple[str, str]], credentials_source: str = "the lab's credentials",
                 boot_timeout: float = 60.0,
                 login_timeout: float = 15.0, playbook: str | Path | None = None,
                 bench: str | None = None, steps: StepRecorder | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.power = power
        self.console = console
        self.ssh = ssh
        self.provision = provision
        self.prompts = prompts
        self._credentials = credentials
        self.credentials_source = credentials_source
        self.boot_timeout = boot_timeout
        self.login_timeout = login_timeout
        self.playbook = Path(playbook) if playbook else None
        self.bench = bench
        self._steps = steps or NullSteps()
        self._clock, self._sleep = clock, sleep  # injectable, so the waits can be tested without waiting
        self._lock = threading.RLock()
        self.state = BenchState.UNKNOWN
        self.fault: LabFault | None = None  # latched: this bench is lost for the rest of the run
        self.unbootable: str | None = None  # latched: the sample stopped booting (a test found a defect)
        self.boot_seconds: float | None = None  # last power-on -> boot banner time
        self.powered_on_at: float | None = None  # the clock's time (time.monotonic) of our last power-on
        self.ssh_seconds: float | None = None  # last power-on -> SSH banner (None: not seen since power-on)
        self.unauthenticated_console: bool | None = None  # the console gave a shell without a login
        self._ssh_pending = False  # powered on by us, SSH not yet seen answering nor given up on
        self._boots = 0  # power-ons by this strategy: a wait for SSH ends when another one happens
        self._ssh_gate = threading.Lock()  # one waiter per boot; the others find it done
        if ssh is not None:
            ssh.attach_readiness(self.wait_ssh_ready)

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

    def wait_ssh_ready(self, *, interval: float = 0.25) -> float | None:
        """After a power-on by this strategy, wait until the DUT's SSH server answers; once per boot.

        Returns the seconds from power-on to the SSH banner, or None when there was nothing to
        wait for (no boot by this strategy since, SSH already seen) or the boot timeout ran out.
        Never raises for a DUT that does not answer: the caller's own attempt then gets the DUT's
        real answer (SSHUnreachable for the lab's commands, "refused" for a login attempt).
        """
        ssh = self.ssh
        if ssh is None or not self._ssh_pending:
            return None
        with self._ssh_gate:
            if not self._ssh_pending or self.powered_on_at is None:
                return None
            boot, on_at = self._boots, self.powered_on_at
            deadline = on_at + self.boot_timeout
            last = "no attempt"
            with self._steps.step("wait for SSH after power-on", bench=self.bench, where=ssh.where,
                                  boot_timeout=self.boot_timeout):
                for _ in range(int(self.boot_timeout / max(interval, 0.05)) + 2):  # bounded in count too
                    remaining = deadline - self._clock()
                    if remaining <= 0 or boot != self._boots:
                        break
                    answered, last = ssh.probe_banner(min(remaining, 3.0))
                    if answered:
                        seconds = self._clock() - on_at
                        self.ssh_seconds = seconds
                        self._ssh_pending = False
                        self._evidence(f"SSH of {ssh.where} answered {seconds:.2f} s after power-on ({last}); "
                                       f"the bench waits up to the boot timeout of {self.boot_timeout:g} s")
                        with self._steps.step(f"SSH answered {seconds:.2f} s after power-on", bench=self.bench):
                            pass
                        return seconds
                    self._sleep(min(interval, max(0.0, deadline - self._clock())))
            if boot == self._boots:
                self._ssh_pending = False
                self._evidence(f"SSH of {ssh.where} did not answer within the boot timeout of {self.boot_timeout:g} s "
                               f"after power-on (last: {last}); from now on its answer counts")
            return None

    def invalidate(self) -> None:
        """Forget the state (a test disturbed the DUT); the next transition starts from a power cycle."""
        with self._lock:
            self.state = BenchState.UNKNOWN

    # --- the walk --------------------------------------------------------------------------
    def _walk(self, target: BenchState) -> None:
        if target is BenchState.OFF:
            self.power.off()
            self._powered_off()
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
        self._powered_off()
        self.state = BenchState.OFF
        self._sleep(off_time)
        return self._boot()

    def _boot(self) -> float:
        self.console.open()
        self.console.clear()  # what a dying DUT printed is not this boot
        self.state = BenchState.UNKNOWN
        self._powered_off()  # a connection from before this boot belongs to another life of the DUT
        self.power.on()
        start = self._clock()
        self.powered_on_at, self.ssh_seconds, self._ssh_pending = start, None, True
        self._boots += 1
        try:
            self.console.expect(self.prompts.boot_banner, timeout=self.boot_timeout)
        except ExpectTimeout as exc:
            raise BootFailure(
                f"{self._who()}DUT printed output after power-on but no boot banner "
                f"{self.prompts.boot_banner!r} within {self.boot_timeout} s; last output: {exc.tail[-200:]!r}"
            ) from None
        self.boot_seconds = self._clock() - start
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
                # The lab's own login, not a password test: the inventory or the sample's state is
                # wrong (a password changed and not restored), so nothing about the product follows.
                raise LabLoginRejected(f"the lab cannot log in on the console with {self.credentials_source}: "
                                       f"console login as {user!r} was rejected", bench=self.bench)
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
        if self.ssh is not None:  # waits for a DUT still booting first (wait_ssh_ready)
            self.ssh.wait_reachable(timeout=self.ssh.timeout)
        self.provision.run_playbook(self.playbook)
        self.state = BenchState.PROVISIONED

    # --- faults ----------------------------------------------------------------------------
    def _guarded(self, action: Callable[[], object]):
        try:
            return action()
        except LabLoginRejected:
            self.state = BenchState.UNKNOWN  # not latched: a later step may restore the password
            raise
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

    def _powered_off(self) -> None:
        """The DUT lost power (or is about to get it): its SSH session is gone, and no wait is due."""
        self._ssh_pending = False
        self._boots += 1
        if self.ssh is not None:
            self.ssh.drop("the bench switched the DUT's power")

    def _evidence(self, text: str) -> None:
        """A fact about the bench both transcripts should carry (console and SSH)."""
        self._note(text)
        if self.ssh is not None:
            self.ssh.note(text)

    def _who(self) -> str:
        return f"bench {self.bench}: " if self.bench else ""

    def _note(self, text: str) -> None:
        if self.console.transcript is not None:
            self.console.transcript.note(text)
