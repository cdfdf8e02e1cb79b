"""Product records as their tests set them up: an app on a private store with the users of
tests/webui.py, a lab key, and run directories written on disk as `certlab run` + `certlab report`
leave them (signed with the test key, approved when asked), so no lab and no report subprocess runs.

    world = records_world(tmp_path, monkeypatch)
    run_dir = certifying_run(world.reports, "20261101-100000-cert01", {"5.1-1": "PASS"})
    records.open_record(world.svc, world.who("lab"), run_id)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from fastapi import FastAPI
from inputs_lab import caller
from webui import WebClient, make_app

from lab.actions.context import Caller, Services
from lab.reports.approval import write_approval
from lab.reports.keys import KEY_DIR_ENV, init_keys, load_private_key
from lab.reports.manifest import sign_run
from lab.sim.publish import advisory, advisory_json, sbom_json
from lab.sim.vendor import build_release, firmware_components
from lab.store.models import Booking, Product
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIR = ROOT / "inventory" / "products" / "TH-100"
MODEL = "TH-100"
CERT_RUN = "20261101-100000-cert01"
BASELINE = {"5.1-1": "PASS", "5.3-2": "PASS", "5.5-1": "FAIL", "5.6-1": "PASS", "5.7-1": "NOT_APPLICABLE"}


@dataclass
class World:
    app: FastAPI
    client: WebClient  # anonymous; `client.bearer(name)` is a user's API header

    @property
    def svc(self) -> Services:
        return self.app.state.services

    @property
    def reports(self) -> Path:
        return self.svc.settings.reports_dir

    def who(self, name: str) -> Caller:
        return caller(self.app, name)


def records_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object) -> World:
    """An app (users maker, lab, cert, rival: tests/webui.py) with a lab key of its own."""
    monkeypatch.setenv(KEY_DIR_ENV, str(tmp_path / "keys"))
    init_keys(tmp_path / "keys")
    client = make_app(tmp_path, **settings)
    client.app.state.services.settings.reports_dir.mkdir(parents=True, exist_ok=True)
    return World(client.app, client)  # type: ignore[arg-type]


def conformance(run_id: str, provisions: dict[str, str], *, firmware: str = "1.4.0", model: str = MODEL,
                overall: str | None = None) -> dict:
    """A conformance.json as `certlab report` writes it, the parts a record reads."""
    worst = next((v for v in ("FAIL", "INCONCLUSIVE", "PASS") if v in provisions.values()), "NOT_APPLICABLE")
    return {"report": {"id": f"CL-sim-{run_id}", "issued": "2026-11-02", "status": "approved"},
            "method": {"edition": "v2"}, "items": [{"model": model, "vendor": "Certlab Sim Devices",
                                                    "serial": "TH100-0001", "firmware": firmware}],
            "summary": {"overall": overall or worst},
            "provisions": [{"id": pid, "verdict": verdict} for pid, verdict in provisions.items()],
            "run": {"id": run_id, "lab": "sim"}}


def certifying_run(reports: Path, run_id: str, provisions: dict[str, str], *, firmware: str = "1.4.0",
                   approved: bool = True, model: str = MODEL, options: list[str] | None = None) -> Path:
    """A finished, reported run of `model` with its inputs copy; signed and (if asked) approved."""
    run_dir = reports / run_id
    inputs = run_dir / "inputs" / "products" / model
    inputs.mkdir(parents=True)
    index = {"products": {model: {}}, "firmware": []}
    for kind in ("ics", "ixit", "assessments"):
        (inputs / f"{kind}.yaml").write_text((PRODUCT_DIR / f"{kind}.yaml").read_text(encoding="utf-8"))
        index["products"][model][kind] = {"file": f"inputs/products/{model}/{kind}.yaml"}
    key = "security-txt-key.asc"  # what the IXIT names beside itself, kept beside its copy as certlab run does
    (inputs / key).write_bytes((PRODUCT_DIR / key).read_bytes())
    index["products"][model]["ixit_files"] = [{"ref": key, "file": f"inputs/products/{model}/{key}"}]
    (run_dir / "inputs" / "inputs.json").write_text(json.dumps(index))
    spec = {"run_id": run_id, "suites": ["testsuites/en303645"], "edition": "v2", "benches": ["bench1"],
            "options": options if options is not None else
            ["--ics", "/elsewhere/ics.yaml", "--ixit=/elsewhere/ixit.yaml", "-k", "not slow"]}
    (run_dir / "run.json").write_text(json.dumps(spec))
    (run_dir / "verdicts.json").write_text(json.dumps({"run_id": run_id, "results": []}))
    (run_dir / "conformance.json").write_text(json.dumps(conformance(run_id, provisions, firmware=firmware,
                                                                     model=model)))
    key = load_private_key()
    sign_run(run_dir, key)
    if approved:
        write_approval(run_dir, by="Alex Example", role="Technical Manager", report_id=f"CL-sim-{run_id}", key=key)
        sign_run(run_dir, key)
    return run_dir


def booking_with_run(world: World, run_id: str, owner: str = "maker", model: str = MODEL) -> int:
    """A tested booking of `owner`'s `model` product whose run is `run_id`."""
    who = world.who(owner)
    with unit(world.svc.store) as s:
        product = s.query(Product).filter_by(org_id=who.org_id, model=model).first()
        if product is None:
            product = Product(org_id=who.org_id, model=model, name="Smart thermostat", vendor="Certlab Sim Devices")
            s.add(product)
            s.flush()
        booking = Booking(org_id=who.org_id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                          suites=["en303645"], ics=(PRODUCT_DIR / "ics.yaml").read_text(encoding="utf-8"),
                          ixit=(PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8"), status="tested",
                          created_by=who.id, run_id=run_id)
        s.add(booking)
        s.flush()
        return booking.id


def release_files(version: str, *, model: str = MODEL) -> tuple[bytes, bytes]:
    """(image signed with the simulated vendor's key, its CycloneDX SBOM) of a release: the same bytes on
    every call (the SBOM's timestamp fixed), as a release uploaded twice is."""
    image = build_release(model, version, 3, size=1024)
    released = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
    return image, sbom_json(model, version, firmware_components(version), released=released).encode()


def csaf(advisory_id: str, *, affected: list[str], fixed: list[str], published: date = date(2026, 11, 20),
         model: str = MODEL) -> bytes:
    return advisory_json(advisory(model, advisory_id=advisory_id, title=f"Advisory {advisory_id}",
                                  cves=["CVE-2026-12345"], affected=affected, fixed=fixed,
                                  published=published)).encode()


def finished_retest(reports: Path, run_id: str, provisions: dict[str, str], *, firmware: str) -> Path:
    """A re-test run that ended with its report made and approved (the keeper then only reads it)."""
    run_dir = reports / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id, "suites": ["testsuites/en303645"]}))
    (run_dir / "verdicts.json").write_text(json.dumps({"run_id": run_id, "results": []}))
    approved = {**conformance(run_id, provisions, firmware=firmware),
                "approval": {"by": "Alex Example", "role": "Technical Manager", "at": "2026-12-05T12:00:00Z"}}
    (run_dir / "conformance.json").write_text(json.dumps(approved))
    key = load_private_key()
    sign_run(run_dir, key)
    write_approval(run_dir, by="Alex Example", role="Technical Manager", report_id=f"CL-sim-{run_id}", key=key)
    sign_run(run_dir, key)
    return run_dir


def certified_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object) -> World:
    """A world whose TH-100 record is open from a booked, approved certifying run (CERT_RUN, BASELINE)."""
    from lab.actions import records

    made = records_world(tmp_path, monkeypatch, **settings)
    certifying_run(made.reports, CERT_RUN, BASELINE)
    booking_with_run(made, CERT_RUN)
    records.open_record(made.svc, made.who("lab"), CERT_RUN)
    return made


def register(world: World, version: str = "1.5.0") -> int:
    """The maker registers release `version` (image and SBOM from release_files): the queued re-test's id."""
    import io

    from lab.actions import records

    image, bom = release_files(version)
    got = records.add_release(world.svc, world.who("maker"), MODEL, io.BytesIO(image), f"{version}.clfw", bom,
                              "2026-12-05")
    return got["retest"]["queued_id"]


def retest_of(world: World, version: str = "1.5.0") -> dict:
    """The release's re-test entry in the record as published now."""
    from lab.actions import records

    view = records.public_view(world.svc, MODEL)
    return next(r for r in view["record"]["releases"] if r["version"] == version)["retest"]
