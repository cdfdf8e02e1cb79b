"""Small steps the EN 303 645 test cases share. Everything product-specific comes from the IXIT.

Kept free of pytest fixtures so each step reads as what a tester does by hand.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab.bench import Bench
from lab.errors import CertlabError, DutError, ExpectTimeout, LabFault, LabLoginRejected, SSHUnreachable
from lab.firmware import FirmwareImage, parse_image
from lab.ixit import Ixit, TestFacts, UpdMech
from lab.updates import UpdateTarget, main_mechanism
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
        except LabLoginRejected:
            raise  # it is back, but refuses the lab's login: waiting longer changes nothing
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


# --- updates and power cuts (7-UpdMech, 23-ResMech; used by 5.3-2-2 and 5.9-2-2) -------------
#
# A power cut is `strategy.transition(OFF)`: the relay opens while the DUT is busy. Getting the
# DUT back is `restore_power_after_cut`: a DUT that never reaches its boot banner or its SSH
# login after a cut the lab made is the DUT's failure (DutError), never a lab fault.


def update_mechanism(ixit: Ixit) -> UpdMech:
    """The main firmware's 7-UpdMech entry the lab can drive unattended (files over SFTP/SCP + apply command);
    other components' mechanisms are named in test_facts.component_updates (lab.updates)."""
    return main_mechanism(ixit)


def target_version(bench: Bench, target: UpdateTarget) -> str:
    """The version of the component `target` updates, read as the IXIT says."""
    text = ssh_output(bench, target.version_command)
    version = target.version_in(text)
    if version is None:
        raise DutError(f"`{target.version_command}` printed no version matching {target.version_pattern!r}: {text.strip()[:200]!r}")
    return version


def release_image(firmware_dir: Path, facts: TestFacts, role: str) -> tuple[bytes, FirmwareImage]:
    """A release file the manufacturer delivered (test_facts.update_images[role]), parsed."""
    name = facts.update_images.get(role)
    if not name:
        raise CertlabError(f"ixit: test_facts.update_images has no {role!r} image; ask the manufacturer for one "
                           f"(roles: newer, older)")
    path = firmware_dir / name
    if not path.is_file():
        raise CertlabError(f"{path}: the {role} release file named in test_facts.update_images is missing; "
                           "copy the manufacturer's release files into firmware_dir")
    data = path.read_bytes()
    return data, parse_image(data)


@dataclass
class UpdateAttempt:
    """One image handed to the DUT's update mechanism, and what the DUT made of it."""

    image: str  # what the lab sent, in words
    version: str  # the version in the image's header
    before: str
    exit_status: int | None  # None: the session ended without an exit status
    output: str
    seconds: float  # from starting the apply command to its exit
    rebooted: bool = False
    back_seconds: float = 0.0
    after: str = ""

    @property
    def installed(self) -> bool:
        """Accepted: the command said so, or the DUT now runs the image (and did not before)."""
        return self.exit_status == 0 or (self.after == self.version and self.before != self.version)

    def describe(self) -> str:
        status = "gave no exit status" if self.exit_status is None else f"exited {self.exit_status}"
        return f"update {status}, now runs {self.after or '?'}"


def apply_update(bench: Bench, facts: TestFacts, mech: UpdMech, data: bytes, *, image: str, local: Path,
                 timeout: float | None = None, target: UpdateTarget | None = None) -> UpdateAttempt:
    """Deliver `data` as the IXIT says, run the apply command, follow a reboot, read the version.

    The image is kept at `local` (evidence). After an exit status 0 the DUT is expected to reboot
    (its boot banner on the console), then to come back over SSH within the IXIT's bounds. With a
    `target` (another component, lab.updates) its version is read and, where it documents no
    reboot (`reboots: false`), none is awaited.
    """
    if target is not None and not target.reboots:
        return _apply_without_reboot(bench, facts, target, data, image=image, local=local, timeout=timeout)
    delivery = mech.delivery
    if delivery is None or not delivery.upload_path or not delivery.apply_command:
        raise CertlabError(f"ixit: 7-UpdMech {mech.id}: delivery needs upload_path and apply_command")
    local.write_bytes(data)
    header = parse_image(data)
    before = installed_version(bench, facts)
    bench.ssh.put(local, delivery.upload_path)
    bench.console.open()
    bench.console.clear()  # a banner from now on is a reboot caused by this update
    command = delivery.apply_command.format(path=shlex.quote(delivery.upload_path))
    start = time.monotonic()
    try:
        result = bench.ssh.run(command, timeout=timeout or facts.update_seconds)
        status: int | None = result.exit_status if result.exit_status >= 0 else None
        output = (result.stdout + result.stderr).strip()
    except SSHUnreachable as exc:  # the session died under the command: the DUT went down
        status, output = None, f"(session lost: {exc.cause})"
    attempt = UpdateAttempt(image, header.version, before, status, output, time.monotonic() - start)
    try:
        if status == 0 or status is None:
            attempt.rebooted = saw_boot_banner(bench, facts.update_seconds + facts.boot_seconds)
            attempt.back_seconds = wait_until_back(bench, facts, why=f"installing {image}")
        attempt.after = installed_version(bench, facts)
    except (LabFault, DutError):
        if status not in (0, None):  # rejected, yet the DUT went away: see whether it rebooted
            attempt.rebooted = saw_boot_banner(bench, facts.boot_seconds)
            attempt.back_seconds = wait_until_back(bench, facts, why=f"rejecting {image}")
            attempt.after = installed_version(bench, facts)
        else:
            raise
    return attempt


def _apply_without_reboot(bench: Bench, facts: TestFacts, target: UpdateTarget, data: bytes, *, image: str,
                          local: Path, timeout: float | None) -> UpdateAttempt:
    """A component that installs in place (no reboot): deliver, apply, read its version again."""
    delivery = target.mech.delivery
    local.write_bytes(data)
    header = parse_image(data)
    before = target_version(bench, target)
    bench.ssh.put(local, delivery.upload_path)
    command = delivery.apply_command.format(path=shlex.quote(delivery.upload_path))
    start = time.monotonic()
    result = bench.ssh.run(command, timeout=timeout or facts.update_seconds)
    status: int | None = result.exit_status if result.exit_status >= 0 else None
    attempt = UpdateAttempt(image, header.version, before, status, (result.stdout + result.stderr).strip(),
                            time.monotonic() - start)
    attempt.after = target_version(bench, target)
    return attempt


def saw_boot_banner(bench: Bench, timeout: float) -> bool:
    try:
        bench.console.expect(bench.prompts.boot_banner, timeout=timeout)
        return True
    except ExpectTimeout:
        return False


def run_and_cut(bench: Bench, command: str, at: float, *, grace: float = 3.0) -> dict:
    """Start `command` over SSH and cut the DUT's power `at` seconds later, without waiting for it.

    Returns what the command did before the cut (finished with a status, or was cut off). The
    DUT is left OFF; the SSH connection is closed once the command's thread has let go of it.
    """
    seen: dict = {}

    def run() -> None:
        try:
            result = bench.ssh.run(command, timeout=at + grace)
            seen["exit_status"] = result.exit_status if result.exit_status >= 0 else None
            seen["output"] = (result.stdout + result.stderr).strip()[-300:]
        except Exception as exc:  # noqa: BLE001 - cut off: any way the session dies is expected
            seen["error"] = f"{type(exc).__name__}: {exc}"[:300]
        seen["ended_after"] = round(time.monotonic() - start, 3)

    worker = threading.Thread(target=run, name=f"cut-{bench.name}", daemon=True)
    start = time.monotonic()
    worker.start()
    time.sleep(max(0.0, start + at - time.monotonic()))
    cut_at = time.monotonic() - start
    bench.strategy.transition(BenchState.OFF)  # the cut
    worker.join(timeout=at + grace + 10)
    bench.ssh.close()
    finished = seen.get("exit_status") is not None and seen.get("ended_after", cut_at + 1) <= cut_at
    return {"command": command, "cut_after_s": round(cut_at, 3), "finished_before_cut": finished, **seen}


def restore_power_after_cut(bench: Bench, facts: TestFacts, *, why: str, off_time: float = 1.0) -> dict:
    """Power on after a cut; the DUT must reach its boot banner and its SSH login (else DutError)."""
    time.sleep(off_time)
    bench.ssh.close()
    try:
        bench.strategy.transition(BenchState.BOOTED)
    except DutError as exc:  # BootFailure / ExpectTimeout: the DUT stopped booting after what we did
        raise DutError(f"after {why}, the DUT did not boot: {exc}") from None
    boot = bench.strategy.boot_seconds or 0.0
    try:
        back = wait_until_back(bench, facts, why=why)
    except SSHUnreachable as exc:
        raise DutError(f"after {why}, SSH never came back: {exc.cause}") from None
    return {"boot_banner_s": round(boot, 3), "ssh_back_s": round(back, 3)}


def measure_update_window(bench: Bench, facts: TestFacts, mech: UpdMech, data: bytes, header: FirmwareImage,
                          local: Path, evidence) -> tuple[float, str]:
    """One undisturbed install of a genuine release: its duration is the window power cuts aim at.

    Returns (window seconds, the apply command); a DUT that refuses its own vendor's release
    leaves nothing to interrupt, so the test cannot run (INCONCLUSIVE, not FAIL).
    """
    calib = apply_update(bench, facts, mech, data, image=f"genuine release {header.version}", local=local)
    evidence.json("update-calibration", vars(calib))
    if calib.exit_status != 0:
        raise CertlabError(f"the DUT refused the genuine release {header.version} ({calib.describe()}); "
                           "without an update to interrupt this test cannot run")
    command = mech.delivery.apply_command.format(path=shlex.quote(mech.delivery.upload_path))
    return min(calib.seconds, facts.update_seconds), command


# --- a console brought back to a known prompt (5.13-1-2 and any test that types junk) ------------
#
# A real shell that was sent an unterminated quote or a here-document waits for the rest of the
# construct (PS2, "> "); line editing redraws its prompt in the middle of an echo. Neither is a
# failure to validate input, and neither is a prompt the lab can type at. An engineer presses
# Enter, then ^C and Enter, and reads what the console shows once it has gone quiet.

RECOVERY_ATTEMPTS = 3  # ^C + Enter rounds after the first plain Enter


@dataclass
class PromptCheck:
    state: str | None  # "shell", "login" or None (no prompt after every attempt)
    steps: list[dict]  # what was sent and what came back, for the evidence
    rebooted: bool  # the boot banner was seen while waiting

    def tried(self) -> str:
        sent = [s["sent"] for s in self.steps]
        return ", ".join(sent) or "nothing"


def prompt_state(text: str, shell_prompt: str, login_prompt: str) -> str | None:
    """Which prompt a quiet console ends with: "shell", "login" or None (PS2, output, silence)."""
    if re.search(shell_prompt, text):
        return "shell"
    if re.search(login_prompt, text):
        return "login"
    return None


def console_back_to_prompt(console, prompts, *, quiet: float = 0.5, timeout: float = 5.0,
                           attempts: int = RECOVERY_ATTEMPTS) -> PromptCheck:
    """Enter, then up to `attempts` rounds of ^C + Enter, until the settled output ends in a prompt.

    Judged only on what arrives after the lab's own keystroke, once the console has been quiet
    for `quiet` s (a prompt redrawn mid-echo is not a prompt); bounded by
    (1 + 2 * attempts) * timeout seconds.
    """
    steps: list[dict] = []
    rebooted = False

    def press(label: str, keys: str) -> str:
        nonlocal rebooted
        console.write(keys)
        got = console.read_until_quiet(quiet=quiet, timeout=timeout)
        rebooted = rebooted or bool(prompts.boot_banner and re.search(prompts.boot_banner, got))
        steps.append({"sent": label, "received": got[-300:]})
        return got

    console.read_until_quiet(quiet=quiet, timeout=timeout)  # what the last input is still printing
    got = press("Enter", console.newline)
    for n in range(attempts + 1):
        state = prompt_state(got, prompts.shell_prompt, prompts.login_prompt)
        if state is not None or n == attempts:
            return PromptCheck(state, steps, rebooted)
        press("^C", "\x03")
        got = press("Enter", console.newline)
    return PromptCheck(None, steps, rebooted)


# --- timing: are failed logins slowed down by the documented delay? (5.1-5-2) -------------------
#
# One connection's time varies with the host's load; a single slow "accepted" baseline once made
# a padded failure look undelayed, and on a slow device an accepted login itself takes most of a
# padded failure's time (dropbear pads the answer to 250-350 ms from the request). So each pair is
# timed on one connection after its key exchange: a wrong password against an unauthenticated
# ("none") request the server answers at once, order alternating; the delay is judged on the
# pairs' differences, and only a distribution-free confidence interval of their median that lies
# wholly on one side of the threshold decides.

DELAY_TOLERANCE = 0.2  # a failure must take at least 80 % of the documented delay longer
DELAY_CONFIDENCE = 0.95
MIN_DELAY_PAIRS = 6  # fewer pairs cannot give a 95 % interval of the median
MAX_DELAY_PAIRS = 12


class MeasurementUndecidable(Exception):
    """The lab's measurements cannot decide the question (noise): INCONCLUSIVE, a test error."""


class PositiveControlFailed(Exception):
    """What must be seen for an absence to mean anything was not seen (e.g. no data reached the
    service at all): INCONCLUSIVE, a test error; neither the product's fault shown nor the bench's."""


def median(values) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of no values")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def median_interval(values, level: float = DELAY_CONFIDENCE) -> tuple[float, float, float] | None:
    """(low, high, achieved level): order statistics bracketing the median; None if too few values."""
    from math import comb

    ordered = sorted(values)
    n = len(ordered)
    tail = 0.0
    k = 0  # the largest k whose two tails P(X < k+1) stay within (1 - level) / 2
    for i in range(n // 2):
        tail += comb(n, i) / 2 ** n
        if tail > (1 - level) / 2:
            break
        k = i + 1
    if k == 0:
        return None
    achieved = 1 - 2 * sum(comb(n, i) for i in range(k)) / 2 ** n
    return ordered[k - 1], ordered[n - k], achieved


@dataclass(frozen=True)
class DelayJudgement:
    decision: str  # "slowed", "not slowed" or "undecidable"
    documented: float
    threshold: float
    differences: tuple[float, ...]
    median: float | None
    low: float | None
    high: float | None
    confidence: float | None

    def how(self) -> str:
        if self.median is None:
            return f"no pair measured (need {MIN_DELAY_PAIRS})"
        interval = (f"{self.confidence:.1%} interval [{self.low:.3f}, {self.high:.3f}] s" if self.low is not None
                    else f"too few pairs ({len(self.differences)}) for a {DELAY_CONFIDENCE:.0%} interval")
        return (f"failed password attempt minus an unauthenticated ('none') request on the same connection, "
                f"{len(self.differences)} pairs: median {self.median:.3f} s, "
                f"{interval}; threshold {self.threshold:.3f} s = {1 - DELAY_TOLERANCE:.0%} of the documented "
                f"{self.documented:g} s")


def judge_failure_delay(pairs, documented: float, tolerance: float = DELAY_TOLERANCE) -> DelayJudgement:
    """Is a failed login slowed by `documented` s? `pairs`: (baseline_s, failed_s) measured back to back.

    The baseline is the round trip of a request the server answers at once (SSH "none"
    authentication on the same connection), so each difference is what a failed guess costs
    beyond an immediate answer, whether the server adds its delay after checking the password or
    pads the whole answer to a fixed time (dropbear: 250-350 ms from the request).

    "slowed" when the whole interval of the median difference is at or above the threshold,
    "not slowed" when it is wholly below, else "undecidable" (the spread straddles it).
    """
    threshold = round((1 - tolerance) * documented, 6)
    diffs = tuple(round(f - a, 4) for a, f in pairs)
    if not diffs:
        return DelayJudgement("undecidable", documented, threshold, diffs, None, None, None, None)
    mid = median(diffs)
    interval = median_interval(diffs)
    if interval is None:
        return DelayJudgement("undecidable", documented, threshold, diffs, mid, None, None, None)
    low, high, achieved = interval
    decision = "slowed" if low >= threshold else "not slowed" if high < threshold else "undecidable"
    return DelayJudgement(decision, documented, threshold, diffs, mid, low, high, achieved)
