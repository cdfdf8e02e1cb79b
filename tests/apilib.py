"""The service as a test drives it: an app on a private store, a client, bearer headers, a seeded booking.

Several test modules need the same set-up (and had copies of it); their fixtures call these plain
functions, so each module still chooses its own settings, users and `raise_server_exceptions`.
`certlab_main` runs the real command line (`certlab serve` among it) in the test's process.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lab.api.app import create_app
from lab.api.settings import ApiSettings
from lab.cli import main
from lab.store.accounts import add_user
from lab.store.db import Store
from lab.store.models import Booking, Product, User
from lab.store.unit import unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIR = ROOT / "inventory" / "products" / "TH-100"
API = "/api/v1"


def make_app(tmp_path: Path, **overrides: object) -> FastAPI:
    """An app on a private SQLite store under `tmp_path` and the simulated lab's inventory; `overrides`
    are ApiSettings fields (e.g. data_dir, rate_per_second). `serving` closes its store."""
    settings = {"inventory": ROOT / "inventory" / "sim.yaml", "data_dir": tmp_path, "reports_dir": tmp_path / "reports",
                **overrides}
    return create_app(ApiSettings(**settings))  # type: ignore[arg-type]


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[FastAPI]:
    """`app` for a `with` block, its store closed after it."""
    try:
        yield app
    finally:
        app.state.services.store.close()


@contextlib.contextmanager
def client_of(app: FastAPI, *, raise_server_exceptions: bool = True) -> Iterator[TestClient]:
    """A TestClient of `app`, its lifespan running for a `with` block."""
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield client


def bearer(store: Store, name: str, role: str, org: str) -> dict[str, str]:
    """A new user's Authorization header."""
    _, token = add_user(store, name=name, role=role, org=org)
    return {"Authorization": f"Bearer {token}"}


def post_product(client: TestClient, headers: dict[str, str]) -> int:
    """A TH-100 product made through the API by the user of `headers`: its id."""
    r = client.post(f"{API}/products", headers=headers, json={"model": "TH-100", "name": "Thermostat",
                                                              "vendor": "Certlab Sim Devices"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


# Fixtures a test module takes by importing them by name (`from apilib import app, client, ...`).

@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    """The app of `make_app` for one test."""
    with serving(make_app(tmp_path)) as made:
        yield made


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """Its client; a server error is a 500 response to look at, not an exception."""
    with client_of(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def acme(app: FastAPI) -> dict[str, str]:
    """A manufacturer of the organisation Acme."""
    return bearer(app.state.services.store, "alice", "manufacturer", "Acme")


@pytest.fixture
def product(client: TestClient, acme: dict[str, str]) -> int:
    """Acme's TH-100 product."""
    return post_product(client, acme)


def seed_booking(store: Store, owner: User, status: str = "accepted") -> int:
    """A TH-100 product and a booking of it (examples suite, the sample ICS/IXIT) in `owner`'s
    organisation, written straight to the store: the booking's id."""
    with unit(store) as s:
        product = Product(org_id=owner.org_id, model="TH-100", name="Thermostat", vendor="Certlab Sim Devices")
        s.add(product)
        s.flush()
        booking = Booking(org_id=owner.org_id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                          suites=["examples"], ics=(PRODUCT_DIR / "ics.yaml").read_text(encoding="utf-8"),
                          ixit=(PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8"), status=status,
                          created_by=owner.id)
        s.add(booking)
        s.flush()
        return booking.id


def certlab_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The real command line in this process: exit status and what it wrote to stderr."""
    monkeypatch.setattr(sys, "argv", ["certlab", *args])
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err  # type: ignore[return-value]
