"""Bills: the AP document's own fields and shape (the rest is documents.py).

Ledger ([inferred], mirroring AR): DR expense/asset (line accounts) nets + DR VAT
recoverable 1300 taxes / CR AP 2100. Bill outstanding and vendor balances are AP ledger
balances tagged with the bill / vendor; payments and vendor credits both settle a bill.
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.core import Result
from thred_devtools.sandbox.documents import (
    allocations_of,
    doc_outstanding,
    doc_status,
    due_date,
    new_document,
    replay_document,
    update_document,
)
from thred_devtools.sandbox.errors import Details
from thred_devtools.sandbox.lines import line_view
from thred_devtools.sandbox.models import BillCreate, BillUpdate
from thred_devtools.sandbox.parties import vendor_view
from thred_devtools.sandbox.sides import AP
from thred_devtools.sandbox.state import Sandbox, today
from thred_devtools.sandbox.store import Obj

__all__ = ["bill_view", "create_bill", "update_bill"]

(_PAYMENTS, _), (_CREDITS, _) = AP.settlements


def bill_view(sb: Sandbox, bill: Obj) -> dict[str, Any]:
    scope = bill["_scope"]
    out = {k: v for k, v in bill.items() if not k.startswith("_")}
    outstanding = doc_outstanding(sb, AP, bill)
    payments = allocations_of(sb, AP, bill, _PAYMENTS)
    credits = allocations_of(sb, AP, bill, _CREDITS)
    paid = sum(a["amount_cents"] for _, a in payments)
    credited = sum(a["amount_cents"] for _, a in credits)
    status = doc_status(AP, bill, outstanding, paid + credited)
    vendor = sb.store.get_in("vendors", scope, bill["vendor_id"])
    paid_at = None
    if status == rules.BILL_PAID and payments:
        paid_at = max(p["payment_date"] for p, _ in payments) + rules.DATE_ONLY_TIME
    out.update(
        {
            "type": "Bill",
            "status": status,
            "issue_date": bill.get("bill_date"),
            "vendor_external_id": vendor.get("external_id") if vendor else None,
            "vendor": vendor_view(sb, vendor) if vendor else None,
            "line_items": [
                line_view(sb, scope, ln, "bill_id", bill["id"], bill["currency"])
                for ln in bill["line_items"]
            ],
            rules.F_PAID: paid,
            "credits_applied": credited,
            rules.F_OUTSTANDING: outstanding,
            rules.F_OUTSTANDING_ALIAS: outstanding,
            "paid_at": paid_at,
            "is_overdue": status in (rules.BILL_RECEIVED, rules.BILL_PARTIALLY_PAID)
            and due_date(bill) < today(),
            "bill_payment_allocations": [
                {
                    "bill_payment_id": p["id"],
                    "amount_cents": a["amount_cents"],
                    "payment_date": p["payment_date"],
                    "payment_method": p["payment_method"],
                }
                for p, a in payments
            ],
            "vendor_credit_allocations": [
                {
                    "vendor_credit_id": c["id"],
                    "amount_cents": a["amount_cents"],
                    "applied_at": a["applied_at"],
                }
                for c, a in credits
            ],
        }
    )
    return out


def create_bill(sb: Sandbox, business: Obj, body: BillCreate) -> Result:
    replay = replay_document(sb, AP, business["id"], body.external_id, lambda b: bill_view(sb, b))
    if replay is not None:
        return replay

    def fields(doc: Obj, vendor: Obj, details: Details) -> dict[str, Any]:
        skip = {"line_items", "vendor_id", "vendor_external_id", "currency", "bill_date"}
        return {
            **body.model_dump(exclude=skip),
            "vendor_id": vendor["id"],
            "bill_date": body.bill_date[:10] if body.bill_date else None,
            "currency": business["base_currency"],
            "reference_numbers": body.reference_numbers or [],
            "attachment_urls": body.attachment_urls or [],
            "transaction_tags": body.transaction_tags or [],
            "metadata": body.metadata or {},
            "voided_at": None,
            "line_items": doc["line_items"],
        }

    party_ref = (body.vendor_id, body.vendor_external_id)
    bill = new_document(sb, AP, business, party_ref, body.currency, body.line_items, fields)
    return 201, bill_view(sb, bill)


_PLAIN = (
    "bill_number", "vendor_bill_number", "purchase_order_number", "memo", "terms",
    "received_at", "due_at", "approved_at", "document",
)  # fmt: skip
_LISTS = ("reference_numbers", "attachment_urls", "transaction_tags")


def update_bill(sb: Sandbox, business: Obj, bill: Obj, body: BillUpdate) -> Result:
    sent = body.model_fields_set

    def fields(doc: Obj, vendor: Obj, details: Details) -> dict[str, Any]:
        out: dict[str, Any] = {f: getattr(body, f) for f in _PLAIN if f in sent}
        if "bill_date" in sent:
            out["bill_date"] = body.bill_date[:10] if body.bill_date else None
        out.update({f: getattr(body, f) or [] for f in _LISTS if f in sent})
        if "metadata" in sent:
            out["metadata"] = body.metadata or {}
        return out

    updated = update_document(sb, AP, business, bill, body, fields)
    return 200, bill_view(sb, updated)
