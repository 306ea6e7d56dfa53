"""Refunds (customer credits) and refund payments (cash returned).

Ledger ([doc] "reverses revenue and creates a refund liability"; "clears liability, reduces
cash"): refund DR sales refunds 4010 / CR refunds payable 2400; refund payment DR 2400 /
CR bank or processor clearing. Refund status: pending -> processing -> paid ([doc]).
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    add_error,
    date_of,
    fail_if,
    public,
    replay_existing,
)
from thred_devtools.sandbox.documents import doc_outstanding, settled
from thred_devtools.sandbox.errors import Details
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.models import (
    RefundCreate,
    RefundPaymentCreate,
)
from thred_devtools.sandbox.payments import cash_account
from thred_devtools.sandbox.sides import AR
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj


def refund_paid(sb: Sandbox, refund: Obj) -> int:
    return sum(
        rp["amount_cents"] for rp in sb.store.lookup("refund_payments_by_refund", refund["id"])
    )


def refund_status(amount: int, paid: int) -> str:
    if paid <= 0:
        return rules.REFUND_PENDING
    if paid < amount:
        return rules.REFUND_PROCESSING
    return rules.REFUND_PAID


def normalise_refund_method(method: str | None, details: Details, path: str = "method") -> str:
    if method is None:
        return rules.DEFAULT_REFUND_METHOD
    upper = method.strip().upper()
    if upper not in rules.REFUND_METHODS:
        add_error(
            details,
            path,
            f'"{method}" is not a valid choice. Expected one of {", ".join(rules.REFUND_METHODS)}.',
        )
    return upper


def refund_payment_view(sb: Sandbox, rp: Obj) -> dict[str, Any]:
    out = public(rp)
    refund = sb.store.get("refunds", rp["refund_id"])
    out.update(
        {
            "refunded_amount": rp["amount_cents"],
            "refunded_amount_cents": rp["amount_cents"],
            "refund_processing_fee": rp.get("refund_processing_fee_cents", 0),
            "reconciled_bank_transactions": [],
            "refund_status": refund_status(refund["amount_cents"], refund_paid(sb, refund))
            if refund
            else None,
        }
    )
    return out


def refund_view(sb: Sandbox, refund: Obj) -> dict[str, Any]:
    scope = refund["_scope"]
    out = public(refund)
    inv = sb.store.get_in("invoices", scope, refund["invoice_id"])
    customer = sb.store.get_in("customers", scope, refund["customer_id"]) or {}
    payments = sb.store.lookup("refund_payments_by_refund", refund["id"])
    paid = sum(rp["amount_cents"] for rp in payments)
    amount = refund["amount_cents"]
    number = inv.get("invoice_number") if inv else None
    out.update(
        {
            "refunded_amount": amount,
            "paid_amount_cents": paid,
            "remaining_amount_cents": amount - paid,
            "status": refund_status(amount, paid),
            "customer_name": customer.get("company_name") or customer.get("individual_name"),
            "allocations": [
                {
                    "id": refund["allocation_id"],
                    "allocation_type": "invoice",
                    "amount": amount,
                    "invoice_id": refund["invoice_id"],
                    "invoice_number": number,
                    "invoice_outstanding_balance_cents": doc_outstanding(sb, AR, inv)
                    if inv
                    else None,
                    "target_description": f"Invoice {number or refund['invoice_id']}",
                    "description": refund.get("memo"),
                    "allocation_date": (refund.get("completed_at") or refund["created_at"])[:10],
                }
            ],
            "refund_payments": [refund_payment_view(sb, rp) for rp in payments],
        }
    )
    return out


def post_refund(sb: Sandbox, refund: Obj) -> None:
    b = EntryBuilder()
    tags = {"refund_id": refund["id"], "customer_id": refund["customer_id"]}
    b.dr(rules.ACC_SALES_REFUNDS, refund["amount_cents"], "Refund", invoice_id=refund["invoice_id"])
    b.cr(rules.ACC_REFUNDS_PAYABLE, refund["amount_cents"], "Refund owed", **tags)
    fee = int(refund.get("refund_processing_fee_cents") or 0)
    b.dr(rules.ACC_PROCESSING_FEES, fee, "Refund processing fee")
    b.cr(cash_account(None, refund.get("processor")), fee, "Refund processing fee")
    day = (
        date_of(refund.get("completed_at")) or date_of(refund["created_at"]) or today()
    ).isoformat()
    ledger.post_entry(
        sb.store,
        refund["_scope"],
        f"refund:{refund['id']}",
        "refund",
        refund["id"],
        day,
        "Refund",
        b,
        now_iso(),
    )


def _refund_amount(sb: Sandbox, body: RefundCreate, refundable: int, details: Details) -> int:
    """amount_cents or its alias partial_amount (none: the whole refundable amount, if the
    rules say so), within what was paid on the invoice and not yet refunded."""
    path = "amount_cents"
    if (
        body.amount_cents is not None
        and body.partial_amount is not None
        and body.amount_cents != body.partial_amount
    ):
        add_error(details, "partial_amount", "Disagrees with amount_cents.")
    amount = body.amount_cents if body.amount_cents is not None else body.partial_amount
    if body.amount_cents is None and body.partial_amount is not None:
        sb.note_alias("refund.partial_amount")
        path = "partial_amount"
    if amount is None:
        if not rules.REFUND_WITHOUT_AMOUNT_IS_FULL:
            fail_if({"amount_cents": [rules.REQUIRED_MSG]})
        amount = refundable
    if amount < 1:
        add_error(details, path, "Nothing to refund: no payments are left on this invoice.")
    elif amount > refundable:
        add_error(
            details,
            path,
            f"The refund exceeds the {refundable} paid on the invoice and not yet refunded.",
        )
    return amount


def create_refund(sb: Sandbox, business: Obj, body: RefundCreate) -> Result:
    store = sb.store
    scope = business["id"]
    if body.external_id is not None:
        existing = store.find(scope, "refunds", "external_id", body.external_id)
        if existing is not None:
            return replay_existing(sb, "refund", existing, lambda r: refund_view(sb, r))
    inv = store.get_in("invoices", scope, body.invoice_id)
    if inv is None:
        fail_if({"invoice_id": ["Invoice not found. Create the invoice before its refunds."]})
    assert inv is not None
    details: Details = {}
    refundable = settled(sb, AR, inv) - sum(
        r["amount_cents"] for r in store.lookup("refunds_by_invoice", inv["id"])
    )
    amount = _refund_amount(sb, body, refundable, details)
    method = normalise_refund_method(body.method, details)
    fail_if(details)
    now = now_iso()
    refund: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "invoice_id": inv["id"],
        "customer_id": inv["customer_id"],
        "amount_cents": amount,
        "method": method,
        "completed_at": body.completed_at,
        "memo": body.memo,
        "reference_number": body.reference_number,
        "processor": body.processor,
        "refund_processing_fee_cents": body.refund_processing_fee_cents,
        "metadata": body.metadata or {},
        "currency": business["base_currency"],
        "allocation_id": store.new_id(),
        "created_at": now,
        "updated_at": now,
    }
    store.put("refunds", refund)
    post_refund(sb, refund)
    return 201, refund_view(sb, refund)


def post_refund_payment(sb: Sandbox, rp: Obj, refund: Obj) -> None:
    b = EntryBuilder()
    b.dr(
        rules.ACC_REFUNDS_PAYABLE,
        rp["amount_cents"],
        "Refund paid",
        refund_id=refund["id"],
        customer_id=refund["customer_id"],
    )
    b.cr(
        cash_account(None, rp.get("processor")),
        rp["amount_cents"],
        "Refund paid",
        refund_payment_id=rp["id"],
    )
    fee = int(rp.get("refund_processing_fee_cents") or 0)
    b.dr(rules.ACC_PROCESSING_FEES, fee, "Refund payment fee")
    b.cr(cash_account(None, rp.get("processor")), fee, "Refund payment fee")
    day = (date_of(rp.get("completed_at")) or date_of(rp["created_at"]) or today()).isoformat()
    ledger.post_entry(
        sb.store,
        rp["_scope"],
        f"refund_payment:{rp['id']}",
        "refund_payment",
        rp["id"],
        day,
        "Refund payment",
        b,
        now_iso(),
    )


def create_refund_payment(
    sb: Sandbox, business: Obj, refund: Obj, body: RefundPaymentCreate
) -> Result:
    store = sb.store
    scope = business["id"]
    if body.external_id is not None:
        existing = store.find(scope, "refund_payments", "external_id", body.external_id)
        if existing is not None:
            return replay_existing(
                sb, "refund payment", existing, lambda rp: refund_payment_view(sb, rp)
            )
    details: Details = {}
    remaining = refund["amount_cents"] - refund_paid(sb, refund)
    if body.amount_cents > remaining:
        add_error(
            details, "amount_cents", f"The amount exceeds the refund's remaining {remaining}."
        )
    method = normalise_refund_method(body.method, details)
    fail_if(details)
    now = now_iso()
    rp: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "refund_id": refund["id"],
        "amount_cents": body.amount_cents,
        "method": method,
        "completed_at": body.completed_at,
        "processor": body.processor,
        "memo": body.memo,
        "transaction_tags": body.transaction_tags or [],
        "refund_processing_fee_cents": body.refund_processing_fee_cents,
        "metadata": body.metadata or {},
        "created_at": now,
        "updated_at": now,
    }
    store.put("refund_payments", rp)
    post_refund_payment(sb, rp, refund)
    return 201, refund_payment_view(sb, rp)
