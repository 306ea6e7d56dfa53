"""Payables routes: bill payments, bills and vendor credits.

Bill payments are registered before ``bills/{bill_id}/`` so "payments" is never taken for
a bill id.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import bill_payments, bills, vendor_credits
from thred_devtools.sandbox import documented as doc
from thred_devtools.sandbox.documents import status_of
from thred_devtools.sandbox.models import (
    BillCreate,
    BillPaymentCreate,
    BillUpdate,
    VendorCreditCreate,
)
from thred_devtools.sandbox.routes import (
    B,
    Business,
    RawBody,
    SandboxDep,
    add_write,
    by_external_id,
    delete_settlement,
    detail,
    in_range,
    listing,
    page,
    update,
    write_keyed,
)
from thred_devtools.sandbox.sides import AP
from thred_devtools.sandbox.web import q_date, q_list, q_str

router = APIRouter()


# ====================================================================== bill payments


@router.post(B + "/bills/payments/")
async def create_bill_payment(
    sb: SandboxDep, raw: RawBody, business: Business, request: Request
) -> Response:
    return write_keyed(
        sb,
        request,
        business,
        raw,
        BillPaymentCreate,
        bill_payments.create_bill_payment,
        doc.BILL_PAYMENT,
    )


@router.get(B + "/bills/payments/")
async def list_bill_payments(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        scope = business["id"]
        items = by_external_id(sb, request, scope, "bill_payments")
        bill_id = q_str(request, "bill_id")
        if items is None:
            items = (
                sb.store.lookup("bill_payments_by_bill", bill_id)
                if bill_id
                else sb.store.scan(scope, "bill_payments")
            )
        vendors = q_list(request, "vendor_id")
        status = q_list(request, "status")
        method = q_list(request, "payment_method")
        start, end = q_date(request, "payment_date_start"), q_date(request, "payment_date_end")
        items = [
            p
            for p in items
            if p["_scope"] == scope
            and (vendors is None or p["vendor_id"] in vendors)
            and (bill_id is None or any(a["bill_id"] == bill_id for a in p["allocations"]))
            and (status is None or p["status"] in status)
            and (method is None or p["payment_method"] in method)
            and in_range(p["payment_date"], start, end)
        ]
        return page(
            sb, request, items, doc.BILL_PAYMENT, lambda p: bill_payments.bill_payment_view(sb, p)
        )


@router.get(B + "/bills/payments/{bill_payment_id}/")
async def get_bill_payment(sb: SandboxDep, business: Business, bill_payment_id: str) -> Response:
    return detail(
        sb,
        business,
        ("bill_payments", bill_payment_id),
        doc.BILL_PAYMENT,
        lambda o: bill_payments.bill_payment_view(sb, o),
    )


@router.post(B + "/bills/payments/{bill_payment_id}/delete/")
async def delete_bill_payment(sb: SandboxDep, business: Business, bill_payment_id: str) -> Response:
    return delete_settlement(sb, business, ("bill_payments", bill_payment_id), "bill_payment")


# ====================================================================== bills


add_write(router, "POST", "/bills/", BillCreate, bills.create_bill, doc.BILL, "bills")


@router.get(B + "/bills/")
async def list_bills(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        scope = business["id"]
        items = listing(sb, request, scope, "bills")
        vendors = q_list(request, "vendor_id")
        status = [s.upper() for s in (q_list(request, "status") or [])] or None
        due_start, due_end = q_date(request, "due_at_start"), q_date(request, "due_at_end")

        items = [
            b
            for b in items
            if (vendors is None or b["vendor_id"] in vendors)
            and (status is None or status_of(sb, AP, b) in status)
            and in_range(b.get("due_at"), due_start, due_end)
        ]
        return page(sb, request, items, doc.BILL, lambda b: bills.bill_view(sb, b))


@router.get(B + "/bills/{bill_id}/")
async def get_bill(sb: SandboxDep, business: Business, bill_id: str) -> Response:
    return detail(sb, business, ("bills", bill_id), doc.BILL, lambda o: bills.bill_view(sb, o))


@router.put(B + "/bills/{bill_id}/")
async def update_bill(sb: SandboxDep, raw: RawBody, business: Business, bill_id: str) -> Response:
    return update(sb, business, raw, ("bills", bill_id), BillUpdate, bills.update_bill, doc.BILL)


# ====================================================================== vendor credits


add_write(
    router,
    "POST",
    "/vendor-credits/",
    VendorCreditCreate,
    vendor_credits.create_vendor_credit,
    doc.VENDOR_CREDIT,
    "vendor_credits",
)


@router.get(B + "/vendor-credits/")
async def list_vendor_credits(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        scope = business["id"]
        items = listing(sb, request, scope, "vendor_credits")
        vendor = q_str(request, "vendor") or q_str(request, "vendor_id")
        status = q_list(request, "status")
        start, end = q_date(request, "received_at_start"), q_date(request, "received_at_end")
        views = [
            (c, vendor_credits.vendor_credit_view(sb, c))
            for c in items
            if (vendor is None or c["vendor_id"] == vendor)
            and in_range(c.get("received_at"), start, end)
        ]
        kept = [c for c, v in views if status is None or v["status"] in status]
        return page(
            sb, request, kept, doc.VENDOR_CREDIT, lambda c: vendor_credits.vendor_credit_view(sb, c)
        )


@router.get(B + "/vendor-credits/{credit_id}/")
async def get_vendor_credit(sb: SandboxDep, business: Business, credit_id: str) -> Response:
    return detail(
        sb,
        business,
        ("vendor_credits", credit_id),
        doc.VENDOR_CREDIT,
        lambda o: vendor_credits.vendor_credit_view(sb, o),
    )
