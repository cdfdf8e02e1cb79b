"""Customers' data is its owner's alone on the lab host (issue 15, item 2): the store file and its
-wal/-shm, booking documents (assessor's record and evidence, a run's launch copies) and run
directories are made 0600 / 0700 by the code that creates them, whatever the umask.

Each kind is made through its real code path, under the usual umask 022, and checked with stat.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from apilib import bearer, client_of, make_app, seed_booking, serving  # tests/apilib.py
from fastapi.testclient import TestClient

from lab.api.app import PREFIX
from lab.api.settings import ApiSettings
from lab.inventory import load_inventory
from lab.orchestrator.inputs import record_inputs
from lab.orchestrator.rundir import RunSpec, create_run_dir, new_run_id, write_json
from lab.ownerfiles import UMASK, copy_private, open_private, private_dir, touch_private, write_private
from lab.store.accounts import add_user
from lab.store.db import open_store
from lab.store.models import Booking
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """umask 022, as on most lab hosts: without the fix everything below is created 0644 / 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def loose(path: Path) -> list[str]:
    """`path` and everything below it that group or others may read, write or enter."""
    found = []
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        mode = p.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{p.relative_to(path.parent)} {stat.filemode(mode)}")
    return found


def test_the_helpers_make_owner_only_files_and_folders(tmp_path: Path) -> None:
    folder = private_dir(tmp_path / "a" / "b")
    write_private(folder / "doc.yaml", "ics: 1\n")
    copy_private(folder / "doc.yaml", folder / "copy.yaml")
    with open_private(folder / "log.txt") as fh:
        fh.write(b"line\n")
    with open_private(folder / "log.txt", "ab") as fh:
        fh.write(b"more\n")
    touch_private(folder / "store.db")
    assert (folder / "copy.yaml").read_text() == "ics: 1\n" and (folder / "log.txt").read_bytes() == b"line\nmore\n"
    assert loose(tmp_path / "a") == []
    assert not (folder / "doc.yaml.tmp").exists()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared)  # a folder the lab made itself keeps its mode
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    probe = tmp_path / "child.txt"  # a child process started with UMASK creates owner-only files
    subprocess.run([sys.executable, "-c", f"open({str(probe)!r}, 'w').write('x')"], check=True, umask=UMASK, timeout=60)
    assert loose(probe) == []


def test_the_sqlite_store_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = open_store(f"sqlite:///{data / 'certlab.db'}")
    try:
        add_user(store, name="someone", role="engineer", org="Lab")  # a write: the -wal and -shm exist now
        names = sorted(p.name for p in data.iterdir())
        assert {"certlab.db", "certlab.db-wal", "certlab.db-shm"} <= set(names), names
        assert loose(data) == []
    finally:
        store.close()


def test_a_run_directory_and_its_inputs_are_owner_only(tmp_path: Path) -> None:
    inventory = load_inventory(ROOT / "inventory" / "sim.yaml")
    spec = RunSpec(run_id=new_run_id(), inventory=str(inventory.path), benches=("bench1",), suites=(), edition="v2")
    reports = tmp_path / "reports"
    run_dir = create_run_dir(reports, spec)
    record_inputs(run_dir, inventory, benches=spec.benches, edition="v2", options=())
    write_json(run_dir / "verdicts.json", {"results": []})
    assert (run_dir / "run.json").is_file() and (run_dir / "inputs" / "products" / "TH-100" / "ics.yaml").is_file()
    assert loose(reports) == []


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, ApiSettings, dict[str, str], int]]:
    with serving(make_app(tmp_path, data_dir=tmp_path / "data", rate_per_second=1e6, rate_burst=1e6)) as app:
        store = app.state.services.store
        lab = bearer(store, "lab", "engineer", "Test Lab")
        maker, _ = add_user(store, name="maker", role="manufacturer", org="Acme")
        booking_id = seed_booking(store, maker, status="accepted")
        with client_of(app, raise_server_exceptions=False) as client:
            yield client, app.state.services.settings, lab, booking_id


def test_booking_documents_and_a_launched_runs_files_are_owner_only(api, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    client, settings, lab, booking_id = api
    evidence = client.post(f"{PREFIX}/bookings/{booking_id}/assessments/evidence", headers=lab,
                           files={"file": ("5.2-1-2-policy.png", b"\x89PNG evidence")})
    assert evidence.status_code == 201, evidence.text
    put = client.put(f"{PREFIX}/bookings/{booking_id}/assessments", headers=lab,
                     json={"assessments": (PRODUCT / "assessments.yaml").read_text()})
    assert put.status_code == 200, put.text

    # starting a run: `certlab run` is replaced by a child that writes one file and exits at once
    started: list[dict] = []
    real_popen = subprocess.Popen
    probe = tmp_path / "written-by-the-run.txt"

    def fake_popen(argv, **kwargs):  # type: ignore[no-untyped-def]
        started.append(kwargs)
        return real_popen([sys.executable, "-c", f"open({str(probe)!r}, 'w').write('x')"], **kwargs)

    monkeypatch.setattr("lab.actions.runs.subprocess.Popen", fake_popen)
    run = client.post(f"{PREFIX}/bookings/{booking_id}/runs", headers=lab)
    assert run.status_code == 422 and "stopped before the run began" in run.text, run.text
    assert started and started[0].get("umask") == UMASK
    launch = next((settings.data_dir / "bookings" / str(booking_id)).glob("launch-*"))
    assert {"ics.yaml", "ixit.yaml", "assessments.yaml", "run.log", "evidence"} <= {p.name for p in launch.iterdir()}
    assert loose(settings.data_dir / "bookings") == []
    assert probe.is_file() and loose(probe) == []
    assert loose(settings.reports_dir) == []


def test_the_report_command_the_api_starts_writes_owner_only(api, monkeypatch: pytest.MonkeyPatch) -> None:
    """`certlab report` (Allure history in the data folder, the report files) runs under UMASK too."""
    client, settings, lab, booking_id = api
    run_id = "20260101-120000-modes1"
    store = client.app.state.services.store  # type: ignore[attr-defined]
    with unit(store) as s:
        booking = s.get(Booking, booking_id)
        booking.run_id, booking.status = run_id, "tested"
    run_dir = create_run_dir(settings.reports_dir, RunSpec(run_id=run_id, inventory="", benches=(), suites=()))
    write_json(run_dir / "verdicts.json", {"results": []})
    started: list[dict] = []
    real_popen = subprocess.Popen

    def fake_popen(argv, **kwargs):  # type: ignore[no-untyped-def]
        started.append(kwargs)
        return real_popen([sys.executable, "-c", "pass"], **kwargs)

    monkeypatch.setattr("lab.actions.reports.subprocess.Popen", fake_popen)
    made = client.post(f"{PREFIX}/runs/{run_id}/report", headers=lab)
    assert made.status_code == 404 and "no report yet" in made.text, made.text  # the stand-in wrote none
    assert started and started[0].get("umask") == UMASK


def test_uploaded_firmware_and_its_folders_are_owner_only(tmp_path: Path) -> None:
    """The image was 0600 already; the folders it sits in (tmp/, the hash prefix) were 0755."""
    with serving(make_app(tmp_path, data_dir=tmp_path / "data", rate_per_second=1e6, rate_burst=1e6)) as app:
        settings, store = app.state.services.settings, app.state.services.store
        maker, token = add_user(store, name="maker", role="manufacturer", org="Acme")
        booking_id = seed_booking(store, maker, status="requested")
        with client_of(app, raise_server_exceptions=False) as client:
            up = client.post(f"{PREFIX}/bookings/{booking_id}/firmware", headers={"Authorization": f"Bearer {token}"},
                             files={"file": ("fw.bin", b"not an image, kept as bytes" * 10)})
            assert up.status_code in (200, 201), up.text
    assert any(settings.firmware_dir.rglob("*")), "nothing was stored"
    assert loose(settings.firmware_dir) == []
