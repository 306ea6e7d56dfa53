"""Invoices: create, update (lines replace the whole set), void, and their ledger entry.

Ledger ([doc] embedded-accounting page + JE example): DR AR 1200 total / CR revenue (the
line accounts) nets / CR VAT payable 2200 taxes; [inferred] DR sales discounts 4050 for
``additional_discount`` and CR the tips account for ``tips``. A void posts the exact
reverse. Invoice outstanding is the AR balance tagged with the invoice, so it always agrees
with the journal, customer balances and aging.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    add_error,
    check_currency,
    customer_view,
    date_of,
    external_id_free,
    fail_if,
    public,
    replay_existing,
    resolve_account,
)
from thred_devtools.sandbox.errors import Details, conflict
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.lines import build_extra_taxes, build_lines, compute_line, line_view
from thred_devtools.sandbox.models import (
    InvoiceCreate,
    InvoiceUpdate,
)
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj


def invoice_outstanding(sb: Sandbox, inv: Obj) -> int:
    return sb.balances.net_debit(inv["_scope"], rules.ACC_AR, ("invoice_id", inv["id"]))


def invoice_allocations(sb: Sandbox, inv: Obj) -> list[tuple[Obj, Obj]]:
    """(payment, allocation) pairs that pay this invoice."""
    out = []
    for pay in sb.store.lookup("payments_by_invoice", inv["id"]):
        for alloc in pay["allocations"]:
            if alloc["invoice_id"] == inv["id"]:
                out.append((pay, alloc))
    return out


def invoice_paid(sb: Sandbox, inv: Obj) -> int:
    return sum(a["amount_cents"] for _, a in invoice_allocations(sb, inv))


def invoice_status(
    sb: Sandbox, inv: Obj, outstanding: int | None = None, paid: int | None = None
) -> str:
    if inv.get("voided_at"):
        return rules.INVOICE_VOIDED
    outstanding = invoice_outstanding(sb, inv) if outstanding is None else outstanding
    paid = invoice_paid(sb, inv) if paid is None else paid
    if outstanding <= 0:
        return rules.INVOICE_PAID
    if paid > 0:
        return rules.INVOICE_PARTIALLY_PAID
    return rules.INVOICE_SENT


def due_date(doc: Obj) -> dt.date:
    """The date a document ages from (``rules.AGING_DATE_FIELDS``)."""
    for key in rules.AGING_DATE_FIELDS:
        day = date_of(doc.get(key))
        if day is not None:
            return day
    return today()


def invoice_view(sb: Sandbox, inv: Obj, with_customer: bool = True) -> dict[str, Any]:
    scope = inv["_scope"]
    out = public(inv)
    outstanding = invoice_outstanding(sb, inv)
    allocs = invoice_allocations(sb, inv)
    paid = sum(a["amount_cents"] for _, a in allocs)
    status = invoice_status(sb, inv, outstanding, paid)
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
    out.pop("tips_account_code", None)
    return out


def compute_invoice(inv: Obj) -> None:
    for ln in inv["line_items"]:
        compute_line(ln)
    subtotal = sum(ln["subtotal"] for ln in inv["line_items"])
    line_tax = sum(ln["sales_taxes_total"] for ln in inv["line_items"])
    extra_tax = int(inv.get("additional_sales_taxes_total") or 0)
    inv[rules.F_SUBTOTAL] = subtotal
    inv[rules.F_TAX_TOTAL] = line_tax + extra_tax
    inv[rules.F_TOTAL] = (
        subtotal
        + line_tax
        + extra_tax
        - int(inv.get("additional_discount") or 0)
        + int(inv.get("tips") or 0)
    )


def post_invoice(sb: Sandbox, inv: Obj) -> None:
    b = EntryBuilder()
    tags = {"invoice_id": inv["id"], "customer_id": inv["customer_id"]}
    b.dr(rules.ACC_AR, inv[rules.F_TOTAL], "Invoice total", **tags)
    for ln in inv["line_items"]:
        b.cr(ln["account_code"], ln["subtotal"], ln.get("description") or "Invoice line")
        b.cr(
            rules.ACC_VAT_PAYABLE,
            ln["sales_taxes_total"],
            f"VAT {ln.get('tax_code') or ''}".strip(),
        )
    b.cr(
        rules.ACC_VAT_PAYABLE,
        int(inv.get("additional_sales_taxes_total") or 0),
        "Additional sales taxes",
    )
    b.dr(rules.ACC_SALES_DISCOUNTS, int(inv.get("additional_discount") or 0), "Invoice discount")
    b.cr(inv.get("tips_account_code") or rules.ACC_TIPS, int(inv.get("tips") or 0), "Tips")
    day = (date_of(inv.get("sent_at")) or date_of(inv["created_at"]) or today()).isoformat()
    memo = f"Invoice {inv.get('invoice_number') or inv['id']}"
    ledger.post_entry(
        sb.store,
        inv["_scope"],
        f"invoice:{inv['id']}",
        "invoice",
        inv["id"],
        day,
        memo,
        b,
        now_iso(),
    )


def _resolve_customer(
    sb: Sandbox,
    business: Obj,
    customer_id: str | None,
    customer_external_id: str | None,
    details: Details,
) -> Obj | None:
    scope = business["id"]
    customer = None
    if customer_id is not None:
        customer = sb.store.get_in("customers", scope, customer_id)
        if customer is None:
            add_error(
                details,
                "customer_id",
                "Customer not found. Create the customer before its invoices.",
            )
            return None
    if customer_external_id is not None:
        by_ext = sb.store.find(scope, "customers", "external_id", customer_external_id)
        if by_ext is None:
            add_error(
                details, "customer_external_id", "Customer not found. Create the customer first."
            )
            return None
        if customer is not None and by_ext["id"] != customer["id"]:
            add_error(details, "customer_external_id", "Disagrees with customer_id.")
            return None
        customer = by_ext
    if customer is None:
        add_error(details, "customer_id", rules.REQUIRED_MSG)
    return customer


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
    store = sb.store
    scope = business["id"]
    if body.external_id is not None:
        existing = store.find(scope, "invoices", "external_id", body.external_id)
        if existing is not None:
            return replay_existing(sb, "invoice", existing, lambda i: invoice_view(sb, i))
    details: Details = {}
    customer = _resolve_customer(sb, business, body.customer_id, body.customer_external_id, details)
    fail_if(details)  # ordering errors first: nothing else matters without the customer
    assert customer is not None
    if customer["is_archived"] and rules.ARCHIVED_CUSTOMER_BLOCKS_INVOICES:
        add_error(details, "customer_id", "Customer is archived.")
    if body.currency is not None:
        sb.note_alias("invoice.currency")
    check_currency(details, business, body.currency)
    lines = build_lines(
        sb,
        business,
        body.line_items,
        details,
        account_types=rules.INVOICE_LINE_ACCOUNT_TYPES,
        default_account=rules.DEFAULT_INVOICE_LINE_ACCOUNT,
        tax_exempt=bool(customer.get("tax_exempt")),
    )
    extra, extra_total = build_extra_taxes(
        business, body.additional_sales_taxes, body.additional_sales_taxes_total, details
    )
    tips_code = _tips_account(sb, business, body.tips_account, details)
    fail_if(details)
    now = now_iso()
    inv: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "customer_id": customer["id"],
        "invoice_number": body.invoice_number,
        "invoice_type": body.invoice_type or "invoice",
        "sent_at": body.sent_at,
        "due_at": body.due_at,
        "voided_at": None,
        "memo": body.memo,
        "currency": business["base_currency"],
        "line_items": lines,
        "additional_discount": body.additional_discount,
        "additional_sales_taxes": extra,
        "additional_sales_taxes_total": extra_total,
        "tips": body.tips,
        "tips_account_code": tips_code,
        "transaction_tags": body.transaction_tags or [],
        "metadata": body.metadata or {},
        "created_at": now,
        "updated_at": now,
    }
    compute_invoice(inv)
    if inv[rules.F_TOTAL] < 0:
        fail_if({"additional_discount": ["The invoice total cannot be negative."]})
    store.put("invoices", inv)
    post_invoice(sb, inv)
    if body.voided_at:
        void_invoice(sb, inv, body.voided_at)
        inv = store.get("invoices", inv["id"]) or inv
    return 201, invoice_view(sb, inv)


def update_invoice(sb: Sandbox, business: Obj, inv: Obj, body: InvoiceUpdate) -> Result:
    if inv.get("voided_at"):
        raise conflict("A voided invoice cannot be updated.")
    sent = body.model_fields_set
    details: Details = {}
    paid = invoice_paid(sb, inv)
    updated = sb.store.editable(inv)
    if "external_id" in sent and body.external_id != inv.get("external_id"):
        external_id_free(sb, business["id"], "invoices", body.external_id, inv["id"])
        updated["external_id"] = body.external_id
    if body.customer_id is not None or body.customer_external_id is not None:
        customer = _resolve_customer(
            sb, business, body.customer_id, body.customer_external_id, details
        )
        fail_if(details)
        assert customer is not None
        if customer["id"] != inv["customer_id"]:
            if paid > 0:
                raise conflict("The customer of an invoice with payments cannot change.")
            updated["customer_id"] = customer["id"]
    customer = sb.store.get_in("customers", business["id"], updated["customer_id"]) or {}
    check_currency(details, business, body.currency)
    for field in ("invoice_number", "invoice_type", "sent_at", "due_at", "memo", "document"):
        if field in sent:
            updated[field] = getattr(body, field)
    for field in ("transaction_tags", "metadata"):
        if field in sent:
            updated[field] = getattr(body, field) or ({} if field == "metadata" else [])
    for field in ("additional_discount", "tips"):
        if field in sent:
            updated[field] = getattr(body, field) or 0
    if body.line_items is not None:
        updated["line_items"] = build_lines(
            sb,
            business,
            body.line_items,
            details,
            account_types=rules.INVOICE_LINE_ACCOUNT_TYPES,
            default_account=rules.DEFAULT_INVOICE_LINE_ACCOUNT,
            tax_exempt=bool(customer.get("tax_exempt")),
        )
    if body.additional_sales_taxes is not None or "additional_sales_taxes_total" in sent:
        extra, extra_total = build_extra_taxes(
            business, body.additional_sales_taxes or [], body.additional_sales_taxes_total, details
        )
        updated["additional_sales_taxes"] = extra
        updated["additional_sales_taxes_total"] = extra_total
    if "tips_account" in sent:
        updated["tips_account_code"] = _tips_account(sb, business, body.tips_account, details)
    fail_if(details)
    compute_invoice(updated)
    if updated[rules.F_TOTAL] < 0:
        fail_if({"additional_discount": ["The invoice total cannot be negative."]})
    if updated[rules.F_TOTAL] < paid:
        fail_if(
            {
                "line_items": [
                    f"The new total {updated[rules.F_TOTAL]} is below the {paid} "
                    "already paid on this invoice."
                ]
            }
        )
    updated["updated_at"] = now_iso()
    sb.store.put("invoices", updated)
    post_invoice(sb, updated)
    return 200, invoice_view(sb, updated)


def void_invoice(sb: Sandbox, inv: Obj, voided_at: str | None = None) -> Result:
    if inv.get("voided_at"):
        if not rules.VOID_TWICE_IS_OK:
            raise conflict("The invoice is already voided.")
        return 200, invoice_view(sb, inv)
    if invoice_paid(sb, inv) > 0:
        raise conflict("The invoice has payments allocated to it; it cannot be voided.")
    now = now_iso()
    updated = sb.store.editable(inv)
    updated["voided_at"] = voided_at or now[:19] + "Z"
    updated["updated_at"] = now
    sb.store.put("invoices", updated)
    _post_void(sb, updated)
    return 200, invoice_view(sb, updated)


def _post_void(sb: Sandbox, inv: Obj) -> None:
    original = sb.store.find(inv["_scope"], ledger.JE, "_key", f"invoice:{inv['id']}")
    b = EntryBuilder()
    for ln in original["lines"] if original else []:
        b.lines.append({**ln, "debit": ln["credit"], "credit": ln["debit"]})
    day = (date_of(inv["voided_at"]) or today()).isoformat()
    memo = f"Void invoice {inv.get('invoice_number') or inv['id']}"
    ledger.post_entry(
        sb.store,
        inv["_scope"],
        f"invoice_void:{inv['id']}",
        "invoice_void",
        inv["id"],
        day,
        memo,
        b,
        now_iso(),
    )


def repost_invoice(sb: Sandbox, inv: Obj) -> None:
    """After a change to stored inputs (tamper): recompute and re-post, void included."""
    compute_invoice(inv)
    sb.store.put("invoices", inv)
    post_invoice(sb, inv)
    if inv.get("voided_at"):
        _post_void(sb, inv)
