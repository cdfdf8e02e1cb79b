"""Schemathesis over the booking API's own OpenAPI document, every check on, as every role.

The document is what clients generate code from, so each check schemathesis has must hold:
no server error, only documented statuses, content types and bodies, schema-valid input
accepted (or refused for a documented business reason, listed below), invalid input refused,
the token really required. In-process (schemathesis' ASGI transport, no server, no port), as a
lab engineer, a manufacturer and a certifier, on a private store and reports folder where each
has objects of its own (a booking, its firmware, a sample; for the certifier a booking whose
approved report was released to it), so generated ids hit real things. Bounded: few examples
per operation, a fixed seed, no deadline, slow-data health checks off (a SQLite write per
request is not slow code).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient

from lab.api.app import PREFIX, create_app
from lab.api.settings import ApiSettings
from lab.sim.vendor import build_release
from lab.store import service
from lab.store.accounts import add_user
from lab.store.models import Booking
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"
MAX_EXAMPLES = 12  # per operation and role
SEED = 303645
RUN_ID = "20260101-120000-abc123"  # the certifier's released run (a faked, approved report)
USERS = {"manufacturer": ("maker", "Acme"), "engineer": ("lab", "Test Lab"), "certifier": ("cert", "CertBody")}
ROLES = tuple(USERS)
STATUSES: dict[str, Counter[int]] = {role: Counter() for role in ROLES}  # what the fuzzing got, per role
# Starting a run drives the lab's benches (`certlab run` on the inventory): covered end to end by
# tests/test_api_flow.py on a private simulated lab. Making and approving a report are fuzzed: on
# this app's private reports folder a generated run id has no run (404), and the one faked run is
# approved already (409), so no `certlab report` is ever spawned.
POSITIVE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis' own default
EXCLUDED = (f"{PREFIX}/bookings/{{booking_id}}/runs", "POST")


def _business_422(path: str, method: str, why: str) -> tuple[str, str, str]:
    return method, f"{PREFIX}{path}", why


# Schema-valid input these operations refuse with a documented 422 for a reason a JSON schema cannot
# state; everywhere else a 422 for schema-valid input fails the run.
BUSINESS_422 = [
    _business_422("/bookings", "POST", "the ICS and IXIT are YAML documents checked against the lab's catalogue, "
                  "and the preferred days must not be in the past"),
    _business_422("/bookings/{booking_id}/assessments", "PUT", "the assessor's record is a YAML document checked "
                  "against the catalogue and the booking's IXIT"),
    _business_422("/bookings/{booking_id}/accept", "POST", "the test day must not be in the past, and a booking "
                  "without a preferred window needs one"),
    _business_422("/bookings/{booking_id}/samples", "POST", "a serial the lab's inventory lists as another model"),
    _business_422("/slots", "GET", "the models are the lab inventory's, read at each call"),
    _business_422("/bookings/{booking_id}/firmware", "POST", "an empty file is no image"),
    _business_422("/bookings/{booking_id}/assessments/evidence", "POST", "an empty file, or a name that is not "
                  "a plain file name"),
    _business_422("/runs/{run_id}/release", "POST", "the organisation must have a certifier"),
]


def config(operation_ids: dict[tuple[str, str], str]) -> schemathesis.Config:
    """Everything on, and 422 accepted from schema-valid data only for BUSINESS_422, each named by its
    operation id (filters by path and by method would each match on their own)."""
    operations = [{"include-operation-id": operation_ids[method, path],
                   "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_DEFAULT, "422"]}}}
                  for method, path, _why in BUSINESS_422]
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all",
                       "with-security-parameters": False, "database": "none"},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "checks": {"enabled": True},
        "operations": operations,
    })


def _fake_released_run(app: object, booking_id: int, certifier_org: int, engineer: int) -> None:
    """An approved report of `booking_id` in the app's private reports folder, released to the certifier."""
    settings = app.state.services.settings  # type: ignore[attr-defined]
    store = app.state.services.store  # type: ignore[attr-defined]
    with unit(store) as s:
        booking = s.get(Booking, booking_id)
        booking.run_id, booking.status = RUN_ID, "reported"
    run_dir = settings.reports_dir / RUN_ID
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": RUN_ID}))
    (run_dir / "verdicts.json").write_text(json.dumps({"results": []}))
    (run_dir / "conformance.json").write_text(json.dumps({"report": {"id": "CL-1"}, "summary": {"overall": "PASS"}}))
    (run_dir / "conformance.html").write_text("<html>report</html>")
    (run_dir / "conformance.pdf").write_bytes(b"%PDF-1.4 fake")
    (run_dir / "approval.json").write_text(json.dumps({"by": "Alex Example", "role": "Technical Manager"}))
    service.release_report(store, run_id=RUN_ID, booking_id=booking_id, org_id=certifier_org, released_by=engineer)


def seed(app: object, auth: dict[str, str], users: dict[str, object]) -> None:
    """Through the API where a role can: the manufacturer's product, bookings and firmware, the
    engineer's sample receipt; then the certifier's release (made in the store: a real one needs a run)."""
    def as_(role: str) -> dict[str, str]:
        return {"Authorization": auth[role]}

    ics, ixit = (PRODUCT / "ics.yaml").read_text(), (PRODUCT / "ixit.yaml").read_text()
    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        product = client.post(f"{PREFIX}/products", headers=as_("manufacturer"),
                              json={"model": "TH-100", "name": "Thermostat", "vendor": "Certlab Sim Devices"})
        assert product.status_code == 201, product.text
        ids = []
        for _ in range(2):
            made = client.post(f"{PREFIX}/bookings", headers=as_("manufacturer"), json={
                "product_id": product.json()["id"], "firmware_version": "1.4.0", "edition": "v2",
                "ics": ics, "ixit": ixit})
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        upload = client.post(f"{PREFIX}/bookings/{ids[0]}/firmware", headers=as_("manufacturer"),
                             files={"file": ("TH-100-1.4.0.clfw", build_release("TH-100", "1.4.0", 3, size=1024))})
        assert upload.status_code == 201, upload.text
        sample = client.post(f"{PREFIX}/bookings/{ids[0]}/samples", headers=as_("engineer"),
                             json={"serial": "FUZZ-0001", "condition": "new"})
        assert sample.status_code == 201, sample.text
    _fake_released_run(app, ids[1], users["certifier"].org_id, users["engineer"].id)  # type: ignore[attr-defined]


def _app() -> tuple[object, Path, dict[str, str], dict[str, object]]:
    """The app on a store and folders of its own, made at import: schemathesis' eager `parametrize` needs
    the schema at collection (its lazy `from_fixture` does not run under pytest 9: it sets a node's
    `_nodeid`), before the per-test CERTLAB_DATA_DIR exists, so every path here is explicit."""
    tmp = Path(tempfile.mkdtemp(prefix="certlab-schemathesis-"))
    app = create_app(ApiSettings(database_url=f"sqlite:///{tmp / 'certlab.db'}", data_dir=tmp / "data",
                                 reports_dir=tmp / "reports", rate_per_second=1e6, rate_burst=1e6))
    store = app.state.services.store
    users, auth = {}, {}
    for role, (name, org) in USERS.items():
        users[role], token = add_user(store, name=name, role=role, org=org)
        auth[role] = f"Bearer {token}"
    return app, tmp, auth, users


APP, TMP, AUTH, USER_ROWS = _app()
OPERATION_IDS = {(method.upper(), path): op["operationId"]  # type: ignore[attr-defined]
                 for path, ops in APP.openapi()["paths"].items() for method, op in ops.items()}
schema = schemathesis.openapi.from_asgi(f"{PREFIX}/openapi.json", APP, config=config(OPERATION_IDS))
schema = schema.exclude(path=EXCLUDED[0], method=EXCLUDED[1])


@pytest.fixture(scope="module", autouse=True)
def seeded() -> Iterator[None]:
    seed(APP, AUTH, USER_ROWS)
    yield
    APP.state.services.store.close()  # type: ignore[attr-defined]
    shutil.rmtree(TMP, ignore_errors=True)


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_the_api_keeps_its_openapi_document(case: schemathesis.Case, role: str) -> None:
    response = case.call_and_validate(headers={"Authorization": AUTH[role]})  # every check the config enables
    STATUSES[role][response.status_code] += 1


def test_every_check_is_on_and_only_run_start_is_left_out() -> None:
    """The fuzz test above is as strong as its configuration: all of schemathesis' checks, every operation
    but run start."""
    checks = schema.config.checks_config_for()
    off = [name for name in ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                             "response_schema_conformance", "response_headers_conformance",
                             "positive_data_acceptance", "negative_data_rejection", "missing_required_header",
                             "ignored_auth", "unsupported_method") if not getattr(checks, name).enabled]
    assert not off
    fuzzed = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    documented = {(m.upper(), PREFIX + p if not p.startswith(PREFIX) else p)
                  for p, ops in APP.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert documented - {(m, PREFIX + p if not p.startswith(PREFIX) else p) for m, p in fuzzed} == {
        (EXCLUDED[1], EXCLUDED[0])}
    allowed = {(op.method.upper(), op.path): schema.config.checks_config_for(operation=op).positive_data_acceptance
               for op in (r.ok() for r in schema.get_all_operations())}
    for method, path, why in BUSINESS_422:  # each exception names a real operation, and only those have it
        assert "422" in allowed.pop((method, path)).expected_statuses, why
    assert not [key for key, check in allowed.items() if "422" in check.expected_statuses]


def test_the_fuzzing_was_authenticated() -> None:
    """Not vacuous: the fuzzer got past the token check (not everything was 401) for every role."""
    for role, seen in STATUSES.items():
        if not seen:
            pytest.skip("the fuzz test did not run in this session (deselected?)")
        assert sum(n for status, n in seen.items() if status != 401) > sum(seen.values()) // 2, (role, seen)
