"""Bill payments (cash paid to vendors); allocation rules shared with AR: settlements.py.

Ledger ([inferred], mirroring AR): DR AP per allocation + DR vendor prepayments 1400 for
the unallocated remainder / CR bank; a processing fee is DR 6100 / CR bank on top.
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    add_error,
    check_currency,
    fail_if,
    public,
)
from thred_devtools.sandbox.documents import doc_outstanding, status_of
from thred_devtools.sandbox.errors import Details
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.models import BillPaymentCreate
from thred_devtools.sandbox.settlements import (
    check_allocations,
    record_payment,
    replay_settlement,
    require_party,
    settle_allocations,
)
from thred_devtools.sandbox.sides import AP
from thred_devtools.sandbox.state import Sandbox, now_iso
from thred_devtools.sandbox.store import Obj

__all__ = ["bill_payment_view", "create_bill_payment", "post_bill_payment"]


def bill_payment_view(sb: Sandbox, pay: Obj) -> dict[str, Any]:
    scope = pay["_scope"]
    vendor = sb.store.get_in("vendors", scope, pay["vendor_id"]) or {}
    allocated = sum(a["amount_cents"] for a in pay["allocations"])
    amount = pay["amount_cents"]
    fee = int(pay.get("processing_fee_cents") or 0)
    out = public(pay)
    allocations = []
    for a in pay["allocations"]:
        bill = sb.store.get("bills", a["bill_id"])
        status = status_of(sb, AP, bill) if bill else None
        allocations.append(
            {
                "id": a["id"],
                "bill_id": a["bill_id"],
                "bill_number": bill.get("bill_number") if bill else None,
                "bill_external_id": bill.get("external_id") if bill else None,
                "vendor_bill_number": bill.get("vendor_bill_number") if bill else None,
                "bill_status": status,
                "amount_cents": a["amount_cents"],
                "allocation_date": pay["payment_date"],
                "created_at": a["allocated_at"],
                "description": a.get("description"),
                "bill_outstanding_balance_cents": doc_outstanding(sb, AP, bill) if bill else None,
            }
        )
    out.update(
        {
            "vendor_name": vendor.get("company_name") or vendor.get("individual_name"),
            "vendor_external_id": vendor.get("external_id"),
            "net_amount_cents": rules.payment_net_amount(amount, fee),
            "allocated_amount_cents": allocated,
            "unallocated_amount_cents": amount - allocated,
            "is_fully_allocated": allocated >= amount,
            "value_date": pay["payment_date"],
            "submitted_at": pay["created_at"],
            "completed_at": pay["created_at"],
            "failed_at": None,
            "failure_reason": None,
            "processor_payment_id": None,
            "allocations": allocations,
            "vendor_refund_allocations": [],
            "reconciled_bank_transactions": [],
        }
    )
    return out


def post_bill_payment(sb: Sandbox, pay: Obj) -> None:
    b = EntryBuilder()
    allocated = settle_allocations(sb, AP, b, pay["allocations"], pay["vendor_id"], "Bill payment")
    amount = pay["amount_cents"]
    b.dr(
        rules.ACC_VENDOR_PREPAYMENTS,
        amount - allocated,
        "Unallocated vendor payment",
        vendor_id=pay["vendor_id"],
        bill_payment_id=pay["id"],
    )
    b.cr(rules.ACC_BANK, amount, "Bill payment", bill_payment_id=pay["id"])
    fee = int(pay.get("processing_fee_cents") or 0)
    b.dr(rules.ACC_PROCESSING_FEES, fee, "Payment fee")
    b.cr(rules.ACC_BANK, fee, "Payment fee")
    ledger.post_entry(
        sb.store,
        pay["_scope"],
        f"bill_payment:{pay['id']}",
        "bill_payment",
        pay["id"],
        pay["payment_date"],
        "Bill payment",
        b,
        now_iso(),
    )


def _bill_payment_record(
    sb: Sandbox, business: Obj, body: BillPaymentCreate, idem_key: str | None
) -> Obj:
    store = sb.store
    scope = business["id"]
    now = now_iso()
    pay: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "vendor_id": body.vendor_id,
        "amount_cents": body.amount_cents,
        "currency": business["base_currency"],
        "payment_method": body.payment_method,
        "payment_date": body.payment_date,
        "payment_reference": body.payment_reference,
        "check_number": body.check_number,
        "description": body.description,
        "memo": body.memo,
        "processing_fee_cents": body.processing_fee_cents,
        "metadata": body.metadata or {},
        "idempotency_key": idem_key,
        "status": rules.PAYMENT_COMPLETED,
        "allocations": [
            {
                "id": store.new_id(),
                "bill_id": a.bill_id,
                "amount_cents": a.amount_cents,
                "description": a.description,
                "allocated_at": now,
            }
            for a in body.allocations
        ],
        "created_at": now,
        "updated_at": now,
    }
    return pay


def create_bill_payment(
    sb: Sandbox, business: Obj, body: BillPaymentCreate, idem_key: str | None
) -> Result:
    scope = business["id"]
    keys = (idem_key, body.external_id)
    replay = replay_settlement(
        sb, scope, "bill_payments", "bill payment", keys, lambda p: bill_payment_view(sb, p)
    )
    if replay is not None:
        return replay
    require_party(sb, AP, scope, body.vendor_id)
    details: Details = {}
    if body.payment_method == "check" and not body.check_number:
        add_error(details, "check_number", "Required when payment_method is check.")
    check_currency(details, business, body.currency)
    allocations = [(a.bill_id, a.amount_cents) for a in body.allocations]
    check_allocations(sb, AP, scope, allocations, body.amount_cents, body.vendor_id, details)
    fail_if(details)
    pay = _bill_payment_record(sb, business, body, idem_key)
    return record_payment(
        sb, "bill_payments", pay, post_bill_payment, lambda p: bill_payment_view(sb, p), idem_key
    )
