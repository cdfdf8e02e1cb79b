"""`certlab init DIR`: a starting lab folder that validates as written, and never over an existing one."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest

from lab.assessments import load_assessments
from lab.cli import main
from lab.errors import CertlabError
from lab.inventory import load_inventory
from lab.labinit import write_lab
from lab.preflight import check_lab_profile, check_product, product_files


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["certlab", *args])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err  # type: ignore[return-value]


def test_the_lab_it_writes_validates_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "Acme Lab"
    written = write_lab(folder, model="CAM-1", today=dt.date(2026, 12, 1))
    assert {p.relative_to(folder).as_posix() for p in written} == {
        "inventory.yaml", "lab-profile.yaml", "products/CAM-1/ics.yaml", "products/CAM-1/ixit.yaml",
        "products/CAM-1/assessments.yaml"}
    inv = load_inventory(folder / "inventory.yaml")
    assert inv.lab == "acme-lab" and list(inv.benches) == ["bench1"]
    bench = inv.benches["bench1"]
    assert not bench.simulated and bench.power.driver == "scpi" and bench.dut.model == "CAM-1"
    assert bench.console.url.startswith("/dev/serial/by-id/") and bench.ssh.user == "root"
    check_lab_profile(inv)
    ics_path, ixit_path = product_files(inv.base_dir, "CAM-1", "v2", ics=None, ixit=None)
    ics, ixit = check_product("CAM-1", "v2", ics_path=ics_path, ixit_path=ixit_path, folder=folder / "products" / "CAM-1")
    assert {e.support for e in ics.provisions.values()} == {"Y"}  # every test runs; no N/A the manufacturer did not give
    record = load_assessments(folder / "products" / "CAM-1" / "assessments.yaml", "v2", model="CAM-1")
    record.check_refs(ixit)
    assert not record.data.decisions and not record.data.performed  # nothing decided by a skeleton
    text = (folder / "inventory.yaml").read_text()
    assert "driver: relay_board" in text and "{env: BENCH1_ROOT_PASSWORD}" in text  # the other power, commented


def test_the_sim_example_is_the_shipped_simulated_lab(tmp_path: Path) -> None:
    write_lab(tmp_path / "lab", example_sim=True)
    sim = load_inventory(tmp_path / "lab" / "sim" / "sim.yaml")
    assert sim.benches and all(b.simulated for b in sim.benches.values())
    assert sim.resolve_secret(sim.benches["bench1"].ssh.password, field="ssh.password")
    assert not list((tmp_path / "lab" / "sim").glob("__init__.py"))


def test_an_empty_folder_is_fine_a_used_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert write_lab(tmp_path / "empty")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(CertlabError, match=r"used: exists and is not an empty folder; .*give a new or empty folder"):
        write_lab(tmp_path / "used")
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.txt"]


def test_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(monkeypatch, capsys, "init", "mylab", "--model", "TH-7")
    assert code == 0, err
    assert "wrote mylab/products/TH-7/ixit.yaml" in out and "certlab inventory check -i mylab/inventory.yaml" in out
    for args, said in ((["init", "mylab"], "mylab: exists and is not an empty folder"),
                       (["init", "other", "--example", "real"], "--example real: unknown example; the one there is: sim"),
                       (["init", "other", "--model", "../x"], "--model '../x': give a model name")):
        code, _, err = cli(monkeypatch, capsys, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"certlab: error: {said}"), err
    assert not (tmp_path / "other").exists()


def test_commands_with_an_inventory_need_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CERTLAB_INVENTORY", raising=False)
    for args in (["run"], ["inventory", "check"], ["product", "check"], ["lab", "up"], ["bench", "list"]):
        code, _, err = cli(monkeypatch, capsys, *args)
        assert code == 2 and err.strip() == "certlab: error: no inventory: pass -i FILE or set CERTLAB_INVENTORY", err
    write_lab(tmp_path / "lab")
    monkeypatch.setenv("CERTLAB_INVENTORY", str(tmp_path / "lab" / "inventory.yaml"))
    code, out, err = cli(monkeypatch, capsys, "product", "check")
    assert code == 0 and "MY-DEVICE-1: ICS" in out, err
