"""Schemathesis over the booking API's own OpenAPI document: no input makes a server error.

In-process (schemathesis' ASGI transport, no server, no port), once as a lab engineer and once
as a manufacturer, each on a private store holding a product and a booking of its own, so
generated ids sometimes hit real objects. Bounded: few examples per operation, a fixed seed,
no deadline, and the slow-data health checks off (a SQLite write per request is not slow code).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.checks import not_a_server_error

from lab.api.app import PREFIX, create_app
from lab.api.settings import ApiSettings
from lab.store.accounts import add_user

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ROOT / "inventory" / "products" / "TH-100"
MAX_EXAMPLES = 15  # per operation and role: ~30 operations x 2 roles stays well under a minute
SEED = 303645
ROLES = ("engineer", "manufacturer")
STATUSES: dict[str, Counter[int]] = {role: Counter() for role in ROLES}  # what the fuzzing got, per role
# Starting a run or making a report spawns `certlab run` / `certlab report` on the lab's real
# inventory: a fuzzer that happened to accept booking 1 would drive the benches. Those two are
# covered end to end by tests/test_api_flow.py on a private simulated lab.
EXCLUDED_PATHS: tuple[str, ...] = (f"{PREFIX}/bookings/{{booking_id}}/runs", f"{PREFIX}/runs/{{run_id}}/report",
                                   f"{PREFIX}/runs/{{run_id}}/approve")


def config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large", "large_base_example"],
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "mode": "all",
                       "with-security-parameters": False, "database": "none"},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    })


def seed(app: object, headers: dict[str, str]) -> None:
    """A product and a booking (if those routes are there), so ids 1 exist for the fuzzer."""
    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        made = client.post(f"{PREFIX}/products", headers=headers,
                           json={"model": "TH-100", "name": "Thermostat", "vendor": "Certlab Sim Devices"})
        if made.status_code == 201:
            client.post(f"{PREFIX}/bookings", headers=headers, json={
                "product_id": made.json()["id"], "firmware_version": "1.4.0", "edition": "v2",
                "ics": (PRODUCT / "ics.yaml").read_text(), "ixit": (PRODUCT / "ixit.yaml").read_text()})


def _app() -> tuple[object, Path, dict[str, str]]:
    """The app on a store of its own, made at import: schemathesis' eager `parametrize` needs the
    schema at collection (its lazy `from_fixture` does not run under pytest 9: it sets a node's
    `_nodeid`), before the per-test CERTLAB_DATA_DIR exists, so every path here is explicit."""
    tmp = Path(tempfile.mkdtemp(prefix="certlab-schemathesis-"))
    app = create_app(ApiSettings(database_url=f"sqlite:///{tmp / 'certlab.db'}", data_dir=tmp / "data",
                                 reports_dir=tmp / "reports", rate_per_second=1e6, rate_burst=1e6))
    store = app.state.services.store
    tokens = {role: add_user(store, name=name, role=role, org=org)[1]
              for name, role, org in (("maker", "manufacturer", "Acme"), ("lab", "engineer", "Test Lab"))}
    return app, tmp, {role: f"Bearer {token}" for role, token in tokens.items()}


APP, TMP, AUTH = _app()
schema = schemathesis.openapi.from_asgi(f"{PREFIX}/openapi.json", APP, config=config())
for _path in EXCLUDED_PATHS:
    schema = schema.exclude(path=_path, method="POST")


@pytest.fixture(scope="module", autouse=True)
def seeded() -> Iterator[None]:
    seed(APP, {"Authorization": AUTH["manufacturer"]})
    yield
    APP.state.services.store.close()  # type: ignore[attr-defined]
    shutil.rmtree(TMP, ignore_errors=True)
    APP.state.services.store.close()  # type: ignore[attr-defined]
    shutil.rmtree(TMP, ignore_errors=True)


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_no_input_makes_a_server_error(case: schemathesis.Case, role: str) -> None:
    response = case.call_and_validate(headers={"Authorization": AUTH[role]}, checks=[not_a_server_error])
    STATUSES[role][response.status_code] += 1


def test_the_fuzzing_was_authenticated() -> None:
    """Not vacuous: the fuzzer got past the token check (not everything was 401)."""
    for role, seen in STATUSES.items():
        if not seen:
            pytest.skip("the fuzz test did not run in this session (deselected?)")
        assert sum(n for status, n in seen.items() if status != 401) > sum(seen.values()) // 2, (role, seen)
