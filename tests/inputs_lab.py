"""Bookings for tests of the samples, firmware and assessor's-record actions and pages: made directly
in the store of an app from tests/webui.py (skips the ~0.3 s ICS/IXIT validation), and callers for
its users, so an action can be called as the API and the pages call it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import select

from lab.actions.context import Caller, Services
from lab.store.models import Booking, Organisation, Product, User
from lab.store.unit import reading, unit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_DIR = ROOT / "inventory" / "products" / "TH-100"
ICS = (PRODUCT_DIR / "ics.yaml").read_text(encoding="utf-8")
IXIT = (PRODUCT_DIR / "ixit.yaml").read_text(encoding="utf-8")
DECIDED = (PRODUCT_DIR / "assessments.yaml").read_text(encoding="utf-8")
PERFORMED = ('\nperformed:\n  "6-1-2":\n    verdict: PASS\n    reason: The privacy notice says what the '
             'IXIT says.\n    date: 2026-11-21\n    samples: [TH100-0001]\n    evidence: [evidence/{name}]\n')


def services(app: FastAPI) -> Services:
    return app.state.services


def caller(app: FastAPI, name: str) -> Caller:
    with reading(services(app).store) as s:
        user, org = s.execute(select(User, Organisation).join(Organisation, Organisation.id == User.org_id)
                              .where(User.name == name)).one()
        return Caller(id=user.id, name=user.name, role=user.role, org_id=org.id, org=org.name)


def add_booking(app: FastAPI, owner: str = "maker", *, model: str = "TH-100", status: str = "requested",
                ixit: str = IXIT) -> int:
    """A booking of `owner`'s organisation for a product of `model` (made if missing), in `status`."""
    who = caller(app, owner)
    with unit(services(app).store) as s:
        product = s.query(Product).filter_by(org_id=who.org_id, model=model).first()
        if product is None:
            product = Product(org_id=who.org_id, model=model, name="Thermostat", vendor="Certlab Sim Devices")
            s.add(product)
            s.flush()
        booking = Booking(org_id=who.org_id, product_id=product.id, firmware_version="1.4.0", edition="v2",
                          suites=["en303645"], ics=ICS, ixit=ixit, status=status, created_by=who.id)
        s.add(booking)
        s.flush()
        return booking.id


def set_status(app: FastAPI, booking_id: int, status: str) -> None:
    with unit(services(app).store) as s:
        s.get(Booking, booking_id).status = status
