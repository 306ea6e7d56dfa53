"""Invoices: the AR document's own fields (extra taxes, discount, tips), shape and void.

Everything shared with bills (party, lines, totals, ledger entry, update rules) is in
documents.py; this module adds what only invoices have.
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.core import Result, resolve_account
from thred_devtools.sandbox.documents import (
    allocations_of,
    doc_outstanding,
    doc_status,
    due_date,
    new_document,
    post_void,
    replay_document,
    settled,
    update_document,
)
from thred_devtools.sandbox.errors import Details, conflict
from thred_devtools.sandbox.lines import build_extra_taxes, line_view
from thred_devtools.sandbox.models import InvoiceCreate, InvoiceUpdate
from thred_devtools.sandbox.parties import customer_view
from thred_devtools.sandbox.sides import AR
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj

__all__ = ["create_invoice", "invoice_view", "update_invoice", "void_invoice"]

_PAYMENTS = AR.settlements[0][0]


def invoice_view(sb: Sandbox, inv: Obj, with_customer: bool = True) -> dict[str, Any]:
    scope = inv["_scope"]
    out = {k: v for k, v in inv.items() if not k.startswith("_") and k != "tips_account_code"}
    outstanding = doc_outstanding(sb, AR, inv)
    allocs = allocations_of(sb, AR, inv, _PAYMENTS)
    paid = sum(a["amount_cents"] for _, a in allocs)
    status = doc_status(AR, inv, outstanding, paid)
    customer = sb.store.get_in("customers", scope, inv["customer_id"])
    paid_at = None
    if status == rules.INVOICE_PAID and allocs:
        paid_at = max(p["payment_date"] for p, _ in allocs) + rules.DATE_ONLY_TIME
    refunded = sum(r["amount_cents"] for r in sb.store.lookup("refunds_by_invoice", inv["id"]))
    out.update(
        {
            "type": "Invoice",
            "status": status,
            "customer_external_id": customer.get("external_id") if customer else None,
            "customer": customer_view(sb, customer) if (customer and with_customer) else None,
            "line_items": [
                line_view(sb, scope, ln, "invoice_id", inv["id"], inv["currency"])
                for ln in inv["line_items"]
            ],
            rules.F_PAID: paid,
            rules.F_OUTSTANDING: outstanding,
            rules.F_OUTSTANDING_ALIAS: outstanding,
            "refunded_amount": refunded,
            "paid_at": paid_at,
            "is_overdue": status in (rules.INVOICE_SENT, rules.INVOICE_PARTIALLY_PAID)
            and due_date(inv) < today(),
            "tips_account": inv.get("tips_account_code"),
            "payment_allocations": [
                {
                    "payment_id": p["id"],
                    "payment_external_id": p.get("external_id"),
                    "amount_cents": a["amount_cents"],
                    "payment_date": p["payment_date"],
                }
                for p, a in allocs
            ],
        }
    )
    return out


def _tips_account(sb: Sandbox, business: Obj, ref: Any, details: Details) -> str | None:
    if ref is None:
        return None
    return resolve_account(
        sb,
        business["id"],
        details,
        [("tips_account", ref)],
        ("revenue", "liability"),
        rules.ACC_TIPS,
    )


def create_invoice(sb: Sandbox, business: Obj, body: InvoiceCreate) -> Result:
    replay = replay_document(
        sb, AR, business["id"], body.external_id, lambda i: invoice_view(sb, i)
    )
    if replay is not None:
        return replay

    def fields(doc: Obj, customer: Obj, details: Details) -> dict[str, Any]:
        extra, extra_total = build_extra_taxes(
            business, body.additional_sales_taxes, body.additional_sales_taxes_total, details
        )
        return {
            "external_id": body.external_id,
            "customer_id": customer["id"],
            "invoice_number": body.invoice_number,
            "invoice_type": body.invoice_type or "invoice",
            "sent_at": body.sent_at,
            "due_at": body.due_at,
            "voided_at": None,
            "memo": body.memo,
            "currency": business["base_currency"],
            "line_items": doc["line_items"],
            "additional_discount": body.additional_discount,
            "additional_sales_taxes": extra,
            "additional_sales_taxes_total": extra_total,
            "tips": body.tips,
            "tips_account_code": _tips_account(sb, business, body.tips_account, details),
            "transaction_tags": body.transaction_tags or [],
            "metadata": body.metadata or {},
        }

    party_ref = (body.customer_id, body.customer_external_id)
    inv = new_document(sb, AR, business, party_ref, body.currency, body.line_items, fields)
    if body.voided_at:
        void_invoice(sb, inv, body.voided_at)
        inv = sb.store.get("invoices", inv["id"]) or inv
    return 201, invoice_view(sb, inv)


_PLAIN = ("invoice_number", "invoice_type", "sent_at", "due_at", "memo", "document")


def update_invoice(sb: Sandbox, business: Obj, inv: Obj, body: InvoiceUpdate) -> Result:
    if inv.get("voided_at"):
        raise conflict("A voided invoice cannot be updated.")
    sent = body.model_fields_set

    def fields(doc: Obj, customer: Obj, details: Details) -> dict[str, Any]:
        out: dict[str, Any] = {f: getattr(body, f) for f in _PLAIN if f in sent}
        if "transaction_tags" in sent:
            out["transaction_tags"] = body.transaction_tags or []
        if "metadata" in sent:
            out["metadata"] = body.metadata or {}
        for field in ("additional_discount", "tips"):
            if field in sent:
                out[field] = getattr(body, field) or 0
        if body.additional_sales_taxes is not None or "additional_sales_taxes_total" in sent:
            extra, extra_total = build_extra_taxes(
                business,
                body.additional_sales_taxes or [],
                body.additional_sales_taxes_total,
                details,
            )
            out["additional_sales_taxes"] = extra
            out["additional_sales_taxes_total"] = extra_total
        if "tips_account" in sent:
            out["tips_account_code"] = _tips_account(sb, business, body.tips_account, details)
        return out

    updated = update_document(sb, AR, business, inv, body, fields)
    return 200, invoice_view(sb, updated)


def void_invoice(sb: Sandbox, inv: Obj, voided_at: str | None = None) -> Result:
    if inv.get("voided_at"):
        if not rules.VOID_TWICE_IS_OK:
            raise conflict("The invoice is already voided.")
        return 200, invoice_view(sb, inv)
    if settled(sb, AR, inv) > 0:
        raise conflict("The invoice has payments allocated to it; it cannot be voided.")
    now = now_iso()
    updated = sb.store.editable(inv)
    updated["voided_at"] = voided_at or now[:19] + "Z"
    updated["updated_at"] = now
    sb.store.put("invoices", updated)
    post_void(sb, AR, updated)
    return 200, invoice_view(sb, updated)
