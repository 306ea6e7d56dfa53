"""Vendor credits: credit notes from vendors, applied to their bills.

Ledger ([inferred]): DR AP per allocation + DR vendor credits 1410 (unapplied) / CR the
credit lines' expense accounts.
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    account_ref,
    add_error,
    check_currency,
    date_of,
    fail_if,
    public,
    resolve_account,
)
from thred_devtools.sandbox.documents import doc_outstanding
from thred_devtools.sandbox.errors import Details
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.models import VendorCreditCreate
from thred_devtools.sandbox.parties import new_vendor
from thred_devtools.sandbox.settlements import (
    check_allocations,
    replay_settlement,
    settle_allocations,
)
from thred_devtools.sandbox.sides import AP
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj

__all__ = [
    "create_vendor_credit",
    "post_vendor_credit",
    "repost_vendor_credit",
    "vendor_credit_view",
]


def vendor_credit_view(sb: Sandbox, credit: Obj) -> dict[str, Any]:
    scope = credit["_scope"]
    vendor = sb.store.get_in("vendors", scope, credit["vendor_id"]) or {}
    applied = sum(a["amount_cents"] for a in credit["allocations"])
    total = credit[rules.F_TOTAL]
    status = rules.VENDOR_CREDIT_OPEN
    if applied >= total:
        status = rules.VENDOR_CREDIT_APPLIED
    elif applied > 0:
        status = rules.VENDOR_CREDIT_PARTIALLY_APPLIED
    out = public(credit)
    allocations = []
    for a in credit["allocations"]:
        bill = sb.store.get("bills", a["bill_id"])
        allocations.append(
            {
                "bill_id": a["bill_id"],
                "bill_number": bill.get("bill_number") if bill else None,
                "bill_external_id": bill.get("external_id") if bill else None,
                "amount_cents": a["amount_cents"],
                "bill_outstanding_balance_cents": doc_outstanding(sb, AP, bill) if bill else None,
                "applied_at": a["applied_at"],
            }
        )
    out.update(
        {
            "status": status,
            "vendor": {
                "id": credit["vendor_id"],
                "external_id": vendor.get("external_id"),
                "display_name": vendor.get("company_name") or vendor.get("individual_name"),
            },
            "vendor_external_id": vendor.get("external_id"),
            "line_items": [
                {
                    **{k: v for k, v in ln.items() if k != "account_code"},
                    "account_code": ln["account_code"],
                    "expense_account_identifier": account_ref(sb, scope, ln["account_code"]),
                }
                for ln in credit["line_items"]
            ],
            "allocations": allocations,
            "applied_amount": applied,
            "unapplied_amount": total - applied,
        }
    )
    return out


def post_vendor_credit(sb: Sandbox, credit: Obj) -> None:
    b = EntryBuilder()
    applied = settle_allocations(
        sb, AP, b, credit["allocations"], credit["vendor_id"], "Vendor credit applied"
    )
    b.dr(
        rules.ACC_VENDOR_CREDITS,
        credit[rules.F_TOTAL] - applied,
        "Unapplied vendor credit",
        vendor_id=credit["vendor_id"],
        vendor_credit_id=credit["id"],
    )
    for ln in credit["line_items"]:
        b.cr(ln["account_code"], ln["amount"], ln.get("description") or "Vendor credit")
    day = (
        date_of(credit.get("received_at")) or date_of(credit["created_at"]) or today()
    ).isoformat()
    ledger.post_entry(
        sb.store,
        credit["_scope"],
        f"vendor_credit:{credit['id']}",
        "vendor_credit",
        credit["id"],
        day,
        "Vendor credit",
        b,
        now_iso(),
    )


def repost_vendor_credit(sb: Sandbox, credit: Obj) -> None:
    credit[rules.F_TOTAL] = sum(int(ln["amount"]) for ln in credit["line_items"])
    sb.store.put("vendor_credits", credit)
    post_vendor_credit(sb, credit)


def _credit_vendor(
    sb: Sandbox, scope: str, body: VendorCreditCreate, details: Details
) -> Obj | None:
    """The vendor by id or external id; None with no error: the external id is new."""
    if body.vendor_id is not None:
        vendor = sb.store.get_in("vendors", scope, body.vendor_id)
        if vendor is None:
            add_error(details, "vendor_id", "Vendor not found.")
        elif (
            body.vendor_external_id is not None
            and vendor.get("external_id") != body.vendor_external_id
        ):
            add_error(details, "vendor_external_id", "Disagrees with vendor_id.")
        return vendor
    if body.vendor_external_id is not None:
        return sb.store.find(scope, "vendors", "external_id", body.vendor_external_id)
    add_error(details, "vendor_id", rules.REQUIRED_MSG)
    return None


def _credit_lines(sb: Sandbox, scope: str, body: VendorCreditCreate, details: Details) -> list[Obj]:
    lines: list[Obj] = []
    for i, item in enumerate(body.line_items):
        p = f"line_items[{i}]"
        code = resolve_account(
            sb,
            scope,
            details,
            [
                (f"{p}.expense_account_identifier", item.expense_account_identifier),
                (f"{p}.account_identifier", item.account_identifier),
                (f"{p}.account_code", item.account_code),
            ],
            AP.line_account_types,
            AP.default_line_account,
        )
        lines.append(
            {
                "amount": item.amount,
                "description": item.description,
                "account_code": code,
                "tags": item.tags or [],
                "memo": item.memo,
                "metadata": item.metadata or {},
            }
        )
    return lines


def _check_credit(
    sb: Sandbox,
    scope: str,
    body: VendorCreditCreate,
    vendor: Obj | None,
    total: int,
    details: Details,
) -> None:
    """Allocations go to the vendor's open bills; a new vendor has none to allocate to."""
    if vendor is not None or not body.allocations:
        allocations = [(a.bill_id, a.amount_cents) for a in body.allocations]
        check_allocations(
            sb, AP, scope, allocations, total, vendor["id"] if vendor else "", details
        )
    else:
        add_error(details, "allocations[0].bill_id", "The bill belongs to another vendor.")
    if (
        body.source_bill_id is not None
        and sb.store.get_in("bills", scope, body.source_bill_id) is None
    ):
        add_error(details, "source_bill_id", "Bill not found.")


def create_vendor_credit(sb: Sandbox, business: Obj, body: VendorCreditCreate) -> Result:
    def view(credit: Obj) -> dict[str, Any]:
        return vendor_credit_view(sb, credit)

    store = sb.store
    scope = business["id"]
    replay = replay_settlement(
        sb, scope, "vendor_credits", "vendor credit", (None, body.external_id), view
    )
    if replay is not None:
        return replay
    details: Details = {}
    vendor = _credit_vendor(sb, scope, body, details)
    fail_if(details)
    check_currency(details, business, body.currency)
    lines = _credit_lines(sb, scope, body, details)
    total = sum(int(ln["amount"]) for ln in lines)
    _check_credit(sb, scope, body, vendor, total, details)
    fail_if(details)
    if vendor is None:  # [doc] vendor_external_id can auto-create the vendor
        assert body.vendor_external_id is not None
        name = body.vendor_name or body.vendor_external_id
        vendor = new_vendor(
            sb, scope, {"external_id": body.vendor_external_id, "company_name": name}
        )
    now = now_iso()
    credit: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "vendor_id": vendor["id"],
        "received_at": body.received_at,
        "currency": business["base_currency"],
        "source_bill_id": body.source_bill_id,
        "line_items": lines,
        "allocations": [
            {
                "id": store.new_id(),
                "bill_id": a.bill_id,
                "amount_cents": a.amount_cents,
                "applied_at": now,
            }
            for a in body.allocations
        ],
        "tags": body.tags or [],
        "memo": body.memo,
        "metadata": body.metadata or {},
        "document": body.document,
        rules.F_TOTAL: total,
        "created_at": now,
        "updated_at": now,
    }
    store.put("vendor_credits", credit)
    post_vendor_credit(sb, credit)
    return 201, view(credit)
