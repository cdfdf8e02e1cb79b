"""Products: what a manufacturer brings to the lab (one per DUT model in its organisation)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import Select

from lab.api.deps import AnyRole, Caller, Manufacturer, ServicesDep
from lab.api.schemas.bookings import IdPath, ProductCreate, ProductOut
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors
from lab.actions.tenancy import not_found, visible_bookings
from lab.store.bookings import BookingConflict, create_product, products
from lab.store.models import Booking

router = APIRouter(prefix="/products", tags=["products"], responses=errors(*AUTHENTICATED))


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


@router.post("", response_model=ProductOut, status_code=status.HTTP_201_CREATED,
             summary="Add a product of your organisation (manufacturers)",
             responses=errors(403, *BODY, 422, why={409: "Your organisation already has that model"}))
def add_product(body: ProductCreate, who: Manufacturer, svc: ServicesDep) -> ProductOut:
    try:
        row = create_product(svc.store, org_id=who.org_id, model=body.model, name=body.name, vendor=body.vendor)
    except BookingConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return ProductOut.of(row)


@router.get("", response_model=list[ProductOut], summary="The products you may see, oldest first")
def list_products(who: AnyRole, svc: ServicesDep) -> list[ProductOut]:
    org_id, ids = _visible_ids(who)
    return [ProductOut.of(p) for p in products(svc.store, org_id=org_id, ids=ids)]


@router.get("/{product_id}", response_model=ProductOut, responses=errors(404, 422), summary="One product (404 if not yours)")
def get_product(product_id: IdPath, who: AnyRole, svc: ServicesDep) -> ProductOut:
    org_id, ids = _visible_ids(who)
    rows = products(svc.store, org_id=org_id, ids=ids, product_id=product_id)
    if not rows:
        raise not_found("product", product_id)
    return ProductOut.of(rows[0])
