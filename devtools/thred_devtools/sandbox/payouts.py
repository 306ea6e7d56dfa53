"""Payouts (processor settlements): upsert on external_id, 409 once reconciled.

Ledger ([inferred], once the payout is paid): DR bank paid_out + DR fees 6100 / CR
processor clearing 1150, so an amount variance stays visible in the clearing account.
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    add_error,
    check_currency,
    date_of,
    fail_if,
    public,
)
from thred_devtools.sandbox.errors import Details, conflict
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.models import (
    PayoutUpsert,
)
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj


def payout_view(sb: Sandbox, payout: Obj) -> dict[str, Any]:
    scope = payout["_scope"]
    payments = [
        p
        for p in (sb.store.get_in("invoice_payments", scope, i) for i in payout["payment_ids"])
        if p
    ]
    refund_payments = [
        r
        for r in (
            sb.store.get_in("refund_payments", scope, i) for i in payout["refund_payment_ids"]
        )
        if r
    ]
    gross = sum(p["total_amount_cents"] for p in payments)
    refunds = sum(r["amount_cents"] for r in refund_payments)
    fee = payout["fee_cents"]
    expected = rules.payout_expected_net(
        gross, refunds, payout["additional_refunds_amount_cents"], fee
    )

    def customer_name(customer_id: str | None) -> str | None:
        c = sb.store.get_in("customers", scope, customer_id or "") or {}
        return c.get("company_name") or c.get("individual_name")

    out = public(payout)
    out.update(
        {
            "net_amount_cents": rules.payout_net_amount(payout["paid_out_amount_cents"], fee),
            "payment_count": len(payments),
            "refund_payment_count": len(refund_payments),
            "gross_payments_amount_cents": gross,
            "total_refunds_amount_cents": refunds,
            "expected_net_amount_cents": expected,
            "amount_variance_cents": rules.payout_variance(
                payout["paid_out_amount_cents"], expected
            ),
            "payments": [
                {
                    "id": p["id"],
                    "external_id": p.get("external_id"),
                    "payment_reference": p.get("payment_reference"),
                    "customer_name": customer_name(p["customer_id"]),
                    "payment_date": p["payment_date"],
                    "total_amount_cents": p["total_amount_cents"],
                    "currency": p["currency"],
                }
                for p in payments
            ],
            "refund_payments": [
                {
                    "id": r["id"],
                    "external_id": r.get("external_id"),
                    "refund_id": r["refund_id"],
                    "customer_name": customer_name(
                        (sb.store.get("refunds", r["refund_id"]) or {}).get("customer_id")
                    ),
                    "refunded_amount_cents": r["amount_cents"],
                    "completed_at": r.get("completed_at"),
                }
                for r in refund_payments
            ],
        }
    )
    return out


def post_payout(sb: Sandbox, payout: Obj) -> None:
    key = f"payout:{payout['id']}"
    if payout["status"] != rules.PAYOUT_POSTS_WHEN_STATUS:
        ledger.remove_entry(sb.store, payout["_scope"], key)
        return
    b = EntryBuilder()
    paid_out = payout["paid_out_amount_cents"]
    fee = payout["fee_cents"]
    b.dr(rules.ACC_BANK, paid_out, "Payout received", payout_id=payout["id"])
    b.dr(rules.ACC_PROCESSING_FEES, fee, "Processor fees", payout_id=payout["id"])
    b.cr(rules.ACC_PROCESSOR_CLEARING, paid_out + fee, "Payout settlement", payout_id=payout["id"])
    day = (
        date_of(payout.get("completed_at")) or date_of(payout["created_at"]) or today()
    ).isoformat()
    ledger.post_entry(
        sb.store, payout["_scope"], key, "payout", payout["id"], day, "Payout", b, now_iso()
    )


def _check_members(
    sb: Sandbox, scope: str, body: PayoutUpsert, own_id: str | None, details: Details
) -> None:
    """Each payment / refund payment is known, listed once, and in no other payout."""
    for field, collection, noun in (
        ("payment_ids", "invoice_payments", "payment"),
        ("refund_payment_ids", "refund_payments", "refund payment"),
    ):
        seen: set[str] = set()
        for i, member in enumerate(getattr(body, field)):
            path = f"{field}[{i}]"
            if member in seen:
                add_error(details, path, "Listed twice.")
                continue
            seen.add(member)
            if sb.store.get_in(collection, scope, member) is None:
                add_error(details, path, f"Unknown {noun}; sync it to Thred before the payout.")
                continue
            if rules.PAYMENT_IN_ONE_PAYOUT_ONLY:
                others = [
                    p for p in sb.store.lookup("payouts_by_member", member) if p["id"] != own_id
                ]
                if others:
                    add_error(details, path, f"Already part of payout {others[0]['id']}.")


def upsert_payout(sb: Sandbox, business: Obj, body: PayoutUpsert) -> Result:
    store = sb.store
    scope = business["id"]
    existing = (
        store.find(scope, "payouts", "external_id", body.external_id) if body.external_id else None
    )
    if existing is not None and existing["reconciliation_status"] == rules.PAYOUT_RECONCILED:
        raise conflict(
            "The payout is reconciled to a bank transaction and can no longer change.",
            rules.PAYOUT_RECONCILED_CODE,
        )
    own_id = existing["id"] if existing else None
    details: Details = {}
    check_currency(details, business, body.currency)
    _check_members(sb, scope, body, own_id, details)
    fail_if(details)
    now = now_iso()
    payout: Obj = {
        "id": own_id or store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "processor": body.processor,
        "processor_payout_id": body.processor_payout_id,
        "paid_out_amount_cents": body.paid_out_amount_cents,
        "fee_cents": body.fee_cents,
        "additional_refunds_amount_cents": body.additional_refunds_amount_cents,
        "currency": business["base_currency"],
        "status": body.status or (existing["status"] if existing else rules.DEFAULT_PAYOUT_STATUS),
        "completed_at": body.completed_at,
        "imported_at": existing["imported_at"] if existing else now,
        "reference_number": body.reference_number,
        "memo": body.memo,
        "metadata": body.metadata or {},
        "payment_ids": list(body.payment_ids),
        "refund_payment_ids": list(body.refund_payment_ids),
        "reconciliation_status": rules.PAYOUT_UNRECONCILED,
        "settlement_file_id": None,
        "created_at": existing["created_at"] if existing else now,
        "updated_at": now,
    }
    if existing is not None:
        payout["_seq"] = existing["_seq"]
    store.put("payouts", payout)
    post_payout(sb, payout)
    return (200 if existing else 201), payout_view(sb, payout)
