"""Installing a firmware release on a bench's DUT before a re-test, the way the product's IXIT says.

A re-test of a new release (issue 20) must test that release, on the certified model's sample:
before the suites, the image goes to the DUT through the IXIT's update mechanism the lab can
drive unattended (7-UpdMech delivery: files over SFTP/SCP to upload_path, then apply_command),
the DUT reboots, comes back within the IXIT's bounds (test_facts.update_seconds + boot_seconds)
and must then report the release's version (test_facts.version_command / version_pattern).

A release that does not end up running (refused, no reboot, not back, another version after, or a
fact the lab needs missing from the IXIT) is ReleaseNotInstalled: every test of that bench is
INCONCLUSIVE naming the cause, never FAIL (nothing was tested) and never PASS (the release did not
run). The steps are kept as the bench's install transcript (evidence).

    read_release(path)                  # the image file (CertlabError: missing, not an image)
    check_release_models(release, inv, benches)   # preflight: for every bench's model
    with_release(inventory, release)    # the run's view: the benches of its model run that version
    as_newer_release(ixit, release)     # and the IXIT's newer genuine release is the release under test
    install_release(steps, ixit, release, transcript)   # on one bench (BenchSteps adapts a lab Bench)
    keep_running(steps, ixit, release, transcript)      # before each test: installed again if a test changed it
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from lab.errors import CertlabError, DutError, LabFault, SampleUnusable
from lab.firmware import parse_image
from lab.inputfile import sha256_file
from lab.orchestrator.rundir import option_value

if TYPE_CHECKING:
    from lab.bench import Bench
    from lab.inventory import Inventory
    from lab.ixit import Ixit

RELEASE_OPTION = "--release"  # how a run (and a queued run's options) names the image to install first
MAX_RELEASE_BYTES = 512 << 20
TRANSCRIPT_FILE = "release-install.txt"
VERSION_FIELD = "test_facts.version_command"
DELIVERY_FIELD = "7-UpdMech[].delivery"


@dataclass(frozen=True)
class Release:
    """A release image as the lab read it before the run."""

    path: Path
    model: str
    version: str
    security_version: int
    sha256: str
    size: int

    def as_json(self) -> dict[str, object]:
        return {"file": self.path.name, "source": str(self.path), "sha256": self.sha256, "size": self.size,
                "model": self.model, "version": self.version, "security_version": self.security_version}


class ReleaseNotInstalled(SampleUnusable):
    """The release did not end up running on the sample: its tests cannot say anything about it.

    A SampleUnusable (INCONCLUSIVE, cause sample-unusable): neither a product verdict nor a fault of
    the bench, so it is not retried on a spare bench nor counted toward a quarantine.
    """

    kind = "release not installed"


def read_release(path: str | Path, option: str = RELEASE_OPTION) -> Release:
    """The image at `path`, parsed (its signature is the DUT's business); CertlabError in one line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CertlabError(f"{option} {path}: no such file; give the release image (.clfw) to install")
    size = p.stat().st_size
    if size > MAX_RELEASE_BYTES:
        raise CertlabError(f"{option} {path}: {size} bytes, larger than a release image may be ({MAX_RELEASE_BYTES})")
    try:
        image = parse_image(p.read_bytes())
    except OSError as exc:
        raise CertlabError(f"{option} {path}: cannot read it ({exc.strerror})") from None
    except CertlabError as exc:
        raise CertlabError(f"{option} {path}: {exc}; give a firmware release image") from None
    return Release(p.resolve(), image.model, image.version, image.security_version, sha256_file(p), size)


def release_path(options: Sequence[str]) -> str | None:
    """The `--release IMAGE` among a run's options (or `--release=IMAGE`)."""
    return option_value(options, RELEASE_OPTION)


def check_release_models(release: Release, inventory: "Inventory", benches: Sequence[str]) -> None:
    """Every bench of the run tests a sample of the release's model (CertlabError naming the first other)."""
    for name in benches:
        model = inventory.bench(name).dut.model
        if model != release.model:
            raise CertlabError(f"{RELEASE_OPTION} {release.path.name}: the image is for model {release.model}, but bench "
                               f"{name} holds a {model}; give a release of {model} or run on benches of {release.model}")


def with_release(inventory: "Inventory", release: Release) -> "Inventory":
    """The inventory as the run sees it: the samples of the release's model run the release's version."""
    benches = {name: cfg if cfg.dut.model != release.model else
               cfg.model_copy(update={"dut": cfg.dut.model_copy(update={"firmware": release.version})})
               for name, cfg in inventory.benches.items()}
    return inventory.model_copy(update={"benches": benches})


def as_newer_release(ixit: "Ixit", release: Release) -> "Ixit":
    """A re-test's view of the IXIT: the release under test is the manufacturer's newer genuine release.

    5.3-2-2 installs test_facts.update_images["newer"] and crafts its attack images from it; in a
    re-test that must be the release itself, or the genuine-update test would replace the release
    with the certified firmware's newer image (possibly of the same version, which the version read
    cannot tell apart) and every later test would test that instead. The path is absolute, so
    `firmware_dir / name` (the suites' join) is the release file itself.
    """
    if ixit.product.model != release.model or ixit.test_facts is None:
        return ixit
    images = {**ixit.test_facts.update_images, "newer": str(release.path)}
    return ixit.model_copy(update={"test_facts": ixit.test_facts.model_copy(update={"update_images": images})})


# --- the install -------------------------------------------------------------------------------


class InstallSteps(Protocol):
    """What installing needs from a bench; lab benches through BenchSteps, fakes in tests."""

    def ready(self) -> None: ...  # the DUT is up and the lab's SSH login works (LabFault if not)
    def put(self, local: Path, remote: str) -> None: ...
    def run(self, command: str, timeout: float) -> tuple[int | None, str]: ...  # exit status (None: lost), output
    def watch_reboot(self) -> None: ...  # from now on a boot banner counts as a reboot
    def saw_reboot(self, timeout: float) -> bool: ...
    def wait_back(self, timeout: float) -> bool: ...  # SSH login works again within `timeout`


@dataclass
class Transcript:
    """The install's steps as the bench's evidence (one line each, time-stamped)."""

    path: Path | None
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}")
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Installed:
    release: Release
    before: str
    after: str
    seconds: float


def install_release(steps: InstallSteps, ixit: "Ixit", release: Release, transcript: Transcript, *,
                    model: str, clock: Callable[[], float] = time.monotonic) -> Installed:
    """Install `release` on the DUT and check it runs; ReleaseNotInstalled naming why not.

    A LabFault of the bench itself (no power, no console, SSH unreachable before the install)
    propagates as it is: that is the bench's trouble, worth a spare.
    """
    from lab.updates import main_mechanism

    def fail(why: str) -> ReleaseNotInstalled:
        transcript.say(f"NOT INSTALLED: {why}")
        return ReleaseNotInstalled(f"release {release.version} ({release.path.name}) not installed: {why}")

    transcript.say(f"release {release.path.name}: model {release.model}, version {release.version}, security version "
                   f"{release.security_version}, sha256 {release.sha256}")
    if release.model != model:
        raise fail(f"the image is for model {release.model}, the sample is a {model}")
    facts = ixit.test_facts
    if facts is None or not facts.version_command:
        raise fail(f"the IXIT has no {VERSION_FIELD}: the lab cannot read which version the DUT runs; "
                   "ask the manufacturer for it")
    try:
        mech = main_mechanism(ixit, facts)
    except CertlabError as exc:
        raise fail(f"{DELIVERY_FIELD}: {exc}") from None
    delivery = mech.delivery
    assert delivery is not None and delivery.upload_path and delivery.apply_command  # main_mechanism: drivable
    bound = facts.update_seconds + facts.boot_seconds
    start = clock()
    steps.ready()
    before = _version(steps, facts, transcript, fail)
    transcript.say(f"the DUT runs {before}; delivering by {delivery.method} to {delivery.upload_path} (7-UpdMech {mech.id})")
    try:
        steps.put(release.path, delivery.upload_path)
    except (LabFault, OSError) as exc:
        raise fail(f"could not copy the image to {delivery.upload_path}: {exc}") from None
    steps.watch_reboot()
    command = delivery.apply_command.format(path=shlex.quote(delivery.upload_path))
    try:
        status, output = steps.run(command, facts.update_seconds)
    except LabFault as exc:
        status, output = None, f"(session lost: {exc})"
    transcript.say(f"$ {command}  -> {'no exit status' if status is None else f'exit {status}'}")
    for line in output.splitlines()[-40:]:
        transcript.say(f"  {line}")
    if status not in (0, None):
        raise fail(f"the DUT refused it: `{command}` exited {status}: {_last_line(output)}")
    if not steps.saw_reboot(bound):
        raise fail(f"the DUT did not reboot within {bound:.0f} s (test_facts.update_seconds + boot_seconds) after `{command}`")
    transcript.say("the DUT rebooted")
    if not steps.wait_back(max(1.0, bound - (clock() - start))):
        raise fail(f"the DUT did not accept the lab's SSH login again within {bound:.0f} s after the reboot")
    after = _version(steps, facts, transcript, fail)
    if after != release.version:
        raise fail(f"after the reboot the DUT reports version {after}, not {release.version} (`{facts.version_command}`)")
    seconds = clock() - start
    transcript.say(f"INSTALLED: the DUT runs {after} ({seconds:.1f} s)")
    return Installed(release, before, after, seconds)


def keep_running(steps: InstallSteps, ixit: "Ixit", release: Release, transcript: Transcript, *,
                 model: str) -> Installed | None:
    """Before each test of a re-test: the DUT still runs the release, else it is installed again.

    The suites change the running firmware on purpose (5.3-2-2 installs the lab's genuine newer
    release, a power cut may leave the other slot running); the tests after them must still test
    the release. None when it was running; ReleaseNotInstalled when installing it again fails.
    """
    facts = ixit.test_facts
    if facts is None or not facts.version_command:
        return None  # install_release refused it already, naming the field; nothing ran since
    steps.ready()
    running = _version(steps, facts, Transcript(None), lambda why: ReleaseNotInstalled(
        f"release {release.version} ({release.path.name}): cannot tell whether it still runs: {why}"))
    if running == release.version:
        return None
    transcript.say(f"the DUT runs {running} after an earlier test, not the release under test: installing it again")
    return install_release(steps, ixit, release, transcript, model=model)


def _version(steps: InstallSteps, facts, transcript: Transcript,
             fail: Callable[[str], ReleaseNotInstalled]) -> str:
    try:
        status, text = steps.run(facts.version_command, 30.0)
    except LabFault as exc:
        raise fail(f"`{facts.version_command}` could not be run: {exc}") from None
    match = re.search(facts.version_pattern, text) if status == 0 else None
    if match is None:
        raise fail(f"`{facts.version_command}` (exit {status}) printed no version matching {facts.version_pattern!r} "
                   f"({VERSION_FIELD}, version_pattern): {_last_line(text)!r}")
    transcript.say(f"$ {facts.version_command}  -> {match.group('version')}")
    return match.group("version")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


class BenchSteps:
    """InstallSteps on a lab bench: SSH for files and commands, the console for the reboot banner."""

    def __init__(self, bench: "Bench") -> None:
        self.bench = bench

    def ready(self) -> None:
        from lab.strategy import BenchState

        if self.bench.strategy.state < BenchState.SHELL:
            self.bench.strategy.transition(BenchState.SHELL)

    def put(self, local: Path, remote: str) -> None:
        self.bench.ssh.put(local, remote)

    def run(self, command: str, timeout: float) -> tuple[int | None, str]:
        result = self.bench.ssh.run(command, timeout=timeout)
        return (result.exit_status if result.exit_status >= 0 else None), (result.stdout + result.stderr)

    def watch_reboot(self) -> None:
        self.bench.console.open()
        self.bench.console.clear()

    def saw_reboot(self, timeout: float) -> bool:
        from lab.errors import ExpectTimeout

        banner = self.bench.prompts.boot_banner
        if not banner:
            return True  # the product documents no banner: coming back with the new version is the proof
        try:
            self.bench.console.expect(banner, timeout=timeout)
            return True
        except ExpectTimeout:
            return False

    def wait_back(self, timeout: float) -> bool:
        from lab.errors import LabLoginRejected

        deadline = time.monotonic() + timeout
        self.bench.ssh.close()
        self.bench.strategy.invalidate()
        while time.monotonic() < deadline:
            try:
                self.bench.ssh.wait_reachable(timeout=max(1.0, deadline - time.monotonic()))
                self.bench.ssh.run("true", timeout=10)
                return True
            except LabLoginRejected:
                return False
            except (LabFault, DutError, OSError, EOFError):
                self.bench.ssh.close()
                time.sleep(0.5)
        return False
