"""Customer and vendor routes (create, list, detail, archive and unarchive)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import core, parties, rules
from thred_devtools.sandbox import documented as doc
from thred_devtools.sandbox.models import CustomerCreate, VendorCreate
from thred_devtools.sandbox.routes import (
    B,
    Business,
    SandboxDep,
    add_write,
    detail,
    extended_only,
    listing,
    one,
    page,
)
from thred_devtools.sandbox.sides import AP, AR, Side
from thred_devtools.sandbox.state import Sandbox
from thred_devtools.sandbox.store import Obj
from thred_devtools.sandbox.web import q_bool, q_str

router = APIRouter()


def _set_archived(
    sb: Sandbox, side: Side, business: Obj, party_id: str, archived: bool
) -> Response:
    # body ignored: rules.LIFECYCLE_BODIES_IGNORED
    with sb.store.transaction():
        party = core.get_owned(sb, side.parties, business, party_id)
        status, out = parties.set_archived(sb, side, party, archived)
    return one(sb, doc.CUSTOMER if side is AR else doc.VENDOR, out, status)


# ====================================================================== customers


add_write(
    router,
    "POST",
    "/customers/",
    CustomerCreate,
    parties.create_customer,
    doc.CUSTOMER,
    "customers",
)


@router.get(B + "/customers/")
async def list_customers(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        items = listing(sb, request, business["id"], "customers")
        archived = q_bool(request, "is_archived")  # True: only archived; False: only active
        include_archived = q_bool(request, "include_archived")
        if include_archived is None:
            include_archived = rules.CUSTOMER_LIST_INCLUDES_ARCHIVED
        if archived is None and not include_archived:
            archived = False
        email = q_str(request, "email")
        search = (q_str(request, "search") or "").lower()
        items = [
            c
            for c in items
            if (archived is None or c["is_archived"] == archived)
            and (email is None or c.get("email") == email)
            and (not search or search in parties.display_name(c).lower())
        ]
        return page(sb, request, items, doc.CUSTOMER, lambda c: parties.customer_view(sb, c))


@router.get(B + "/customers/{customer_id}/")
async def get_customer(sb: SandboxDep, business: Business, customer_id: str) -> Response:
    return detail(
        sb,
        business,
        ("customers", customer_id),
        doc.CUSTOMER,
        lambda o: parties.customer_view(sb, o),
    )


@router.post(B + "/customers/{customer_id}/archive/")
async def archive_customer(sb: SandboxDep, business: Business, customer_id: str) -> Response:
    return _set_archived(sb, AR, business, customer_id, True)


@router.post(B + "/customers/{customer_id}/unarchive/", dependencies=[Depends(extended_only)])
async def unarchive_customer(sb: SandboxDep, business: Business, customer_id: str) -> Response:
    """Not documented (contract 2.3: "unarchive customer pages: not found"): extended only."""
    return _set_archived(sb, AR, business, customer_id, False)


# ====================================================================== vendors


add_write(router, "POST", "/vendors/", VendorCreate, parties.create_vendor, doc.VENDOR, "vendors")


@router.get(B + "/vendors/")
async def list_vendors(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        items = listing(sb, request, business["id"], "vendors")
        contains = q_str(request, "external_id_contains")
        include_archived = bool(q_bool(request, "include_archived"))
        name = q_str(request, "name")
        name_contains = (q_str(request, "name_contains") or "").lower()
        items = [
            v
            for v in items
            if (include_archived or not v["is_archived"])
            and (contains is None or contains in (v.get("external_id") or ""))
            and (name is None or parties.display_name(v) == name)
            and (not name_contains or name_contains in parties.display_name(v).lower())
        ]
        return page(sb, request, items, doc.VENDOR, lambda v: parties.vendor_view(sb, v))


@router.get(B + "/vendors/{vendor_id}/")
async def get_vendor(sb: SandboxDep, business: Business, vendor_id: str) -> Response:
    return detail(
        sb, business, ("vendors", vendor_id), doc.VENDOR, lambda o: parties.vendor_view(sb, o)
    )


@router.post(B + "/vendors/{vendor_id}/archive/", dependencies=[Depends(extended_only)])
async def archive_vendor(sb: SandboxDep, business: Business, vendor_id: str) -> Response:
    """Not documented (contract 2.4: only unarchive is): extended mode only."""
    return _set_archived(sb, AP, business, vendor_id, True)


@router.post(B + "/vendors/{vendor_id}/unarchive/")
async def unarchive_vendor(sb: SandboxDep, business: Business, vendor_id: str) -> Response:
    return _set_archived(sb, AP, business, vendor_id, False)
