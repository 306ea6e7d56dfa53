"""Business routes: create (partner token), list, detail, PATCH and tax codes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import core
from thred_devtools.sandbox import documented as doc
from thred_devtools.sandbox.models import BusinessCreate, BusinessPatch
from thred_devtools.sandbox.routes import (
    B,
    Business,
    P,
    Partner,
    RawBody,
    SandboxDep,
    add_write,
    idempotency_key,
    idempotent,
    listing,
    one,
    page,
)
from thred_devtools.sandbox.web import parse_body, parse_json, q_bool, q_str

router = APIRouter()


@router.post(P + "/businesses/")
async def create_business(sb: SandboxDep, raw: RawBody, who: Partner, request: Request) -> Response:
    with sb.store.transaction():
        status, out = idempotent(
            sb,
            f"partner:{who.partner_id}",
            "businesses",
            idempotency_key(request),
            lambda: core.create_business(
                sb, who.partner_id, parse_body(BusinessCreate, parse_json(raw))
            ),
        )
    return one(sb, doc.BUSINESS_CREATE, out, status)


@router.get(P + "/businesses/")
async def list_businesses(sb: SandboxDep, who: Partner, request: Request) -> Response:
    with sb.store.lock:
        items = listing(sb, request, f"partner:{who.partner_id}", "businesses")
        country = q_str(request, "country")
        entity_type = q_str(request, "entity_type")
        archived = q_bool(request, "is_archived")
        items = [
            b
            for b in items
            if (country is None or b["country"] == country.upper())
            and (entity_type is None or b.get("entity_type") == entity_type)
            and (archived is None or bool(b.get("is_archived")) == archived)
        ]
        return page(sb, request, items, doc.BUSINESS, core.business_view)


@router.get(B + "/")
async def get_business(sb: SandboxDep, business: Business) -> Response:
    return one(sb, doc.BUSINESS, core.business_view(business))


add_write(router, "PATCH", "/", BusinessPatch, core.patch_business, doc.BUSINESS)


@router.get(B + "/tax-codes/")
async def tax_codes(sb: SandboxDep, business: Business) -> Response:
    return one(sb, doc.TAX_CODES, core.tax_codes_view(business))
