"""Products: what a manufacturer brings to the lab (one per DUT model in its organisation); lab.actions.products."""

from __future__ import annotations

from fastapi import APIRouter, status

from lab.actions import products as actions
from lab.api.deps import AnyRole, Manufacturer, ServicesDep
from lab.api.schemas.bookings import IdPath, ProductCreate, ProductOut
from lab.api.schemas.errors import AUTHENTICATED, BODY, errors

router = APIRouter(prefix="/products", tags=["products"], responses=errors(*AUTHENTICATED))


@router.post("", response_model=ProductOut, status_code=status.HTTP_201_CREATED,
             summary="Add a product of your organisation (manufacturers)",
             responses=errors(403, *BODY, 422, why={409: "Your organisation already has that model"}))
def add_product(body: ProductCreate, who: Manufacturer, svc: ServicesDep) -> ProductOut:
    return ProductOut.of(actions.add_product(svc, who, model=body.model, name=body.name, vendor=body.vendor))


@router.get("", response_model=list[ProductOut], summary="The products you may see, oldest first")
def list_products(who: AnyRole, svc: ServicesDep) -> list[ProductOut]:
    return [ProductOut.of(p) for p in actions.list_products(svc, who)]


@router.get("/{product_id}", response_model=ProductOut, responses=errors(404, 422), summary="One product (404 if not yours)")
def get_product(product_id: IdPath, who: AnyRole, svc: ServicesDep) -> ProductOut:
    return ProductOut.of(actions.get_product(svc, who, product_id))
