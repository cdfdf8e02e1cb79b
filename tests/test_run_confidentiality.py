"""A run directory holds nothing of the rest of the lab (issue 15, item 1).

The lab's inventory here also holds another organisation's bench: its model, serial, MAC,
address, firmware and release file, SSH user, secret-file path, console, playbook and simulated
flaws. A run of the first organisation's bench is recorded by the real `record_inputs`, reported
by the real `certlab report` code (`build_report`, `approve_report`) and downloaded as its
manufacturer downloads it (`GET /runs/{id}/report/archive` through the app); every byte and every
name in the archive is then searched for the other organisation's identifiers. Fast: no bench,
no Allure, no Chromium.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lab.api.app import PREFIX, create_app
from lab.api.settings import ApiSettings
from lab.catalog import EDITION_LABELS, load_catalog
from lab.inventory import load_inventory
from lab.orchestrator.inputs import INDEX_FILE, INPUTS_DIR, record_inputs, reduced_inventory, sha256_file
from lab.orchestrator.rundir import RunSpec, create_run_dir, new_run_id
from lab.reports.build import approve_report, build_report, find_profile
from lab.reports.keys import init_keys
from lab.reports.manifest import verify_run
from lab.sim.vendor import build_release
from lab.store.accounts import add_user
from lab.store.models import Booking, Product
from lab.store.unit import unit

pytestmark = pytest.mark.usefixtures("key_dir")  # tests/conftest.py: keys in tmp_path, never the user's

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"

OURS = {"bench": "acme1", "serial": "ACME-SN-0001", "secret_path": "secrets/acme1.password",
        "password": "acme-lab-pw-5up3r"}
# everything that identifies the other organisation's bench, sample and firmware
THEIRS = {
    "bench": "rivalbench", "model": "RV-9000", "serial": "RIVAL-SN-0777", "mac": "02:66:66:00:07:77",
    "address": "10.66.6.6", "firmware": "9.9.9-rival", "release": "RV-9000-9.9.9-rival.clfw",
    "secret_path": "secrets/rival-bench.password", "password": "rival-lab-pw-h1dd3n", "ssh_user": "rivaladmin",
    "console": "/dev/serial/by-id/rival-console", "interface": "rival-if0", "playbook": "playbooks/rival-only.yml",
    "condition": "rival sample, opened by customs", "flaw1": "rollback_allowed", "flaw2": "factory_reset_keeps_data",
}

INVENTORY = f"""
all:
  vars:
    certlab:
      lab: shared
      operator: Shared Test Lab
      firmware_dir: fw
      lab_profile: lab-profile.yaml
  children:
    benches:
      hosts:
        {OURS['bench']}:
          ansible_host: 10.1.1.2
          certlab:
            power: {{driver: scpi, resource: "TCPIP::127.0.0.1::15025::SOCKET", channel: 1}}
            console: {{url: /dev/serial/by-id/acme-console}}
            network: {{address: 10.1.1.2, interface: acme-if0}}
            ssh: {{user: root, password: {{file: {OURS['secret_path']}}}}}
            dut: {{model: TH-100, serial: {OURS['serial']}, mac: "02:c1:ab:00:00:01", firmware: 1.4.0,
                  received_on: 2026-11-20, condition: "new, sealed", label_password: {{file: {OURS['secret_path']}}}}}
            sim: {{flaws: [tampered_update_accepted]}}
        {THEIRS['bench']}:
          ansible_host: {THEIRS['address']}
          certlab:
            power: {{driver: scpi, resource: "TCPIP::127.0.0.1::15025::SOCKET", channel: 2}}
            console: {{url: {THEIRS['console']}}}
            network: {{address: {THEIRS['address']}, interface: {THEIRS['interface']}}}
            ssh: {{user: {THEIRS['ssh_user']}, password: {{file: {THEIRS['secret_path']}}}}}
            dut: {{model: {THEIRS['model']}, serial: {THEIRS['serial']}, mac: "{THEIRS['mac']}",
                  firmware: {THEIRS['firmware']}, condition: "{THEIRS['condition']}",
                  label_password: {{file: {THEIRS['secret_path']}}}}}
            sim: {{flaws: [{THEIRS['flaw1']}, {THEIRS['flaw2']}]}}
            playbook: {THEIRS['playbook']}
"""


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A lab folder: the shared inventory, its secrets, both models' release files, our product's files."""
    folder = tmp_path / "lab"
    (folder / "secrets").mkdir(parents=True)
    (folder / OURS["secret_path"]).write_text(OURS["password"] + "\n")
    (folder / THEIRS["secret_path"]).write_text(THEIRS["password"] + "\n")
    (folder / "fw").mkdir()
    (folder / "fw" / "TH-100-1.4.0.clfw").write_bytes(build_release("TH-100", "1.4.0", 3, size=4096))
    (folder / "fw" / THEIRS["release"]).write_bytes(build_release(THEIRS["model"], THEIRS["firmware"], 9, size=4096))
    (folder / "products" / "TH-100").mkdir(parents=True)
    for kind in ("ics", "ixit"):
        shutil.copyfile(PRODUCT / f"{kind}.yaml", folder / "products" / "TH-100" / f"{kind}.yaml")
    shutil.copyfile(ROOT / "inventory" / "lab-profile.yaml", folder / "lab-profile.yaml")
    (folder / "inventory.yaml").write_text(INVENTORY)
    return folder / "inventory.yaml"


def _finished_run(inventory_path: Path, reports: Path) -> Path:
    """Our bench's run as `certlab run` starts it (real run directory and inputs), and a verdict."""
    inventory = load_inventory(inventory_path)
    spec = RunSpec(run_id=new_run_id(), inventory=str(inventory_path.resolve()), benches=(OURS["bench"],),
                   suites=(str(ROOT / "testsuites" / "en303645"),), edition="v2")
    run_dir = create_run_dir(reports, spec)
    record_inputs(run_dir, inventory, benches=spec.benches, edition="v2", options=())
    case = load_catalog("v2").test_cases[0]
    result = {"bench": OURS["bench"], "executed_on": OURS["bench"], "dut_serial": OURS["serial"], "firmware": "1.4.0",
              "test_case": case.id, "test": "test_x", "provision": case.provision, "verdict": "PASS", "reason": "",
              "cause": None, "evidence": [], "nodeid": f"testsuites/en303645/test_x.py::test_x[{OURS['bench']}]",
              "attempt": 1, "duration": 0.1, "finished": "2026-12-01T10:00:00Z"}
    (run_dir / "verdicts.json").write_text(json.dumps({"run_id": spec.run_id, "edition": EDITION_LABELS["v2"],
                                                       "lab": inventory.lab, "results": [result]}))
    return run_dir


def test_the_kept_inventory_is_the_runs_benches_without_secrets(lab: Path, tmp_path: Path) -> None:
    inventory = load_inventory(lab)
    text = reduced_inventory(inventory, [OURS["bench"]])
    for value in (*THEIRS.values(), OURS["secret_path"], "password", "sim:", "flaws", "tampered_update_accepted"):
        assert value not in text, value
    copy = tmp_path / "copy.yaml"
    copy.write_text(text)
    kept = load_inventory(copy)  # every reader of inputs/inventory.yaml loads it like this
    assert list(kept.benches) == [OURS["bench"]] and (kept.lab, kept.operator, kept.lab_profile) == \
        (inventory.lab, inventory.operator, inventory.lab_profile)
    ours, before = kept.benches[OURS["bench"]], inventory.benches[OURS["bench"]]
    assert ours.dut.model_dump(exclude={"label_password"}) == before.dut.model_dump(exclude={"label_password"})
    assert (ours.power, ours.console.url, ours.network.address, ours.network.interface) == \
        (before.power, before.console.url, before.network.address, before.network.interface)
    assert ours.ssh.password is None and ours.dut.label_password is None and ours.sim is None


def test_the_index_lists_only_the_runs_releases_and_pins_the_whole_inventory(lab: Path, tmp_path: Path) -> None:
    run_dir = _finished_run(lab, tmp_path / "reports")
    index = json.loads((run_dir / INPUTS_DIR / INDEX_FILE).read_text())
    assert [(r["model"], r["version"], r["file"]) for r in index["firmware"]] == [("TH-100", "1.4.0", "TH-100-1.4.0.clfw")]
    assert index["lab_inventory_sha256"] == sha256_file(lab)
    assert index["inventory"] == {"source": str(lab.resolve()), "file": "inputs/inventory.yaml",
                                  "sha256": sha256_file(run_dir / "inputs" / "inventory.yaml")}



def test_the_index_hashes_a_components_release_that_the_products_ixit_names(lab: Path, tmp_path: Path) -> None:
    """The radio co-processor's images carry their own model (TH-100-radio): the IXIT says they are TH-100's."""
    radio = lab.parent / "fw" / "TH-100-radio-2.2.0.clfw"
    radio.write_bytes(build_release("TH-100-radio", "2.2.0", 4, size=2048))
    (lab.parent / "fw" / "OTHER-radio-1.0.0.clfw").write_bytes(build_release("OTHER-radio", "1.0.0", 1, size=2048))
    run_dir = _finished_run(lab, tmp_path / "reports")
    index = json.loads((run_dir / INPUTS_DIR / INDEX_FILE).read_text())
    assert [(r["model"], r["file"], r["sha256"]) for r in index["firmware"]] == [
        ("TH-100", "TH-100-1.4.0.clfw", sha256_file(lab.parent / "fw" / "TH-100-1.4.0.clfw")),
        ("TH-100-radio", "TH-100-radio-2.2.0.clfw", sha256_file(radio))]

def test_a_manufacturers_archive_holds_nothing_of_another_organisation(lab: Path, tmp_path: Path) -> None:
    init_keys()
    settings = ApiSettings(inventory=lab, data_dir=tmp_path / "data", reports_dir=tmp_path / "reports",
                           rate_per_second=1e6, rate_burst=1e6)
    run_dir = _finished_run(lab, settings.reports_dir)
    run_id = run_dir.name
    # the report from the run directory alone, as `certlab report` and `report approve` make it
    profile = find_profile(run_dir)  # read from the run's copy of the inventory
    build_report(run_dir, profile=profile, data_dir=settings.data_dir, with_allure=False, with_pdf=False)
    approve_report(run_dir, by="Alex Example", role="Technical Manager", profile=profile, with_pdf=False)
    assert verify_run(run_dir).intact
    doc = json.loads((run_dir / "conformance.json").read_text())
    assert [(i["serial"], i["firmware_file"]) for i in doc["items"]] == [(OURS["serial"], "TH-100-1.4.0.clfw")]
    assert doc["run"]["operator"] == "Shared Test Lab"

    app = create_app(settings)
    store = app.state.services.store
    try:
        maker, token = add_user(store, name="maker", role="manufacturer", org="Acme")
        with unit(store) as s:
            product = Product(org_id=maker.org_id, model="TH-100", name="Thermostat", vendor="Certlab Sim Devices")
            s.add(product)
            s.flush()
            s.add(Booking(org_id=maker.org_id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                          suites=["en303645"], ics=(PRODUCT / "ics.yaml").read_text(),
                          ixit=(PRODUCT / "ixit.yaml").read_text(), status="reported", created_by=maker.id,
                          run_id=run_id))
        with TestClient(app, raise_server_exceptions=False) as client:
            got = client.get(f"{PREFIX}/runs/{run_id}/report/archive", headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 200, got.text
    finally:
        store.close()

    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(got.content), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                members[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    assert f"{run_id}/inputs/inventory.yaml" in members and f"{run_id}/conformance.json" in members, sorted(members)
    everything = b"\n".join([*members.values(), *(name.encode() for name in members)])
    assert OURS["serial"].encode() in everything  # the search finds what is there
    leaks = {what: [name for name, data in members.items() if value.encode() in data or value in name]
             for what, value in {**THEIRS, "release sha256": sha256_file(lab.parent / "fw" / THEIRS["release"])}.items()
             if value.encode() in everything}
    assert not leaks, f"the archive of {OURS['bench']}'s run names the other organisation's {leaks}"
    secrets = [value for value in (OURS["secret_path"], OURS["password"]) if value.encode() in everything]
    assert not secrets, f"the archive holds the lab's secret {secrets} (the report needs none)"


def test_a_real_simulated_run_of_one_bench_holds_nothing_of_the_other(tmp_path: Path) -> None:
    """e2e (tests/conftest.py): a lab of two benches up, the example suite run and reported on b1;
    the whole run directory (what the archive is made of) is searched for b2's identifiers."""
    import os
    import subprocess
    import sys

    import yaml
    from simlab import simulated  # tests/simlab.py: a private simulated lab for one test

    from lab.sim.genlab import write_sim_inventory
    from lab.sim.netns import unavailable_reason

    path = write_sim_inventory(tmp_path / "lab", "tconf", 2, scpi_port=17710, subnet=231,
                               netns=unavailable_reason() is None, ssh_base_port=17720,
                               per_bench_sim={2: {"flaws": [THEIRS["flaw1"]]}})
    doc = yaml.safe_load(path.read_text())
    doc["all"]["vars"]["certlab"]["lab_profile"] = str(ROOT / "inventory" / "lab-profile.yaml")
    b2 = doc["all"]["children"]["benches"]["hosts"]["b2"]
    b2["certlab"]["dut"].update(model=THEIRS["model"], serial=THEIRS["serial"], firmware=THEIRS["firmware"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    theirs = {"model": THEIRS["model"],  # (its name "b2" is too short to search for) "serial": THEIRS["serial"], "firmware": THEIRS["firmware"],
              "mac": b2["certlab"]["dut"]["mac"], "address": b2["certlab"]["network"]["address"],
              "secret": b2["certlab"]["ssh"]["password"]["file"], "console": b2["certlab"]["console"]["url"],
              "flaw": THEIRS["flaw1"]}
    reports = tmp_path / "reports"

    def certlab(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True, text=True, timeout=600,
                              cwd=ROOT, env={**os.environ, "COLUMNS": "200"}, stdin=subprocess.DEVNULL)

    with simulated(path):
        run = certlab("run", "--suite", "testsuites/examples", "-i", str(path), "--bench", "b1", "--out", str(reports))
    assert run.returncode in (0, 1), run.stdout + run.stderr
    (run_dir,) = reports.iterdir()
    assert certlab("keys", "init").returncode == 0
    report = certlab("report", str(run_dir), "--no-pdf", "--no-allure")
    assert report.returncode == 0, report.stdout + report.stderr
    assert stat_mode(run_dir) == 0o700
    assert set(load_inventory(run_dir / "inputs" / "inventory.yaml").benches) == {"b1"}
    found: dict[str, list[str]] = {}
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 10 and any(p.name == "manifest.json" for p in files)
    for p in files:
        data = p.read_bytes()
        for what, value in theirs.items():
            if value.encode() in data or value in p.relative_to(run_dir).as_posix():
                found.setdefault(what, []).append(p.relative_to(run_dir).as_posix())
    assert not found, f"b1's run directory names bench b2's {found}"


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
