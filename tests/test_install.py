"""Installing a release before a re-test (lab/install.py): the logic with a fake DUT, the run's inputs, preflight."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.errors import CertlabError, LabFault
from lab.install import (ReleaseNotInstalled, Transcript, check_release_models, install_release, read_release,
                         release_path, with_release)
from lab.ixit import load_ixit
from lab.sim import vendor
from lab.sim.fwmanifest import FirmwareManifest
from lab.verdicts import Cause

ROOT = Path(__file__).resolve().parent.parent
IXIT = load_ixit(ROOT / "inventory" / "products" / "TH-100" / "ixit.yaml")


@dataclass
class FakeDut:
    """A DUT behind the install steps: runs `version` and the IXIT's `update {path}` as the sim device does."""

    running: str = "1.4.0"
    refuse: str | None = None  # the update command's rejection line
    reboots: bool = True
    comes_back: bool = True
    boots_instead: str | None = None  # the version it boots after an accepted update (None: the image's)
    uploaded: dict[str, bytes] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)

    def ready(self) -> None:
        pass

    def put(self, local: Path, remote: str) -> None:
        self.uploaded[remote] = local.read_bytes()

    def run(self, command: str, timeout: float) -> tuple[int | None, str]:
        self.commands.append(command)
        if command == "version":
            return 0, f"TH-100 firmware {self.running} (slot a, security version 3)\n"
        path = command.split(" ", 1)[1]
        if self.refuse:
            return 1, f"update: {self.refuse}\n"
        from lab.firmware import parse_image

        image = parse_image(self.uploaded[path])
        self._next = self.boots_instead or image.version
        return 0, f"update: installed {image.version} in slot b; rebooting\n"

    def watch_reboot(self) -> None:
        pass

    def saw_reboot(self, timeout: float) -> bool:
        if self.reboots:
            self.running = self._next
        return self.reboots

    def wait_back(self, timeout: float) -> bool:
        return self.comes_back


@pytest.fixture
def release_file(tmp_path: Path) -> Path:
    path = tmp_path / "TH-100-1.5.0.clfw"
    path.write_bytes(vendor.build_release("TH-100", "1.5.0", 4, manifest=FirmwareManifest(frozenset({"open_debug_service"}))))
    return path


def _install(dut: FakeDut, release_file: Path, tmp_path: Path, ixit=IXIT, model: str = "TH-100"):
    transcript = Transcript(tmp_path / "evidence" / "release-install.txt")
    return install_release(dut, ixit, read_release(release_file), transcript, model=model), transcript


def test_installs_through_the_ixit_delivery_and_checks_the_version(release_file, tmp_path):
    dut = FakeDut()
    done, transcript = _install(dut, release_file, tmp_path)
    assert (done.before, done.after) == ("1.4.0", "1.5.0")
    assert dut.uploaded["/tmp/update.clfw"] == release_file.read_bytes()  # 7-UpdMech delivery.upload_path
    assert "update /tmp/update.clfw" in dut.commands  # apply_command with {path}
    text = transcript.path.read_text()
    assert "INSTALLED: the DUT runs 1.5.0" in text and read_release(release_file).sha256 in text


def test_before_each_test_the_release_is_installed_again_if_a_test_changed_the_firmware(release_file, tmp_path):
    from lab.install import keep_running

    dut = FakeDut()
    _, transcript = _install(dut, release_file, tmp_path)
    release = read_release(release_file)
    assert keep_running(dut, IXIT, release, transcript, model="TH-100") is None  # still runs: nothing sent
    assert dut.commands.count("update /tmp/update.clfw") == 1
    dut.running = "1.4.9"  # e.g. 5.3-2-2 installed the lab's genuine newer release
    again = keep_running(dut, IXIT, release, transcript, model="TH-100")
    assert again is not None and again.after == "1.5.0" and dut.commands.count("update /tmp/update.clfw") == 2
    assert "not the release under test: installing it again" in transcript.path.read_text()
    dut.running, dut.refuse = "1.6.0", "rejected: security version 4 is older than installed 5 (rollback)"
    with pytest.raises(ReleaseNotInstalled, match="the DUT refused it"):
        keep_running(dut, IXIT, release, transcript, model="TH-100")


@pytest.mark.parametrize("fake, why", [
    (FakeDut(refuse="rejected: bad signature"), r"the DUT refused it: `update /tmp/update.clfw` exited 1: update: rejected: bad signature"),
    (FakeDut(reboots=False), r"did not reboot within 60 s"),
    (FakeDut(comes_back=False), r"did not accept the lab's SSH login again"),
    (FakeDut(boots_instead="1.4.0"), r"after the reboot the DUT reports version 1.4.0, not 1.5.0"),
])
def test_a_release_that_does_not_end_up_running_is_inconclusive_with_the_cause(fake, why, release_file, tmp_path):
    with pytest.raises(ReleaseNotInstalled) as raised:
        _install(fake, release_file, tmp_path)
    assert re.search(why, str(raised.value))
    assert isinstance(raised.value, LabFault) and not isinstance(raised.value, AssertionError)  # never FAIL
    from fixtures.verdicts import inconclusive_cause

    class Call:
        excinfo = raised

    assert inconclusive_cause(Call()) == Cause.SAMPLE_UNUSABLE  # not retried on a spare, not the bench's fault
    assert "NOT INSTALLED" in (tmp_path / "evidence" / "release-install.txt").read_text()


def test_missing_ixit_facts_name_the_field(release_file, tmp_path):
    with pytest.raises(ReleaseNotInstalled, match=r"the IXIT has no test_facts\.version_command"):
        _install(FakeDut(), release_file, tmp_path, ixit=IXIT.model_copy(update={"test_facts": None}))
    undeliverable = [m.model_copy(update={"delivery": None}) for m in IXIT.upd_mech]
    with pytest.raises(ReleaseNotInstalled, match=r"7-UpdMech\[\]\.delivery: .*no update mechanism with delivery\.method sftp/scp"):
        _install(FakeDut(), release_file, tmp_path, ixit=IXIT.model_copy(update={"upd_mech": undeliverable}))


def test_a_release_of_another_model_is_not_installed(release_file, tmp_path):
    dut = FakeDut()
    with pytest.raises(ReleaseNotInstalled, match="the image is for model TH-100, the sample is a TH-10"):
        _install(dut, release_file, tmp_path, model="TH-10")
    assert dut.uploaded == {}


def test_reading_the_release_file_refuses_bad_input_in_one_line(tmp_path):
    with pytest.raises(CertlabError, match=r"--release .*nope\.clfw: no such file"):
        read_release(tmp_path / "nope.clfw")
    junk = tmp_path / "junk.clfw"
    junk.write_bytes(b"not an image")
    with pytest.raises(CertlabError, match=r"--release .*junk\.clfw: not a CLFW v1 firmware image"):
        read_release(junk)


def test_release_option_and_the_runs_view_of_the_inventory(release_file):
    from lab.inventory import load_inventory

    assert release_path(["--edition", "v2", "--release", "/x/a.clfw"]) == "/x/a.clfw"
    assert release_path(["--release=/x/b.clfw"]) == "/x/b.clfw" and release_path(["--ics", "f"]) is None
    inv = load_inventory(ROOT / "inventory" / "sim.yaml")
    release = read_release(release_file)
    seen = with_release(inv, release)
    for name, cfg in seen.benches.items():
        expected = "1.5.0" if cfg.dut.model == "TH-100" else inv.benches[name].dut.firmware
        assert cfg.dut.firmware == expected
    th100 = [n for n, c in inv.benches.items() if c.dut.model == "TH-100"]
    others = [n for n, c in inv.benches.items() if c.dut.model != "TH-100"]
    check_release_models(release, inv, th100)
    if others:
        with pytest.raises(CertlabError, match=f"bench {others[0]} holds a"):
            check_release_models(release, inv, others)


def test_preflight_checks_the_release_before_the_lab_moves(release_file, tmp_path):
    from lab.inventory import load_inventory
    from lab.preflight import preflight

    inv = load_inventory(ROOT / "inventory" / "sim.yaml")
    th100 = [n for n, c in inv.benches.items() if c.dut.model == "TH-100"][:1]
    with pytest.raises(CertlabError, match="no such file"):
        preflight(inv, th100, "v2", suites=[], release=tmp_path / "missing.clfw")
    other = tmp_path / "TH-10-2.0.clfw"
    other.write_bytes(vendor.build_release("TH-10", "2.0", 1))
    with pytest.raises(CertlabError, match="the image is for model TH-10"):
        preflight(inv, th100, "v2", suites=[], release=other)


def test_the_runs_inputs_record_the_release_and_the_samples_version(release_file, tmp_path):
    from lab.inventory import load_inventory
    from lab.orchestrator.inputs import record_inputs

    inv = load_inventory(ROOT / "inventory" / "sim.yaml")
    bench = next(n for n, c in inv.benches.items() if c.dut.model == "TH-100")
    index = record_inputs(tmp_path / "run", inv, benches=[bench], edition="v2",
                          options=["--edition", "v2", "--release", str(release_file)])
    release = read_release(release_file)
    assert index["release"]["sha256"] == release.sha256 and index["release"]["version"] == "1.5.0"
    assert index["firmware"][0]["sha256"] == release.sha256  # the report finds it first by model and version
    reduced = load_inventory(tmp_path / "run" / "inputs" / "inventory.yaml")
    assert reduced.benches[bench].dut.firmware == "1.5.0"
    assert json.loads((tmp_path / "run" / "inputs" / "inputs.json").read_text())["release"]["file"] == release_file.name


# --- end to end: a private one-bench simulated lab (e2e: run under flock /tmp/certlab-e2e.lock) ---------


def test_run_with_a_release_tests_the_installed_releases_software(tmp_path):
    """`certlab run --release` installs each release first; the debug service its software starts FAILs
    5.6-1, the conforming release PASSes it, and the run records the release it tested; a release the
    DUT refuses leaves the bench's tests INCONCLUSIVE with the DUT's reason."""
    import os
    import subprocess
    import sys

    from simlab import simulated  # tests/simlab.py: a private simulated lab for one test

    from lab.sim.genlab import write_sim_inventory
    from lab.sim.netns import unavailable_reason

    flawed, fixed = tmp_path / "rel" / "TH-100-1.5.0.clfw", tmp_path / "rel" / "TH-100-1.4.1.clfw"
    fixed.parent.mkdir()
    flawed.write_bytes(vendor.build_release("TH-100", "1.5.0", 4, manifest=FirmwareManifest(
        frozenset({"open_debug_service"}), vendor.firmware_components("1.5.0"))))
    fixed.write_bytes(vendor.build_release("TH-100", "1.4.1", 4, manifest=FirmwareManifest(
        frozenset(), vendor.firmware_components("1.4.1"))))
    older = tmp_path / "rel" / "TH-100-1.3.9.clfw"
    older.write_bytes(vendor.build_release("TH-100", "1.3.9", 1))
    inventory = write_sim_inventory(tmp_path / "lab", "tinst", 1, scpi_port=17980, subnet=229,
                                    netns=unavailable_reason() is None, ssh_base_port=17985)
    reports = tmp_path / "reports"

    def run(release: Path, *more: str) -> tuple[subprocess.CompletedProcess, Path, dict[str, dict]]:
        before = set(reports.glob("*")) if reports.exists() else set()
        proc = subprocess.run([sys.executable, "-m", "lab.cli", "run", "-i", str(inventory), "--provision", "5.6-1",
                               *more, "--release", str(release), "--out", str(reports)], capture_output=True, text=True,
                              timeout=240, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
        (run_dir,) = [p for p in reports.glob("*") if p not in before and p.is_dir()]
        doc = json.loads((run_dir / "verdicts.json").read_text())
        results = doc["results"]
        return proc, run_dir, {r["test_case"]: r for r in results} | {r["test"]: r for r in results}

    with simulated(inventory):
        # 5.3-2-2 runs first and installs the "newer genuine release": in a re-test that is the release
        # itself, so the tests after it (5.6-1) still test the release's software
        proc, run_dir, got = run(flawed, "--provision", "5.3-2", "--power-cuts", "1")
        assert got["test_5_3_2_2_valid_update_installs"]["verdict"] == "PASS", got["test_5_3_2_2_valid_update_installs"]
        assert got["5.6-1-2"]["verdict"] == "FAIL", (proc.stdout[-3000:], proc.stderr[-2000:])
        assert "2323" in got["5.6-1-2"]["reason"], got["5.6-1-2"]["reason"]  # the debug service's port
        assert got["5.6-1-2"]["firmware"] == "1.5.0"
        assert "INSTALLED: the DUT runs 1.5.0" in (run_dir / "evidence" / "b1" / "release-install.txt").read_text()
        inputs = json.loads((run_dir / "inputs" / "inputs.json").read_text())
        assert inputs["release"]["sha256"] == read_release(flawed).sha256

        proc, run_dir, got = run(fixed)
        assert got["5.6-1-2"]["verdict"] == "PASS", (got["5.6-1-2"], proc.stdout[-3000:], proc.stderr[-2000:])
        assert got["5.6-1-2"]["firmware"] == "1.4.1"
        assert "FAIL" not in {r["verdict"] for r in got.values()}, got

        # an image the DUT refuses (older security version: rollback): nothing about the release was tested
        proc, run_dir, got = run(older)
        case = got["5.6-1-2"]
        assert (case["verdict"], case["cause"]) == ("INCONCLUSIVE", "sample-unusable"), case
        assert "release 1.3.9 (TH-100-1.3.9.clfw) not installed: the DUT refused it" in case["reason"], case
        assert "rollback" in case["reason"]


# --- the queue worker that runs re-tests at any hour ------------------------------------------------


def test_queue_work_follow_keeps_serving_until_sigterm(tmp_path):
    """`certlab queue work --follow` waits on an empty queue instead of exiting, and stops on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from lab.sim.genlab import write_sim_inventory

    inventory = write_sim_inventory(tmp_path / "lab", "tfollow", 1, scpi_port=17990, subnet=230, netns=False,
                                    ssh_base_port=17995)  # never brought up: the queue stays empty
    log = tmp_path / "worker.log"
    env = {**os.environ, "CERTLAB_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "queue", "work", "-i", str(inventory), "--follow"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while "serving the queue" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        assert "serving the queue" in log.read_text(), log.read_text()
        time.sleep(2.0)  # longer than an idle worker without --follow takes to exit
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert "dispatched 0 run(s)" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_queue_add_takes_a_release_of_the_model_only(release_file, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lab.cli import app
    from lab.store import open_store, queued_runs

    monkeypatch.setenv("CERTLAB_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    got = runner.invoke(app, ["queue", "add", "--model", "TH-100", "--release", str(release_file), "--out", str(tmp_path)])
    assert got.exit_code == 0, got.output
    with open_store() as store:
        (entry,) = queued_runs(store, states=("pending",))
    assert release_path(entry.payload["options"]) == str(release_file.resolve())
    refused = runner.invoke(app, ["queue", "add", "--model", "TH-10", "--release", str(release_file)])
    assert isinstance(refused.exception, CertlabError) and "the image is for model TH-100" in str(refused.exception)
