"""The ``/v1/platform/...`` routes (every path ends with a slash, as Thred's do).

Handlers are thin: authenticate, parse, call a service under the store lock (writes inside
one transaction), answer JSON. Authentication always runs before the body is looked at, so
an unauthenticated request never learns anything about validation.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from thred_devtools.sandbox import (
    aging,
    ap,
    core,
    invoices,
    ledger,
    payments,
    payouts,
    refunds,
    reports,
    rules,
)
from thred_devtools.sandbox import documented as doc
from thred_devtools.sandbox.auth import business_access, partner_from_basic, partner_only
from thred_devtools.sandbox.documented import Spec, page_of, shape
from thred_devtools.sandbox.errors import ApiError, conflict, not_found, validation_error
from thred_devtools.sandbox.models import (
    AccountCreate,
    BillCreate,
    BillPaymentCreate,
    BillUpdate,
    BusinessCreate,
    BusinessPatch,
    CustomerCreate,
    InvoiceCreate,
    InvoiceUpdate,
    PaymentCreate,
    PayoutUpsert,
    RefundCreate,
    RefundPaymentCreate,
    VendorCreate,
    VendorCreditCreate,
)
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj
from thred_devtools.sandbox.tokens import mint
from thred_devtools.sandbox.web import (
    paginate,
    parse_body,
    parse_json,
    q_bool,
    q_date,
    q_int,
    q_list,
    q_str,
    respond,
)

router = APIRouter()
P = "/v1/platform"
B = P + "/businesses/{business_id}"
M = TypeVar("M", bound=BaseModel)
Service = Callable[[Sandbox, Obj, Any], tuple[int, dict[str, Any]]]


def sandbox_of(request: Request) -> Sandbox:
    sb: Sandbox = request.app.state.sandbox
    return sb


async def _write(
    request: Request,
    business_id: str,
    model: type[M],
    service: Callable[[Sandbox, Obj, M], tuple[int, dict[str, Any]]],
    spec: Spec,
    endpoint: str | None = None,
) -> Response:
    """Authenticate, parse, run ``service`` in one transaction; answer in the ``spec`` shape.

    With ``endpoint`` set (creates), an ``Idempotency-Key`` header is honoured too: the
    first successful response is cached under the key and replayed with 200.
    """
    sb = sandbox_of(request)
    raw = await request.body()
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        key = _idempotency_key(request) if endpoint else None
        status, out = _idempotent(
            sb,
            business["id"],
            endpoint,
            key,
            lambda: service(sb, business, parse_body(model, parse_json(raw))),
        )
    return respond(status, shape(sb, spec, out))


def _page(
    sb: Sandbox,
    request: Request,
    items: list[Obj],
    spec: Spec,
    view: Callable[[Obj], dict[str, Any]],
) -> Response:
    """One list page (200) of ``items`` rendered by ``view``, in the ``spec`` shape."""
    return respond(200, shape(sb, page_of(spec), paginate(request, items, view)))


def _one(sb: Sandbox, spec: Spec, body: dict[str, Any], status: int = 200) -> Response:
    return respond(status, shape(sb, spec, body))


def _undocumented_route(sb: Sandbox) -> None:
    """Strict mode: answer like an unknown route (the contract records no such page)."""
    if not sb.extended_fields:
        raise StarletteHTTPException(404)


def _idempotent(
    sb: Sandbox,
    scope: str,
    endpoint: str | None,
    key: str | None,
    run: Callable[[], tuple[int, dict[str, Any]]],
) -> tuple[int, dict[str, Any]]:
    if endpoint is None or key is None:
        return run()
    cached = core.idempotent_replay(sb, scope, endpoint, key)
    if cached is not None:
        body = dict(cached["body"])
        if isinstance(body.get("_meta"), dict):
            body["_meta"] = {"created": False, "idempotent_replay": True}
        return rules.REPLAY_STATUS, body
    status, out = run()
    if status == 201:
        core.remember_response(sb, scope, endpoint, key, str(out.get("id")), out)
    return status, out


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > rules.MAX_IDEMPOTENCY_KEY:
        raise validation_error(
            {"Idempotency-Key": [f"Must be 1 to {rules.MAX_IDEMPOTENCY_KEY} characters."]}
        )
    return key


def _by_external_id(sb: Sandbox, request: Request, scope: str, collection: str) -> list[Obj] | None:
    ext = q_str(request, "external_id")
    if ext is None:
        return None
    found = sb.store.find(scope, collection, "external_id", ext)
    return [found] if found else []


def _in_range(value: str | None, start: dt.date | None, end: dt.date | None) -> bool:
    if start is None and end is None:
        return True
    day = core.date_of(value)
    if day is None:
        return False
    return (start is None or day >= start) and (end is None or day <= end)


# ====================================================================== auth


def _body_fields(request: Request, raw: bytes) -> dict[str, Any]:
    """Best-effort read of a token request body (JSON, form or multipart; all optional)."""
    ctype = request.headers.get("content-type", "")
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return {}
    if "json" in ctype or text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    if "x-www-form-urlencoded" in ctype:
        return {k: v[0] for k, v in parse_qs(text).items()}
    return {}  # multipart: only the Basic header matters


@router.post(P + "/oauth2/token/")
async def partner_token(request: Request) -> Response:
    sb = sandbox_of(request)
    raw = await request.body()
    partner_id = partner_from_basic(sb, request)
    fields = _body_fields(request, raw)
    grant = fields.get("grant_type")
    if grant is not None and grant != "client_credentials":
        raise ApiError(
            400,
            "validation_error",
            "Unsupported grant_type.",
            {"grant_type": ['Must be "client_credentials".']},
        )
    client_id = fields.get("client_id")
    if client_id is not None and client_id != partner_id:
        raise ApiError(
            401, rules.BAD_CREDENTIALS_CODE, "client_id does not match the Basic credentials."
        )
    ttl = sb.config.token_ttl_s
    return _one(
        sb,
        doc.PARTNER_TOKEN,
        {
            "access_token": mint(sb.secret, partner_id, ttl),
            "token_type": rules.TOKEN_TYPE,
            "expires_in": ttl,
            "scope": rules.PARTNER_TOKEN_SCOPE,
        },
    )


@router.post(P + "/{business_id}/oauth2/token/")
async def business_token(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        who = partner_only(sb, request)
        business = sb.store.get("businesses", business_id)
        if business is None or business["partner_id"] != who.partner_id:
            raise not_found("businesses", "business")
    ttl = sb.config.token_ttl_s
    return _one(
        sb,
        doc.BUSINESS_TOKEN,
        {
            "access_token": mint(sb.secret, who.partner_id, ttl, business_id),
            "token_type": rules.TOKEN_TYPE,
            "expires_in": ttl,
            "scope": rules.BUSINESS_TOKEN_SCOPE,
            "business_id": business_id,
        },
    )


# ====================================================================== businesses


@router.post(P + "/businesses/")
async def create_business(request: Request) -> Response:
    sb = sandbox_of(request)
    raw = await request.body()
    with sb.store.transaction():
        who = partner_only(sb, request)
        status, out = _idempotent(
            sb,
            f"partner:{who.partner_id}",
            "businesses",
            _idempotency_key(request),
            lambda: core.create_business(
                sb, who.partner_id, parse_body(BusinessCreate, parse_json(raw))
            ),
        )
    return _one(sb, doc.BUSINESS_CREATE, out, status)


@router.get(P + "/businesses/")
async def list_businesses(request: Request) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        who = partner_only(sb, request)
        scope = f"partner:{who.partner_id}"
        items = _by_external_id(sb, request, scope, "businesses")
        if items is None:
            items = sb.store.scan(scope, "businesses")
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
        return _page(sb, request, items, doc.BUSINESS, core.business_view)


@router.get(B + "/")
async def get_business(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        return _one(sb, doc.BUSINESS, core.business_view(business))


@router.patch(B + "/")
async def patch_business(request: Request, business_id: str) -> Response:
    return await _write(request, business_id, BusinessPatch, core.patch_business, doc.BUSINESS)


@router.get(B + "/tax-codes/")
async def tax_codes(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        return _one(sb, doc.TAX_CODES, core.tax_codes_view(business))


# ====================================================================== customers


@router.post(B + "/customers/")
async def create_customer(request: Request, business_id: str) -> Response:
    return await _write(
        request, business_id, CustomerCreate, core.create_customer, doc.CUSTOMER, "customers"
    )


@router.get(B + "/customers/")
async def list_customers(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "customers")
        if items is None:
            items = sb.store.scan(scope, "customers")
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
            and (
                not search
                or search in (c.get("company_name") or c.get("individual_name") or "").lower()
            )
        ]
        return _page(sb, request, items, doc.CUSTOMER, lambda c: core.customer_view(sb, c))


@router.get(B + "/customers/{customer_id}/")
async def get_customer(request: Request, business_id: str, customer_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        customer = core.get_owned(sb, "customers", business, customer_id)
        return _one(sb, doc.CUSTOMER, core.customer_view(sb, customer))


@router.post(B + "/customers/{customer_id}/archive/")
async def archive_customer(request: Request, business_id: str, customer_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.transaction():  # body ignored: rules.LIFECYCLE_BODIES_IGNORED
        business = business_access(sb, request, business_id)
        status, out = core.archive_customer(
            sb, core.get_owned(sb, "customers", business, customer_id)
        )
    return _one(sb, doc.CUSTOMER, out, status)


@router.post(B + "/customers/{customer_id}/unarchive/")
async def unarchive_customer(request: Request, business_id: str, customer_id: str) -> Response:
    """Not documented (contract 2.3: "unarchive customer pages: not found"): extended only."""
    sb = sandbox_of(request)
    _undocumented_route(sb)
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        status, out = core.unarchive_customer(
            sb, core.get_owned(sb, "customers", business, customer_id)
        )
    return _one(sb, doc.CUSTOMER, out, status)


# ====================================================================== invoice payments
# (registered before invoices/{invoice_id}/ so "payments" is not taken for an id)


@router.post(B + "/invoices/payments/")
async def create_payment(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    raw = await request.body()
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        key = _idempotency_key(request)
        body = parse_body(PaymentCreate, parse_json(raw))
        status, out = payments.create_payment(sb, business, body, key)
    return _one(sb, doc.PAYMENT_CREATE, out, status)


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
async def list_payments(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "invoice_payments")
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
                and _in_range(p["payment_date"], start, end)
            ):
                out.append(p)
        out = _sort_payments(request, out, "total_amount_cents")
        return _page(sb, request, out, doc.PAYMENT, lambda p: payments.payment_view(sb, p))


@router.get(B + "/invoices/payments/{payment_id}/")
async def get_payment(request: Request, business_id: str, payment_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        payment = core.get_owned(sb, "invoice_payments", business, payment_id)
        return _one(sb, doc.PAYMENT, payments.payment_view(sb, payment))


def _delete_payment(
    sb: Sandbox, collection: str, entry_prefix: str, payment: Obj
) -> tuple[int, dict[str, Any]]:
    """[doc] only pending/failed payments can be deleted; completed ones need a refund."""
    if payment["status"] not in rules.DELETABLE_PAYMENT_STATUSES:
        raise conflict(
            f"A {payment['status']} payment cannot be deleted; reverse it with a refund instead."
        )
    ledger.remove_entry(sb.store, payment["_scope"], f"{entry_prefix}:{payment['id']}")
    sb.store.delete(collection, payment["id"])
    return 200, {
        "message": "Payment deleted.",
        "payment_id": payment["id"],
        "status": "cancelled",
        "updated_at": now_iso(),
    }


@router.post(B + "/invoices/payments/{payment_id}/delete/")
async def delete_payment(request: Request, business_id: str, payment_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        payment = core.get_owned(sb, "invoice_payments", business, payment_id)
        status, out = _delete_payment(sb, "invoice_payments", "payment", payment)
    return _one(sb, doc.PAYMENT_DELETE, out, status)


# ====================================================================== refunds


@router.post(B + "/invoices/refunds/")
async def create_refund(request: Request, business_id: str) -> Response:
    return await _write(
        request, business_id, RefundCreate, refunds.create_refund, doc.REFUND, "refunds"
    )


@router.get(B + "/invoices/refunds/")
async def list_refunds(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "refunds")
        if items is None:
            items = sb.store.scan(scope, "refunds")
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
        return _page(sb, request, items, doc.REFUND, lambda r: refunds.refund_view(sb, r))


@router.get(B + "/invoices/refunds/{refund_id}/")
async def get_refund(request: Request, business_id: str, refund_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        refund = core.get_owned(sb, "refunds", business, refund_id)
        return _one(sb, doc.REFUND, refunds.refund_view(sb, refund))


@router.post(B + "/invoices/refunds/{refund_id}/payments/")
async def create_refund_payment(request: Request, business_id: str, refund_id: str) -> Response:
    sb = sandbox_of(request)
    raw = await request.body()
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        refund = core.get_owned(sb, "refunds", business, refund_id)
        status, out = _idempotent(
            sb,
            business["id"],
            "refund_payments",
            _idempotency_key(request),
            lambda: refunds.create_refund_payment(
                sb, business, refund, parse_body(RefundPaymentCreate, parse_json(raw))
            ),
        )
    return _one(sb, doc.REFUND_PAYMENT, out, status)


@router.get(B + "/invoices/refunds/{refund_id}/payments/")
async def list_refund_payments(request: Request, business_id: str, refund_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        refund = core.get_owned(sb, "refunds", business, refund_id)
        items = sb.store.lookup("refund_payments_by_refund", refund["id"])
        ext = q_str(request, "external_id")
        items = [rp for rp in items if ext is None or rp.get("external_id") == ext]
        return _page(
            sb, request, items, doc.REFUND_PAYMENT, lambda rp: refunds.refund_payment_view(sb, rp)
        )


# ====================================================================== invoices


@router.post(B + "/invoices/")
async def create_invoice(request: Request, business_id: str) -> Response:
    return await _write(
        request, business_id, InvoiceCreate, invoices.create_invoice, doc.INVOICE, "invoices"
    )


@router.get(B + "/invoices/")
async def list_invoices(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "invoices")
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
            and (status is None or invoices.invoice_status(sb, inv) in status)
            and _in_range(inv.get("due_at"), due_start, due_end)
            and _in_range(inv.get("sent_at"), sent_start, sent_end)
            and (lo is None or inv[rules.F_TOTAL] >= lo)
            and (hi is None or inv[rules.F_TOTAL] <= hi)
        ]
        return _page(sb, request, out, doc.INVOICE, lambda inv: invoices.invoice_view(sb, inv))


@router.get(B + "/invoices/{invoice_id}/")
async def get_invoice(request: Request, business_id: str, invoice_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        invoice = core.get_owned(sb, "invoices", business, invoice_id)
        return _one(sb, doc.INVOICE, invoices.invoice_view(sb, invoice))


@router.put(B + "/invoices/{invoice_id}/")
async def update_invoice(request: Request, business_id: str, invoice_id: str) -> Response:
    sb = sandbox_of(request)
    raw = await request.body()
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        inv = core.get_owned(sb, "invoices", business, invoice_id)
        body = parse_body(InvoiceUpdate, parse_json(raw))
        status, out = invoices.update_invoice(sb, business, inv, body)
    return _one(sb, doc.INVOICE, out, status)


@router.post(B + "/invoices/{invoice_id}/void/")
async def void_invoice(request: Request, business_id: str, invoice_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.transaction():  # body ignored: rules.LIFECYCLE_BODIES_IGNORED
        business = business_access(sb, request, business_id)
        status, out = invoices.void_invoice(
            sb, core.get_owned(sb, "invoices", business, invoice_id)
        )
    return _one(sb, doc.INVOICE, out, status)


# ====================================================================== payouts


@router.post(B + "/payouts/")
async def upsert_payout(request: Request, business_id: str) -> Response:
    return await _write(
        request, business_id, PayoutUpsert, payouts.upsert_payout, doc.PAYOUT, "payouts"
    )


@router.get(B + "/payouts/")
async def list_payouts(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        ext = q_str(request, "external_id")  # [doc] partial match
        status = q_list(request, "status")
        start, end = q_date(request, "completed_at_start"), q_date(request, "completed_at_end")
        lo, hi = q_int(request, "min_amount"), q_int(request, "max_amount")
        items = [
            p
            for p in sb.store.scan(business["id"], "payouts")
            if (ext is None or ext in (p.get("external_id") or ""))
            and (status is None or p["status"] in status)
            and _in_range(p.get("completed_at"), start, end)
            and (lo is None or p["paid_out_amount_cents"] >= lo)
            and (hi is None or p["paid_out_amount_cents"] <= hi)
        ]
        return _page(sb, request, items, doc.PAYOUT, lambda p: payouts.payout_view(sb, p))


@router.get(B + "/payouts/{payout_id}/")
async def get_payout(request: Request, business_id: str, payout_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        payout = core.get_owned(sb, "payouts", business, payout_id)
        return _one(sb, doc.PAYOUT, payouts.payout_view(sb, payout))


# ====================================================================== vendors


@router.post(B + "/vendors/")
async def create_vendor(request: Request, business_id: str) -> Response:
    return await _write(
        request, business_id, VendorCreate, core.create_vendor, doc.VENDOR, "vendors"
    )


@router.get(B + "/vendors/")
async def list_vendors(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "vendors")
        if items is None:
            items = sb.store.scan(scope, "vendors")
        contains = q_str(request, "external_id_contains")
        include_archived = bool(q_bool(request, "include_archived"))
        name = q_str(request, "name")
        name_contains = (q_str(request, "name_contains") or "").lower()

        def vname(v: Obj) -> str:
            return str(v.get("company_name") or v.get("individual_name") or "")

        items = [
            v
            for v in items
            if (include_archived or not v["is_archived"])
            and (contains is None or contains in (v.get("external_id") or ""))
            and (name is None or vname(v) == name)
            and (not name_contains or name_contains in vname(v).lower())
        ]
        return _page(sb, request, items, doc.VENDOR, lambda v: core.vendor_view(sb, v))


@router.get(B + "/vendors/{vendor_id}/")
async def get_vendor(request: Request, business_id: str, vendor_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        vendor = core.get_owned(sb, "vendors", business, vendor_id)
        return _one(sb, doc.VENDOR, core.vendor_view(sb, vendor))


@router.post(B + "/vendors/{vendor_id}/archive/")
async def archive_vendor(request: Request, business_id: str, vendor_id: str) -> Response:
    """Not documented (contract 2.4: only unarchive is): extended mode only."""
    sb = sandbox_of(request)
    _undocumented_route(sb)
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        status, out = core.set_vendor_archived(
            sb, core.get_owned(sb, "vendors", business, vendor_id), True
        )
    return _one(sb, doc.VENDOR, out, status)


@router.post(B + "/vendors/{vendor_id}/unarchive/")
async def unarchive_vendor(request: Request, business_id: str, vendor_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        status, out = core.set_vendor_archived(
            sb, core.get_owned(sb, "vendors", business, vendor_id), False
        )
    return _one(sb, doc.VENDOR, out, status)


# ====================================================================== bill payments


@router.post(B + "/bills/payments/")
async def create_bill_payment(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    raw = await request.body()
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        key = _idempotency_key(request)
        body = parse_body(BillPaymentCreate, parse_json(raw))
        status, out = ap.create_bill_payment(sb, business, body, key)
    return _one(sb, doc.BILL_PAYMENT, out, status)


@router.get(B + "/bills/payments/")
async def list_bill_payments(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "bill_payments")
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
            and _in_range(p["payment_date"], start, end)
        ]
        return _page(sb, request, items, doc.BILL_PAYMENT, lambda p: ap.bill_payment_view(sb, p))


@router.get(B + "/bills/payments/{bill_payment_id}/")
async def get_bill_payment(request: Request, business_id: str, bill_payment_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        payment = core.get_owned(sb, "bill_payments", business, bill_payment_id)
        return _one(sb, doc.BILL_PAYMENT, ap.bill_payment_view(sb, payment))


@router.post(B + "/bills/payments/{bill_payment_id}/delete/")
async def delete_bill_payment(request: Request, business_id: str, bill_payment_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        payment = core.get_owned(sb, "bill_payments", business, bill_payment_id)
        status, out = _delete_payment(sb, "bill_payments", "bill_payment", payment)
    return _one(sb, doc.PAYMENT_DELETE, out, status)


# ====================================================================== bills


@router.post(B + "/bills/")
async def create_bill(request: Request, business_id: str) -> Response:
    return await _write(request, business_id, BillCreate, ap.create_bill, doc.BILL, "bills")


@router.get(B + "/bills/")
async def list_bills(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "bills")
        if items is None:
            items = sb.store.scan(scope, "bills")
        vendors = q_list(request, "vendor_id")
        status = [s.upper() for s in (q_list(request, "status") or [])] or None
        due_start, due_end = q_date(request, "due_at_start"), q_date(request, "due_at_end")

        def status_of(bill: Obj) -> str:
            return ap.bill_status(
                sb, bill, ap.bill_outstanding(sb, bill), ap.bill_settled(sb, bill)
            )

        items = [
            b
            for b in items
            if (vendors is None or b["vendor_id"] in vendors)
            and (status is None or status_of(b) in status)
            and _in_range(b.get("due_at"), due_start, due_end)
        ]
        return _page(sb, request, items, doc.BILL, lambda b: ap.bill_view(sb, b))


@router.get(B + "/bills/{bill_id}/")
async def get_bill(request: Request, business_id: str, bill_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        bill = core.get_owned(sb, "bills", business, bill_id)
        return _one(sb, doc.BILL, ap.bill_view(sb, bill))


@router.put(B + "/bills/{bill_id}/")
async def update_bill(request: Request, business_id: str, bill_id: str) -> Response:
    sb = sandbox_of(request)
    raw = await request.body()
    with sb.store.transaction():
        business = business_access(sb, request, business_id)
        bill = core.get_owned(sb, "bills", business, bill_id)
        body = parse_body(BillUpdate, parse_json(raw))
        status, out = ap.update_bill(sb, business, bill, body)
    return _one(sb, doc.BILL, out, status)


# ====================================================================== vendor credits


@router.post(B + "/vendor-credits/")
async def create_vendor_credit(request: Request, business_id: str) -> Response:
    return await _write(
        request,
        business_id,
        VendorCreditCreate,
        ap.create_vendor_credit,
        doc.VENDOR_CREDIT,
        "vendor_credits",
    )


@router.get(B + "/vendor-credits/")
async def list_vendor_credits(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        items = _by_external_id(sb, request, scope, "vendor_credits")
        if items is None:
            items = sb.store.scan(scope, "vendor_credits")
        vendor = q_str(request, "vendor") or q_str(request, "vendor_id")
        status = q_list(request, "status")
        start, end = q_date(request, "received_at_start"), q_date(request, "received_at_end")
        views = [
            (c, ap.vendor_credit_view(sb, c))
            for c in items
            if (vendor is None or c["vendor_id"] == vendor)
            and _in_range(c.get("received_at"), start, end)
        ]
        kept = [c for c, v in views if status is None or v["status"] in status]
        return _page(sb, request, kept, doc.VENDOR_CREDIT, lambda c: ap.vendor_credit_view(sb, c))


@router.get(B + "/vendor-credits/{credit_id}/")
async def get_vendor_credit(request: Request, business_id: str, credit_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        credit = core.get_owned(sb, "vendor_credits", business, credit_id)
        return _one(sb, doc.VENDOR_CREDIT, ap.vendor_credit_view(sb, credit))


# ====================================================================== insights & reports


def _as_of(request: Request) -> dt.date:
    return q_date(request, "as_of_date") or today()


@router.get(B + "/insights/ar-aging/")
async def ar_aging(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        group_by = q_str(request, "group_by") or "customer"
        return _one(sb, doc.AR_AGING, aging.ar_aging(sb, business, _as_of(request), group_by))


@router.get(B + "/insights/ap-aging/")
async def ap_aging(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        group_by = q_str(request, "group_by") or "vendor"
        return _one(sb, doc.AP_AGING, aging.ap_aging(sb, business, _as_of(request), group_by))


@router.get(B + "/reports/profit-and-loss/")
async def profit_and_loss(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        start, end = q_date(request, "start_date"), q_date(request, "end_date")
        reports.check_dates(start, end)
        level = q_str(request, "detail_level") or "summary"
        if level not in ("summary", "detailed"):
            raise validation_error({"detail_level": ['Must be "summary" or "detailed".']})
        return respond(200, reports.profit_and_loss(sb, business, start, end, level))


@router.get(B + "/reports/balance-sheet/")
async def balance_sheet(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        return respond(200, reports.balance_sheet(sb, business, _as_of(request)))


@router.get(B + "/reports/cash-flow/")
async def cash_flow(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        start, end = q_date(request, "start_date"), q_date(request, "end_date")
        reports.check_dates(start, end)
        return respond(200, reports.cash_flow(sb, business, start, end))


# ====================================================================== general ledger


@router.get(B + "/general-ledger/chart-of-accounts/")
async def chart_of_accounts(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        account_type = q_str(request, "account_type")
        search = (q_str(request, "search") or "").lower()
        parent = q_str(request, "parent")
        include_zero = q_bool(request, "include_zero_balance")
        items = sorted(sb.store.scan(business["id"], ledger.ACCOUNTS), key=lambda a: a["code"])
        out = []
        for acc in items:
            if account_type is not None and acc["account_type"] != account_type:
                continue
            if search and search not in acc["code"].lower() and search not in acc["name"].lower():
                continue
            if parent is not None and acc.get("parent_account_code") != parent:
                continue
            if include_zero is False:
                d, c = sb.balances.debit_credit(business["id"], acc["code"])
                if d == c:
                    continue
            out.append(acc)
        return _page(sb, request, out, doc.ACCOUNT, lambda a: reports.account_view(sb, a))


@router.post(B + "/general-ledger/chart-of-accounts/")
async def create_account(request: Request, business_id: str) -> Response:
    return await _write(
        request, business_id, AccountCreate, reports.create_account, doc.ACCOUNT, "accounts"
    )


@router.get(B + "/general-ledger/journal-entries/")
async def journal_entries(request: Request, business_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        scope = business["id"]
        start, end = q_date(request, "date_from"), q_date(request, "date_to")
        account = q_str(request, "account")
        if account is not None:
            acc = sb.store.get_in(ledger.ACCOUNTS, scope, account)
            account = acc["code"] if acc else account
        source_type = q_str(request, "source_type")
        source_id = q_str(request, "source_id")
        search = (q_str(request, "search") or "").lower()
        items = (
            sb.store.lookup("je_by_source", source_id)
            if source_id
            else sb.store.scan(scope, ledger.JE)
        )
        out = [
            e
            for e in items
            if e["_scope"] == scope
            and _in_range(e["entry_date"], start, end)
            and (account is None or any(ln["account"] == account for ln in e["lines"]))
            and (source_type is None or e["source_type"] == source_type)
            and (not search or search in e["memo"].lower())
        ]
        return respond(200, paginate(request, out, lambda e: reports.journal_entry_view(sb, e)))


@router.get(B + "/general-ledger/journal-entries/{entry_id}/")
async def journal_entry(request: Request, business_id: str, entry_id: str) -> Response:
    sb = sandbox_of(request)
    with sb.store.lock:
        business = business_access(sb, request, business_id)
        return respond(
            200, reports.journal_entry_view(sb, core.get_owned(sb, ledger.JE, business, entry_id))
        )
