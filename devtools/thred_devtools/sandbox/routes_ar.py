"""Receivables routes: invoice payments, refunds, invoices and payouts.

Payments and refunds are registered before ``invoices/{invoice_id}/`` so "payments" and
"refunds" are never taken for an invoice id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import core, invoices, payments, payouts, refunds, rules
from thred_devtools.sandbox import documented as doc
from thred_devtools.sandbox.documents import status_of
from thred_devtools.sandbox.errors import validation_error
from thred_devtools.sandbox.models import (
    InvoiceCreate,
    InvoiceUpdate,
    PaymentCreate,
    PayoutUpsert,
    RefundCreate,
    RefundPaymentCreate,
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
    idempotency_key,
    idempotent,
    in_range,
    listing,
    one,
    page,
    update,
    write_keyed,
)
from thred_devtools.sandbox.sides import AR
from thred_devtools.sandbox.store import Obj
from thred_devtools.sandbox.web import parse_body, parse_json, q_bool, q_date, q_int, q_list, q_str

router = APIRouter()


# ====================================================================== invoice payments
# (registered before invoices/{invoice_id}/ so "payments" is not taken for an id)


@router.post(B + "/invoices/payments/")
async def create_payment(
    sb: SandboxDep, raw: RawBody, business: Business, request: Request
) -> Response:
    return write_keyed(
        sb, request, business, raw, PaymentCreate, payments.create_payment, doc.PAYMENT_CREATE
    )


def _sort_payments(request: Request, items: list[Obj], amount_field: str) -> list[Obj]:
    ordering = (q_str(request, "ordering") or "desc").strip()
    sort_by = q_str(request, "sort_by") or q_str(request, "sort") or "payment_date"
    descending = True
    if ordering in ("asc", "desc"):
        descending = ordering == "desc"
    else:
        descending = ordering.startswith("-")
        sort_by = ordering.lstrip("-+")
    keys: dict[str, Callable[[Obj], Any]] = {
        "payment_date": lambda p: (p["payment_date"], p["_seq"]),
        "amount": lambda p: (p[amount_field], p["_seq"]),
        "created_at": lambda p: p["_seq"],
    }
    if sort_by not in keys:
        raise validation_error({"sort_by": [f"Must be one of: {', '.join(keys)}."]})
    return sorted(items, key=keys[sort_by], reverse=descending)


@router.get(B + "/invoices/payments/")
async def list_payments(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        scope = business["id"]
        items = by_external_id(sb, request, scope, "invoice_payments")
        invoice_id = q_str(request, "invoice_id")
        if items is None:
            items = (
                sb.store.lookup("payments_by_invoice", invoice_id)
                if invoice_id
                else sb.store.scan(scope, "invoice_payments")
            )
        customers = q_list(request, "customer_id")
        status = q_list(request, "status")
        method = q_list(request, "payment_method")
        processor = q_str(request, "payment_processor")
        fully = q_bool(request, "is_fully_allocated")
        lo = q_int(request, "min_amount")
        hi = q_int(request, "max_amount")
        start = q_date(request, "payment_date_start") or q_date(request, "date_from")
        end = q_date(request, "payment_date_end") or q_date(request, "date_to")
        out = []
        for p in items:
            if p["_scope"] != scope:
                continue
            allocated = sum(a["amount_cents"] for a in p["allocations"])
            if (
                (customers is None or p["customer_id"] in customers)
                and (
                    invoice_id is None
                    or any(a["invoice_id"] == invoice_id for a in p["allocations"])
                )
                and (status is None or p["status"] in status)
                and (method is None or p["payment_method"] in method)
                and (processor is None or p.get("payment_processor") == processor)
                and (fully is None or (allocated >= p["total_amount_cents"]) == fully)
                and (lo is None or p["total_amount_cents"] >= lo)
                and (hi is None or p["total_amount_cents"] <= hi)
                and in_range(p["payment_date"], start, end)
            ):
                out.append(p)
        out = _sort_payments(request, out, "total_amount_cents")
        return page(sb, request, out, doc.PAYMENT, lambda p: payments.payment_view(sb, p))


@router.get(B + "/invoices/payments/{payment_id}/")
async def get_payment(sb: SandboxDep, business: Business, payment_id: str) -> Response:
    return detail(
        sb,
        business,
        ("invoice_payments", payment_id),
        doc.PAYMENT,
        lambda o: payments.payment_view(sb, o),
    )


@router.post(B + "/invoices/payments/{payment_id}/delete/")
async def delete_payment(sb: SandboxDep, business: Business, payment_id: str) -> Response:
    return delete_settlement(sb, business, ("invoice_payments", payment_id), "payment")


# ====================================================================== refunds


add_write(
    router, "POST", "/invoices/refunds/", RefundCreate, refunds.create_refund, doc.REFUND, "refunds"
)


@router.get(B + "/invoices/refunds/")
async def list_refunds(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        scope = business["id"]
        items = listing(sb, request, scope, "refunds")
        invoice_id = q_str(request, "invoice_id")
        customer_id = q_str(request, "customer_id")
        status = q_list(request, "status")
        items = [
            r
            for r in items
            if (invoice_id is None or r["invoice_id"] == invoice_id)
            and (customer_id is None or r["customer_id"] == customer_id)
            and (
                status is None
                or refunds.refund_status(r["amount_cents"], refunds.refund_paid(sb, r)) in status
            )
        ]
        return page(sb, request, items, doc.REFUND, lambda r: refunds.refund_view(sb, r))


@router.get(B + "/invoices/refunds/{refund_id}/")
async def get_refund(sb: SandboxDep, business: Business, refund_id: str) -> Response:
    return detail(
        sb, business, ("refunds", refund_id), doc.REFUND, lambda o: refunds.refund_view(sb, o)
    )


@router.post(B + "/invoices/refunds/{refund_id}/payments/")
async def create_refund_payment(
    sb: SandboxDep, raw: RawBody, business: Business, request: Request, refund_id: str
) -> Response:
    with sb.store.transaction():
        refund = core.get_owned(sb, "refunds", business, refund_id)
        status, out = idempotent(
            sb,
            business["id"],
            "refund_payments",
            idempotency_key(request),
            lambda: refunds.create_refund_payment(
                sb, business, refund, parse_body(RefundPaymentCreate, parse_json(raw))
            ),
        )
    return one(sb, doc.REFUND_PAYMENT, out, status)


@router.get(B + "/invoices/refunds/{refund_id}/payments/")
async def list_refund_payments(
    sb: SandboxDep, business: Business, request: Request, refund_id: str
) -> Response:
    with sb.store.lock:
        refund = core.get_owned(sb, "refunds", business, refund_id)
        items = sb.store.lookup("refund_payments_by_refund", refund["id"])
        ext = q_str(request, "external_id")
        items = [rp for rp in items if ext is None or rp.get("external_id") == ext]
        return page(
            sb, request, items, doc.REFUND_PAYMENT, lambda rp: refunds.refund_payment_view(sb, rp)
        )


# ====================================================================== invoices


add_write(
    router, "POST", "/invoices/", InvoiceCreate, invoices.create_invoice, doc.INVOICE, "invoices"
)


@router.get(B + "/invoices/")
async def list_invoices(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        scope = business["id"]
        items = by_external_id(sb, request, scope, "invoices")
        customers = q_list(request, "customer_id")
        if items is None:
            if customers and len(customers) == 1:
                items = sb.store.lookup("invoices_by_customer", customers[0])
            else:
                items = sb.store.scan(scope, "invoices")
        cust_ext = q_str(request, "customer_external_id")
        cust_ext_id = None
        if cust_ext is not None:
            found = sb.store.find(scope, "customers", "external_id", cust_ext)
            cust_ext_id = found["id"] if found else "-none-"
        status = [s.upper() for s in (q_list(request, "status") or [])] or None
        due_start, due_end = q_date(request, "due_at_start"), q_date(request, "due_at_end")
        sent_start, sent_end = q_date(request, "sent_at_start"), q_date(request, "sent_at_end")
        lo, hi = q_int(request, "min_amount"), q_int(request, "max_amount")
        out = [
            inv
            for inv in items
            if inv["_scope"] == scope
            and (customers is None or inv["customer_id"] in customers)
            and (cust_ext_id is None or inv["customer_id"] == cust_ext_id)
            and (status is None or status_of(sb, AR, inv) in status)
            and in_range(inv.get("due_at"), due_start, due_end)
            and in_range(inv.get("sent_at"), sent_start, sent_end)
            and (lo is None or inv[rules.F_TOTAL] >= lo)
            and (hi is None or inv[rules.F_TOTAL] <= hi)
        ]
        return page(sb, request, out, doc.INVOICE, lambda inv: invoices.invoice_view(sb, inv))


@router.get(B + "/invoices/{invoice_id}/")
async def get_invoice(sb: SandboxDep, business: Business, invoice_id: str) -> Response:
    return detail(
        sb, business, ("invoices", invoice_id), doc.INVOICE, lambda o: invoices.invoice_view(sb, o)
    )


@router.put(B + "/invoices/{invoice_id}/")
async def update_invoice(
    sb: SandboxDep, raw: RawBody, business: Business, invoice_id: str
) -> Response:
    return update(
        sb,
        business,
        raw,
        ("invoices", invoice_id),
        InvoiceUpdate,
        invoices.update_invoice,
        doc.INVOICE,
    )


@router.post(B + "/invoices/{invoice_id}/void/")
async def void_invoice(sb: SandboxDep, business: Business, invoice_id: str) -> Response:
    with sb.store.transaction():  # body ignored: rules.LIFECYCLE_BODIES_IGNORED
        status, out = invoices.void_invoice(
            sb, core.get_owned(sb, "invoices", business, invoice_id)
        )
    return one(sb, doc.INVOICE, out, status)


# ====================================================================== payouts


add_write(router, "POST", "/payouts/", PayoutUpsert, payouts.upsert_payout, doc.PAYOUT, "payouts")


@router.get(B + "/payouts/")
async def list_payouts(sb: SandboxDep, business: Business, request: Request) -> Response:
    with sb.store.lock:
        ext = q_str(request, "external_id")  # [doc] partial match
        status = q_list(request, "status")
        start, end = q_date(request, "completed_at_start"), q_date(request, "completed_at_end")
        lo, hi = q_int(request, "min_amount"), q_int(request, "max_amount")
        items = [
            p
            for p in sb.store.scan(business["id"], "payouts")
            if (ext is None or ext in (p.get("external_id") or ""))
            and (status is None or p["status"] in status)
            and in_range(p.get("completed_at"), start, end)
            and (lo is None or p["paid_out_amount_cents"] >= lo)
            and (hi is None or p["paid_out_amount_cents"] <= hi)
        ]
        return page(sb, request, items, doc.PAYOUT, lambda p: payouts.payout_view(sb, p))


@router.get(B + "/payouts/{payout_id}/")
async def get_payout(sb: SandboxDep, business: Business, payout_id: str) -> Response:
    return detail(
        sb, business, ("payouts", payout_id), doc.PAYOUT, lambda o: payouts.payout_view(sb, o)
    )
