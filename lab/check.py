"""`certlab lab check`: can each bench switch power, show a console and accept SSH?

A bench that fails here must not take work: a run on it would only produce INCONCLUSIVE
verdicts. Benches are checked in parallel; each result names the layer that failed.

Each check power-cycles the DUT and times three moments from power-on, because they differ by
seconds on a real product and a lab sets its timeouts from them: the boot banner (the boot
loader or kernel speaking), the console's login prompt (or a shell offered without login), and
the SSH server answering (its banner). The console and SSH are watched at the same time, so
neither figure includes waiting for the other.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lab.bench import Bench
from lab.errors import CertlabError, DutError, LabFault
from lab.inventory import Inventory
from lab.strategy import BenchState


@dataclass
class CheckResult:
    bench: str
    power: str = "not checked"
    console: str = "not checked"
    ssh: str = "not checked"
    banner_seconds: float | None = None  # power-on -> boot banner on the console
    prompt_seconds: float | None = None  # power-on -> login prompt (or a shell without login) on the console
    ssh_seconds: float | None = None  # power-on -> SSH banner
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _describe(exc: Exception) -> str:
    if isinstance(exc, LabFault):
        return f"lab fault: {exc.cause}"
    if isinstance(exc, DutError):
        return f"DUT: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if isinstance(exc, CertlabError):
        return f"input: {exc}"
    return f"error: {type(exc).__name__}: {exc}"


def probe(bench: Bench, *, ssh_timeout: float = 30.0) -> CheckResult:
    """Power, console boot and SSH login on an open bench; each layer's failure is reported, not raised.

    The times come from the inventory's bounds only: the console's boot timeout for the banner,
    the prompt and SSH answering (all counted from power-on), `ssh_timeout` for the login and
    its command.
    """
    result = CheckResult(bench.name)
    try:
        result.power = f"ok ({bench.power.identify()})"
    except Exception as exc:  # noqa: BLE001 - each layer's failure is reported, not raised
        result.power = _describe(exc)
        result.problems.append(f"power: {result.power}")
        return result
    strategy = bench.strategy
    try:
        result.banner_seconds = strategy.power_cycle()
    except Exception as exc:  # noqa: BLE001
        result.console = _describe(exc)
        result.problems.append(f"console: {result.console}")
        return result
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"check-ssh-{bench.name}") as pool:
        ssh_up: Future = pool.submit(strategy.wait_ssh_ready)  # SSH is watched while the console boots on
        try:
            remaining = max(0.1, (strategy.powered_on_at or time.monotonic()) + strategy.boot_timeout - time.monotonic())
            found = bench.console.expect([bench.prompts.login_prompt, bench.prompts.shell_prompt], timeout=remaining)
            result.prompt_seconds = time.monotonic() - (strategy.powered_on_at or time.monotonic())
            result.console = "ok (boot banner seen)" if found.index == 0 else "ok (boot banner seen; a shell without login)"
        except Exception as exc:  # noqa: BLE001
            result.console = _describe(exc)
            result.problems.append(f"console: {result.console}")
        try:
            result.ssh_seconds = ssh_up.result()
        except Exception:  # noqa: BLE001 - the login below says what is wrong
            pass
    try:
        start = time.monotonic()
        bench.ssh.run("true", timeout=ssh_timeout, check=True)
        result.ssh = f"ok (login + command in {time.monotonic() - start:.2f} s)"
    except Exception as exc:  # noqa: BLE001
        result.ssh = _describe(exc)
        result.problems.append(f"ssh: {result.ssh}")
    return result


def health_check(bench: Bench, *, ssh_timeout: float | None = None) -> None:
    """The probe a bench passes before it takes work; raises the LabFault that makes it unfit.

    Only lab faults count: a sample that misbehaves is the tests' business, not the bench's.
    The probe leaves the DUT booted, so the first test does not pay for a second boot. After a
    boot, SSH gets the rest of the console's boot timeout (counted from power-on) to answer, as
    in every test; the command `true` then gets three times the inventory's SSH timeout.
    """
    ssh_timeout = ssh_timeout or 3 * bench.config.ssh.timeout
    try:
        bench.power.identify()
        if bench.power.is_on():
            if _answers_while_on(bench):
                return
            bench.strategy.power_cycle()
        else:  # switch on and boot: the first test then finds it booted instead of cycling it again
            bench.strategy.transition(BenchState.OFF)
            bench.strategy.transition(BenchState.BOOTED)
        bench.ssh.run("true", timeout=ssh_timeout, check=True)  # waits for a booting DUT's SSH first
    except LabFault:
        raise
    except Exception:  # noqa: BLE001 - anything but a lab fault is left to the tests
        return


def _answers_while_on(bench: Bench) -> bool:
    """The quick path: a powered DUT that answers a newline on the console and a command over
    SSH proves relay, console and network without the cost of a boot. Anything less takes the
    full probe, whose power cycle tells a silent console (lab) from a DUT that does not boot."""
    try:
        before = bench.console.bytes_received
        bench.console.sendline("")
        bench.console.read_until_quiet(quiet=0.15, timeout=3.0)
        if bench.console.bytes_received <= before:
            return False
        bench.ssh.run("true", timeout=10.0, check=True)
        return True
    except Exception:  # noqa: BLE001 - the full probe will say what is wrong
        return False


def check_bench(inventory: Inventory, name: str, evidence_dir: Path, *, ssh_timeout: float = 30.0) -> CheckResult:
    bench = Bench(inventory, name, evidence_dir=evidence_dir / name)
    try:
        return probe(bench, ssh_timeout=ssh_timeout)
    finally:
        bench.close()


def check_lab(inventory: Inventory, benches: list[str] | None = None, evidence_dir: Path | None = None) -> list[CheckResult]:
    names = benches or list(inventory.benches)
    evidence_dir = evidence_dir or Path(tempfile.mkdtemp(prefix="certlab-check-"))
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return list(pool.map(lambda n: check_bench(inventory, n, evidence_dir), names))
