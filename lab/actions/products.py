"""Products: what a manufacturer brings to the lab (one per DUT model in its organisation)."""

from __future__ import annotations

import re

from sqlalchemy import Select, select

from lab.actions.context import Caller, Services
from lab.actions.errors import Conflict, Forbidden, Invalid, NotFound
from lab.actions.tenancy import visible_bookings
from lab.store.bookings import BookingConflict, create_product, products
from lab.store.models import Booking, Product
from lab.store.unit import reading

MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 _.+/-]{0,127}$"
"""A DUT model as on its label and in the ICS (`product.model`); the API schema uses the same pattern."""
MAX_NAME = 256


def _visible_ids(who: Caller) -> tuple[int | None, Select | None]:
    """(org_id, product-id subquery) narrowing products to what `who` may see.

    A manufacturer sees its organisation's, an engineer all, a certifier those of the bookings
    released to it.
    """
    if who.role == "manufacturer":
        return who.org_id, None
    if who.role == "certifier":
        return None, visible_bookings(who).with_only_columns(Booking.product_id)
    return None, None


def checked_model(value: str, loc: list[str | int]) -> str:
    """The model, stripped; Invalid naming `loc` unless it is a model name."""
    model = value.strip()
    if not re.match(MODEL_PATTERN, model):
        raise Invalid(loc, "model: give the DUT model as on its label (letters, digits, space, _ . + / -; "
                           "at most 128 characters, starting with a letter or digit), e.g. TH-100")
    return model


def _text(value: str, field: str, what: str) -> str:
    text = value.strip()
    if not text or len(text) > MAX_NAME:
        raise Invalid(["body", field], f"{field}: give the {what} (1 to {MAX_NAME} characters)")
    return text


def add_product(svc: Services, who: Caller, *, model: str, name: str, vendor: str) -> Product:
    """A new product of the caller's organisation (manufacturers); Conflict if it already has that model."""
    if who.role != "manufacturer":
        raise Forbidden(f"a {who.role} may not do this; it takes: manufacturer")
    model = checked_model(model, ["body", "model"])
    name = _text(name, "name", "product's name, e.g. Smart thermostat")
    vendor = _text(vendor, "vendor", "vendor's name as on the product")
    try:
        return create_product(svc.store, org_id=who.org_id, model=model, name=name, vendor=vendor)
    except BookingConflict as exc:
        raise Conflict(str(exc)) from None


def list_products(svc: Services, who: Caller, *, limit: int | None = None) -> list[Product]:
    """The products `who` may see, oldest first (at most `limit`)."""
    org_id, ids = _visible_ids(who)
    query = select(Product).order_by(Product.id).limit(limit)
    if org_id is not None:
        query = query.where(Product.org_id == org_id)
    if ids is not None:
        query = query.where(Product.id.in_(ids))
    with reading(svc.store) as s:
        return list(s.scalars(query))


def get_product(svc: Services, who: Caller, product_id: int) -> Product:
    """One product `who` may see, else NotFound (another organisation's too)."""
    org_id, ids = _visible_ids(who)
    rows = products(svc.store, org_id=org_id, ids=ids, product_id=product_id)
    if not rows:
        raise NotFound("product", product_id)
    return rows[0]
