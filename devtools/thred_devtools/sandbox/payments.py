"""Invoice payments (customer receipts); the allocation rules shared with AP: settlements.py.

Ledger ([doc] payment -> DR bank / CR AR; the rest [inferred]): DR bank 1000, or processor
clearing 1150 for card/processor receipts, (total - fee) + DR fees 6100 / CR AR per
allocation / CR customer unapplied cash 2300 for the unallocated remainder.
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    add_error,
    check_currency,
    fail_if,
)
from thred_devtools.sandbox.documents import doc_outstanding, status_of
from thred_devtools.sandbox.errors import Details
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.models import PaymentCreate
from thred_devtools.sandbox.settlements import (
    check_allocations,
    record_payment,
    replay_settlement,
    require_party,
    settle_allocations,
)
from thred_devtools.sandbox.sides import AR
from thred_devtools.sandbox.state import Sandbox, now_iso
from thred_devtools.sandbox.store import Obj


def cash_account(method: str | None, processor: str | None) -> str:
    if processor or (method or "") in rules.PROCESSOR_PAYMENT_METHODS:
        return rules.ACC_PROCESSOR_CLEARING
    return rules.ACC_BANK


def post_payment(sb: Sandbox, pay: Obj) -> None:
    scope = pay["_scope"]
    b = EntryBuilder()
    fee = int(pay.get("processing_fee_cents") or 0)
    total = int(pay["total_amount_cents"])
    b.dr(
        cash_account(pay.get("payment_method"), pay.get("payment_processor")),
        total - fee,
        "Payment received",
        payment_id=pay["id"],
    )
    b.dr(rules.ACC_PROCESSING_FEES, fee, "Processing fee", payment_id=pay["id"])
    allocated = settle_allocations(
        sb, AR, b, pay["allocations"], pay["customer_id"], "Payment allocation"
    )
    b.cr(
        rules.ACC_UNAPPLIED_CASH,
        total - allocated,
        "Unapplied cash",
        customer_id=pay["customer_id"],
        payment_id=pay["id"],
    )
    memo = f"Payment {pay.get('payment_reference') or pay['id']}"
    ledger.post_entry(
        sb.store,
        scope,
        f"payment:{pay['id']}",
        "payment",
        pay["id"],
        pay["payment_date"],
        memo,
        b,
        now_iso(),
    )


def _applied_invoices(sb: Sandbox, pay: Obj) -> list[dict[str, Any]]:
    out = []
    for alloc in pay["allocations"]:
        inv = sb.store.get("invoices", alloc["invoice_id"])
        out.append(
            {
                "id": alloc["invoice_id"],
                "invoice_number": inv.get("invoice_number") if inv else None,
                "external_id": inv.get("external_id") if inv else None,
                "applied_amount_cents": alloc["amount_cents"],
                "status": status_of(sb, AR, inv).lower() if inv else None,
                "outstanding_amount_cents": doc_outstanding(sb, AR, inv) if inv else None,
            }
        )
    return out


def payment_create_view(sb: Sandbox, pay: Obj) -> dict[str, Any]:
    """The create/PATCH shape: wrapped in ``payment`` with ``*_cents`` names ([doc])."""
    total = pay["total_amount_cents"]
    allocated = sum(a["amount_cents"] for a in pay["allocations"])
    fee = int(pay.get("processing_fee_cents") or 0)
    body = {
        "id": pay["id"],
        "business_id": pay["business_id"],
        "customer_id": pay["customer_id"],
        "external_id": pay.get("external_id"),
        "total_amount_cents": total,
        "applied_amount_cents": allocated,
        "allocated_amount_cents": allocated,
        "unapplied_amount_cents": total - allocated,
        "unallocated_amount_cents": total - allocated,
        "remaining_amount_cents": total - allocated,
        "processing_fee_cents": fee,
        "net_amount_cents": rules.payment_net_amount(total, fee),
        "is_fully_allocated": allocated >= total,
        "currency": pay["currency"],
        "status": pay["status"],
        "payment_method": pay["payment_method"],
        "payment_processor": pay.get("payment_processor"),
        "payment_reference": pay.get("payment_reference"),
        "payment_date": pay["payment_date"],
        "note": pay.get("note"),
        "bank_reference": (pay.get("references") or {}).get("bank_reference"),
        "references": pay.get("references") or {},
        "metadata": pay.get("metadata") or {},
        "idempotency_key": pay.get("idempotency_key"),
        "created_at": pay["created_at"],
        "updated_at": pay["updated_at"],
        "applied_invoices": _applied_invoices(sb, pay),
        "allocations": [
            {"id": a["id"], "invoice_id": a["invoice_id"], "amount_cents": a["amount_cents"]}
            for a in pay["allocations"]
        ],
    }
    return {"payment": body}


def _allocation_rows(sb: Sandbox, pay: Obj) -> list[dict[str, Any]]:
    """The list/detail shape of a payment's allocations, with each invoice's status."""
    rows = []
    for a in pay["allocations"]:
        inv = sb.store.get("invoices", a["invoice_id"])
        rows.append(
            {
                "id": a["id"],
                "invoice_id": a["invoice_id"],
                "invoice_number": inv.get("invoice_number") if inv else None,
                "invoice_external_id": inv.get("external_id") if inv else None,
                "invoice_status": status_of(sb, AR, inv) if inv else None,
                "amount": a["amount_cents"],
                "amount_cents": a["amount_cents"],
                "allocated_at": a["allocated_at"],
                "transaction_tags": [],
                "notes": None,
            }
        )
    return rows


def payment_view(sb: Sandbox, pay: Obj) -> dict[str, Any]:
    """The list/detail shape: unwrapped, non-``_cents`` names ([doc])."""
    scope = pay["_scope"]
    customer = sb.store.get_in("customers", scope, pay["customer_id"]) or {}
    total = pay["total_amount_cents"]
    allocated = sum(a["amount_cents"] for a in pay["allocations"])
    fee = int(pay.get("processing_fee_cents") or 0)
    name = customer.get("company_name") or customer.get("individual_name")
    allocations = _allocation_rows(sb, pay)
    payout = next(iter(sb.store.lookup("payouts_by_member", pay["id"])), None)
    return {
        "id": pay["id"],
        "business_id": pay["business_id"],
        "external_id": pay.get("external_id"),
        "customer_id": pay["customer_id"],
        "customer": {
            "id": pay["customer_id"],
            "name": name,
            "email": customer.get("email"),
            "company_name": customer.get("company_name"),
            "external_id": customer.get("external_id"),
        },
        "customer_name": name,
        "customer_email": customer.get("email"),
        "payment_method": pay["payment_method"],
        "payment_processor": pay.get("payment_processor"),
        "payment_reference": pay.get("payment_reference"),
        "payment_date": pay["payment_date"],
        "currency": pay["currency"],
        "status": pay["status"],
        "total_amount": total,
        "allocated_amount": allocated,
        "unallocated_amount": total - allocated,
        "net_amount": rules.payment_net_amount(total, fee),
        "processing_fee": fee,
        "processing_fee_cents": fee,
        "display_amount": rules.display_amount(total, pay["currency"]),
        "is_fully_allocated": allocated >= total,
        "is_completed": pay["status"] == rules.PAYMENT_COMPLETED,
        "processed_at": pay["created_at"],
        "failed_at": None,
        "note": pay.get("note"),
        "metadata": pay.get("metadata") or {},
        "idempotency_key": pay.get("idempotency_key"),
        "payout_id": payout["id"] if payout else None,
        "created_at": pay["created_at"],
        "updated_at": pay["updated_at"],
        "allocations": allocations,
        "refund_allocations": [],
        "reconciled_bank_transactions": [],
    }


def _payment_form(
    sb: Sandbox, scope: str, body: PaymentCreate
) -> tuple[str, int, list[tuple[str, int]]]:
    """(customer_id, total, allocations) from either documented request form.

    API reference: ``customer_id`` + ``total_amount_cents`` + ``allocations``. AR-integration
    seed page: ``invoice_id`` + ``amount_cents``, one allocation of the whole amount to that
    invoice, for the invoice's customer. Mixing the forms is refused unless the values agree.
    """
    details: Details = {}
    if body.invoice_id is None and body.amount_cents is None:
        if body.customer_id is None:
            add_error(details, "customer_id", rules.REQUIRED_MSG)
        if body.total_amount_cents is None:
            add_error(details, "total_amount_cents", rules.REQUIRED_MSG)
        fail_if(details)
        assert body.customer_id is not None and body.total_amount_cents is not None
        pairs = [(a.invoice_id, a.amount_cents) for a in body.allocations]
        return body.customer_id, body.total_amount_cents, pairs
    sb.note_alias("payment.seed_form")
    seed = "(seed-page form: invoice_id with amount_cents)"
    if body.invoice_id is None:
        add_error(details, "invoice_id", f"{rules.REQUIRED_MSG} {seed}")
    if body.amount_cents is None:
        add_error(details, "amount_cents", f"{rules.REQUIRED_MSG} {seed}")
    if body.allocations:
        add_error(
            details, "allocations", "Give allocations or invoice_id with amount_cents, not both."
        )
    if body.total_amount_cents is not None and body.total_amount_cents != body.amount_cents:
        add_error(details, "total_amount_cents", "Disagrees with amount_cents.")
    fail_if(details)
    assert body.invoice_id is not None and body.amount_cents is not None
    invoice = sb.store.get_in("invoices", scope, body.invoice_id)
    if invoice is None:
        fail_if({"invoice_id": ["Invoice not found. Create the invoice before its payments."]})
    assert invoice is not None
    if body.customer_id is not None and body.customer_id != invoice["customer_id"]:
        fail_if({"customer_id": ["The invoice belongs to another customer."]})
    return invoice["customer_id"], body.amount_cents, [(invoice["id"], body.amount_cents)]


def _payment_record(
    sb: Sandbox,
    business: Obj,
    body: PaymentCreate,
    form: tuple[str, int, list[tuple[str, int]]],
    idem_key: str | None,
) -> Obj:
    """The stored payment of a checked request (``form``: customer, total, allocations)."""
    store = sb.store
    scope = business["id"]
    customer_id, total, allocations = form
    now = now_iso()
    pay: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "customer_id": customer_id,
        "total_amount_cents": total,
        "allocations": [
            {
                "id": store.new_id(),
                "invoice_id": invoice_id,
                "amount_cents": amount,
                "allocated_at": now,
            }
            for invoice_id, amount in allocations
        ],
        "payment_date": body.payment_date,
        "currency": business["base_currency"],
        "payment_method": body.payment_method or rules.DEFAULT_INVOICE_PAYMENT_METHOD,
        "payment_reference": body.payment_reference,
        "payment_processor": body.payment_processor,
        "processing_fee_cents": body.processing_fee_cents,
        "note": body.note if body.note is not None else body.notes,
        "metadata": body.metadata or {},
        "references": body.references or {},
        "transaction_tags": body.transaction_tags or [],
        "idempotency_key": idem_key,
        "status": rules.PAYMENT_COMPLETED,
        "created_at": now,
        "updated_at": now,
    }
    return pay


def create_payment(sb: Sandbox, business: Obj, body: PaymentCreate, idem_key: str | None) -> Result:
    scope = business["id"]
    keys = (idem_key, body.external_id)
    replay = replay_settlement(
        sb, scope, "invoice_payments", "payment", keys, lambda p: payment_create_view(sb, p)
    )
    if replay is not None:
        return replay
    details: Details = {}
    customer_id, total, allocations = _payment_form(sb, scope, body)
    require_party(sb, AR, scope, customer_id)
    check_currency(details, business, body.currency)
    if body.processing_fee_cents > total:
        add_error(details, "processing_fee_cents", "The fee cannot exceed the payment total.")
    check_allocations(sb, AR, scope, allocations, total, customer_id, details)
    fail_if(details)
    if body.notes is not None and body.note is None:
        sb.note_alias("payment.notes")
    pay = _payment_record(sb, business, body, (customer_id, total, allocations), idem_key)
    return record_payment(
        sb, "invoice_payments", pay, post_payment, lambda p: payment_create_view(sb, p), idem_key
    )
