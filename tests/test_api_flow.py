"""The booking API end to end on a private simulated lab, over HTTP only.

A manufacturer books a test of the simulated thermostat and uploads its firmware; the lab accepts,
runs the booked suite (`certlab run` in its own process), makes, approves and releases the
report; the certification body reviews it; the manufacturer downloads the PDF and the whole
run. The lab is private (its own name, ports and subnet) and so are the store and the keys.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from simlab import simulated  # tests/simlab.py: a private simulated lab for one test
import yaml
from fastapi.testclient import TestClient

from lab.api.app import PREFIX, create_app
from lab.api.settings import ApiSettings
from lab.reports.keys import init_keys
from lab.sim.genlab import write_sim_inventory
from lab.sim.netns import unavailable_reason
from lab.sim.vendor import build_release
from lab.store.accounts import add_user
from lab.store.models import utcnow

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"  # the model write_sim_inventory puts on every bench
PROFILE = ROOT / "inventory" / "lab-profile.yaml"
NETNS = unavailable_reason() is None
RUN_TIMEOUT = 240.0
pytestmark = pytest.mark.usefixtures("key_dir")  # tests/conftest.py: CERTLAB_KEY_DIR in tmp_path


def private_lab(tmp_path: Path) -> Path:
    """Two TH-100 benches of a lab of the test's own, whose inventory names the lab profile."""
    path = write_sim_inventory(tmp_path / "lab", "tapi", 2, scpi_port=17610, subnet=221, netns=NETNS,
                               ssh_base_port=17620)
    doc = yaml.safe_load(path.read_text())
    doc["all"]["vars"]["certlab"]["lab_profile"] = str(PROFILE)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Http:
    def __init__(self, client: TestClient, tokens: dict[str, str]) -> None:
        self.client, self.tokens = client, tokens

    def __call__(self, method: str, path: str, who: str | None, expect: int, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        got = self.client.request(method, PREFIX + path, headers=headers, **kw)
        assert got.status_code == expect, f"{method} {path} as {who}: {got.status_code} {got.text[:2000]}"
        return got


def test_book_test_report_release_review_download(tmp_path: Path) -> None:
    init_keys()
    inventory = private_lab(tmp_path)
    settings = ApiSettings(inventory=inventory, data_dir=tmp_path / "data", reports_dir=tmp_path / "reports",
                           rate_per_second=1e6, rate_burst=1e6)
    app = create_app(settings)
    store = app.state.services.store
    tokens = {name: add_user(store, name=name, role=role, org=org)[1]
              for name, role, org in (("maker", "manufacturer", "Acme"), ("lab", "engineer", "Test Lab"),
                                      ("cert", "certifier", "CertBody"))}
    started = time.monotonic()
    try:
        with simulated(inventory), TestClient(app, raise_server_exceptions=False) as client:
            http = Http(client, tokens)
            http("GET", "/bookings", None, 401)

            # the manufacturer: product, booking, firmware
            product = http("POST", "/products", "maker", 201,
                           json={"model": "TH-100", "name": "Smart thermostat", "vendor": "Certlab Sim Devices"}).json()
            booking = http("POST", "/bookings", "maker", 201, json={
                "product_id": product["id"], "firmware_version": "1.4.0", "edition": "v2", "suites": ["examples"],
                "ics": (PRODUCT / "ics.yaml").read_text(), "ixit": (PRODUCT / "ixit.yaml").read_text()}).json()
            bid = booking["id"]
            image = build_release("TH-100", "1.4.0", 3)
            fw = http("POST", f"/bookings/{bid}/firmware", "maker", 201,
                      files={"file": ("TH-100-1.4.0.clfw", image)}).json()
            assert (fw["signature"], fw["version"]) == ("valid", "1.4.0"), fw

            # the lab: accept, run
            http("POST", f"/bookings/{bid}/runs", "lab", 409)  # not accepted yet
            http("POST", f"/bookings/{bid}/accept", "lab", 200, json={"day": utcnow().date().isoformat()})
            http("PUT", f"/bookings/{bid}/assessments", "lab", 200,
                 json={"assessments": (PRODUCT / "assessments.yaml").read_text()})  # the assessor's decisions
            run = http("POST", f"/bookings/{bid}/runs", "lab", 202).json()
            run_id = run["run_id"]
            assert run["booking_id"] == bid and run["process"] == "running", run
            assert http("GET", f"/bookings/{bid}", "maker", 200).json()["status"] == "running"
            http("POST", f"/bookings/{bid}/runs", "lab", 409)  # one run at a time

            deadline = time.monotonic() + RUN_TIMEOUT
            while True:
                status = http("GET", f"/runs/{run_id}", "maker", 200).json()
                if status["process"] == "exited":
                    break
                assert time.monotonic() < deadline, f"run {run_id} still going after {RUN_TIMEOUT} s: {status}"
                time.sleep(0.5)
            assert status["status"] == "finished" and status["exit_code"] in (0, 1, 3), status
            assert [b["bench"] for b in status["benches"]] == ["b1", "b2"], status
            assert status["total"] > 0 and status["done"] == status["total"], status
            assert sum(status["verdicts"].values()) == status["total"], status
            assert http("GET", f"/bookings/{bid}", "maker", 200).json()["status"] == "tested"
            index = json.loads((tmp_path / "reports" / run_id / "inputs" / "inputs.json").read_text())
            kept = index["products"]["TH-100"]
            assert set(kept) == {"ics", "ixit", "assessments"}, kept  # the run had the booking's documents
            assert [r["run_id"] for r in http("GET", f"/bookings/{bid}/runs", "maker", 200).json()] == [run_id]

            # the report: made, refused to the manufacturer as a draft, approved, released
            draft = http("POST", f"/runs/{run_id}/report", "lab", 201).json()
            assert draft["status"] == "draft" and draft["report_id"] and draft["overall"], draft
            http("GET", f"/runs/{run_id}/report/conformance.pdf", "maker", 409)
            http("GET", f"/runs/{run_id}/report", "cert", 404)  # not released to it
            approved = http("POST", f"/runs/{run_id}/approve", "lab", 200,
                            json={"by": "Alex Example", "role": "Technical Manager"}).json()
            assert (approved["status"], approved["approved_by"]) == ("approved", "Alex Example"), approved
            assert http("GET", f"/bookings/{bid}", "maker", 200).json()["status"] == "reported"
            http("POST", f"/runs/{run_id}/release", "lab", 201, json={"organisation": "CertBody"})

            # the certification body reviews; the manufacturer downloads
            assert http("GET", f"/runs/{run_id}/report", "cert", 200).json()["status"] == "approved"
            http("POST", f"/runs/{run_id}/reviews", "cert", 201, json={"decision": "accepted", "comment": "ok"})
            reviews = http("GET", f"/runs/{run_id}/reviews", "maker", 200).json()
            assert [(r["organisation"], r["decision"]) for r in reviews] == [("CertBody", "accepted")]
            pdf = http("GET", f"/runs/{run_id}/report/conformance.pdf", "maker", 200)
            assert pdf.content.startswith(b"%PDF"), pdf.content[:20]
            archive = http("GET", f"/runs/{run_id}/report/archive", "maker", 200)
            with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
                names = set(tar.getnames())
            for part in ("run.json", "verdicts.json", "manifest.json", "manifest.sig", "approval.json",
                         "conformance.pdf", "conformance.json"):
                assert f"{run_id}/{part}" in names, (part, sorted(names)[:40])
            http("GET", f"/runs/{run_id}/report/archive", None, 401)
    finally:
        store.close()
    assert time.monotonic() - started < 300
