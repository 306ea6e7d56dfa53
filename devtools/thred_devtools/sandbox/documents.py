"""Invoices and bills, written once: party, lines, totals, status and the journal entry.

Ledger ([doc] embedded-accounting page + JE example for AR; AP [inferred] as its mirror): a
document moves its total into the control account (DR AR 1200 / CR AP 2100) against the
line accounts (nets) and VAT (payable 2200 on sales, recoverable 1300 on purchases).
Invoices add [inferred] DR sales discounts 4050 for ``additional_discount`` and CR the tips
account for ``tips``; a void posts the exact reverse. A document's outstanding amount is
the control account tagged with it, so it always agrees with the journal, party balances
and aging. The side-specific request fields and response shapes live in invoices.py and
bills.py, which hand this module a ``fields`` builder and a ``view``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    add_error,
    check_currency,
    date_of,
    external_id_free,
    fail_if,
    replay_existing,
)
from thred_devtools.sandbox.errors import Details, conflict
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.lines import build_lines, compute_line
from thred_devtools.sandbox.models import LineItemIn
from thred_devtools.sandbox.sides import Side
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj

__all__ = [
    "Fields",
    "allocations_of",
    "compute_document",
    "doc_outstanding",
    "doc_status",
    "due_date",
    "new_document",
    "post_document",
    "post_void",
    "replay_document",
    "repost_document",
    "resolve_party",
    "settled",
    "status_of",
    "update_document",
]

View = Callable[[Obj], dict[str, Any]]
# (document so far, its party, details) -> the side's stored fields (create) / applied (update)
Fields = Callable[[Obj, Obj, Details], dict[str, Any]]


# ------------------------------------------------------------------ reads
def doc_outstanding(sb: Sandbox, side: Side, doc: Obj) -> int:
    tag = (side.doc_id, doc["id"])
    return side.sign * sb.balances.net_debit(doc["_scope"], side.control_account, tag)


def allocations_of(sb: Sandbox, side: Side, doc: Obj, index: str) -> list[tuple[Obj, Obj]]:
    """(settlement, allocation) pairs of one kind (``index``) that settle ``doc``."""
    out: list[tuple[Obj, Obj]] = []
    for settlement in sb.store.lookup(index, doc["id"]):
        out.extend(
            (settlement, a) for a in settlement["allocations"] if a[side.doc_id] == doc["id"]
        )
    return out


def settled(sb: Sandbox, side: Side, doc: Obj) -> int:
    """Everything allocated to ``doc``: payments (and, for bills, vendor credits)."""
    return sum(
        int(a["amount_cents"])
        for index, _ in side.settlements
        for _, a in allocations_of(sb, side, doc, index)
    )


def doc_status(side: Side, doc: Obj, outstanding: int, settled_amount: int) -> str:
    if doc.get("voided_at"):
        return side.status_voided
    if outstanding <= 0:
        return side.status_paid
    if settled_amount > 0:
        return side.status_partially_paid
    return side.status_open


def status_of(sb: Sandbox, side: Side, doc: Obj) -> str:
    return doc_status(side, doc, doc_outstanding(sb, side, doc), settled(sb, side, doc))


def due_date(doc: Obj) -> dt.date:
    """The date a document ages from (``rules.AGING_DATE_FIELDS``)."""
    for key in rules.AGING_DATE_FIELDS:
        day = date_of(doc.get(key))
        if day is not None:
            return day
    return today()


def resolve_party(
    sb: Sandbox,
    side: Side,
    scope: str,
    party_id: str | None,
    external_id: str | None,
    details: Details,
) -> Obj | None:
    """The party named by id and/or external id (both given: they must agree)."""
    party = None
    if party_id is not None:
        party = sb.store.get_in(side.parties, scope, party_id)
        if party is None:
            add_error(
                details,
                side.party_id,
                f"{side.party_title} not found. Create the {side.party} before its {side.docs}.",
            )
            return None
    if external_id is not None:
        by_ext = sb.store.find(scope, side.parties, "external_id", external_id)
        if by_ext is None:
            add_error(
                details,
                side.party_external_id,
                f"{side.party_title} not found. Create the {side.party} first.",
            )
            return None
        if party is not None and by_ext["id"] != party["id"]:
            add_error(details, side.party_external_id, f"Disagrees with {side.party_id}.")
            return None
        party = by_ext
    if party is None:
        add_error(details, side.party_id, rules.REQUIRED_MSG)
    return party


# ------------------------------------------------------------------ totals and ledger
def compute_document(doc: Obj) -> None:
    """Totals from the lines; the invoice-only adjustments are absent (0) on bills."""
    for ln in doc["line_items"]:
        compute_line(ln)
    subtotal = sum(ln["subtotal"] for ln in doc["line_items"])
    line_tax = sum(ln["sales_taxes_total"] for ln in doc["line_items"])
    extra_tax = int(doc.get("additional_sales_taxes_total") or 0)
    doc[rules.F_SUBTOTAL] = subtotal
    doc[rules.F_TAX_TOTAL] = line_tax + extra_tax
    doc[rules.F_TOTAL] = (
        subtotal
        + line_tax
        + extra_tax
        - int(doc.get("additional_discount") or 0)
        + int(doc.get("tips") or 0)
    )


def post_document(sb: Sandbox, side: Side, doc: Obj) -> None:
    """(Re)post the document's entry; ``side.sign`` turns AR's debits into AP's credits."""
    noun = side.doc.capitalize()
    body = EntryBuilder()
    for ln in doc["line_items"]:
        body.cr(
            ln["account_code"], side.sign * ln["subtotal"], ln.get("description") or f"{noun} line"
        )
        tax_label = f"{side.tax_label} {ln.get('tax_code') or ''}".strip()
        body.cr(side.tax_account, side.sign * ln["sales_taxes_total"], tax_label)
    extra_tax = int(doc.get("additional_sales_taxes_total") or 0)
    body.cr(rules.ACC_VAT_PAYABLE, extra_tax, "Additional sales taxes")
    body.dr(rules.ACC_SALES_DISCOUNTS, int(doc.get("additional_discount") or 0), "Invoice discount")
    body.cr(doc.get("tips_account_code") or rules.ACC_TIPS, int(doc.get("tips") or 0), "Tips")
    control = EntryBuilder()
    tags = {side.doc_id: doc["id"], side.party_id: doc[side.party_id]}
    control.dr(side.control_account, side.sign * doc[rules.F_TOTAL], f"{noun} total", **tags)
    entry = EntryBuilder()
    first, second = (control, body) if side.control_first else (body, control)
    entry.lines = [*first.lines, *second.lines]
    dates = [date_of(doc.get(field)) for field in side.date_fields]
    day = next((d for d in dates if d is not None), None) or date_of(doc["created_at"]) or today()
    memo = f"{noun} {doc.get(side.number_field) or doc['id']}"
    ledger.post_entry(
        sb.store,
        doc["_scope"],
        f"{side.doc}:{doc['id']}",
        side.doc,
        doc["id"],
        day.isoformat(),
        memo,
        entry,
        now_iso(),
    )


def post_void(sb: Sandbox, side: Side, doc: Obj) -> None:
    """The exact reverse of the document's entry, dated on the void."""
    original = sb.store.find(doc["_scope"], ledger.JE, "_key", f"{side.doc}:{doc['id']}")
    b = EntryBuilder()
    for ln in original["lines"] if original else []:
        b.lines.append({**ln, "debit": ln["credit"], "credit": ln["debit"]})
    day = (date_of(doc["voided_at"]) or today()).isoformat()
    memo = f"Void {side.doc} {doc.get(side.number_field) or doc['id']}"
    ledger.post_entry(
        sb.store,
        doc["_scope"],
        f"{side.doc}_void:{doc['id']}",
        f"{side.doc}_void",
        doc["id"],
        day,
        memo,
        b,
        now_iso(),
    )


def repost_document(sb: Sandbox, side: Side, doc: Obj) -> None:
    """After a change to stored inputs (tamper): recompute and re-post, void included."""
    compute_document(doc)
    sb.store.put(side.docs, doc)
    post_document(sb, side, doc)
    if doc.get("voided_at"):
        post_void(sb, side, doc)


# ------------------------------------------------------------------ writes
def replay_document(
    sb: Sandbox, side: Side, scope: str, external_id: str | None, view: View
) -> Result | None:
    """The answer to a create repeating an external_id, or None for a new document."""
    if external_id is None:
        return None
    existing = sb.store.find(scope, side.docs, "external_id", external_id)
    return None if existing is None else replay_existing(sb, side.doc, existing, view)


def _lines(
    sb: Sandbox, side: Side, business: Obj, items: list[LineItemIn], party: Obj, details: Details
) -> list[Obj]:
    return build_lines(
        sb,
        business,
        items,
        details,
        account_types=side.line_account_types,
        default_account=side.default_line_account,
        tax_exempt=bool(party.get("tax_exempt")),
    )


def _check_total(doc: Obj, settled_amount: int, side: Side) -> None:
    total = doc[rules.F_TOTAL]
    if total < 0:
        fail_if({"additional_discount": [f"The {side.doc} total cannot be negative."]})
    if total < settled_amount:
        fail_if(
            {
                "line_items": [
                    f"The new total {total} is below the {settled_amount} {side.settled_below}"
                ]
            }
        )


def new_document(
    sb: Sandbox,
    side: Side,
    business: Obj,
    party_ref: tuple[str | None, str | None],
    currency: str | None,
    items: list[LineItemIn],
    fields: Fields,
) -> Obj:
    """Validate, store and post a new document; ``fields`` adds the side's own fields."""
    scope = business["id"]
    details: Details = {}
    party = resolve_party(sb, side, scope, *party_ref, details)
    fail_if(details)  # ordering errors first: nothing else matters without the party
    assert party is not None
    if party["is_archived"] and side.archived_blocks:
        add_error(details, side.party_id, f"{side.party_title} is archived.")
    if currency is not None and side.currency_alias:
        sb.note_alias(side.currency_alias)
    check_currency(details, business, currency)
    lines = _lines(sb, side, business, items, party, details)
    data = fields({"line_items": lines}, party, details)
    fail_if(details)
    now = now_iso()
    doc: Obj = {
        "id": sb.store.new_id(),
        "_scope": scope,
        "business_id": scope,
        **data,
        "created_at": now,
        "updated_at": now,
    }
    compute_document(doc)
    _check_total(doc, 0, side)
    sb.store.put(side.docs, doc)
    post_document(sb, side, doc)
    return doc


def update_document(
    sb: Sandbox,
    side: Side,
    business: Obj,
    doc: Obj,
    body: Any,
    fields: Fields,
) -> Obj:
    """Apply an update (lines replace the whole set); ``fields`` applies the side's own."""
    scope = business["id"]
    sent = body.model_fields_set
    details: Details = {}
    settled_amount = settled(sb, side, doc)
    updated = sb.store.editable(doc)
    if "external_id" in sent and body.external_id != doc.get("external_id"):
        external_id_free(sb, scope, side.docs, body.external_id, doc["id"])
        updated["external_id"] = body.external_id
    party_ref = (getattr(body, side.party_id), getattr(body, side.party_external_id))
    if party_ref != (None, None):
        party = resolve_party(sb, side, scope, *party_ref, details)
        fail_if(details)
        assert party is not None
        if party["id"] != doc[side.party_id]:
            if settled_amount > 0:
                article = "an" if side.doc[0] in "aeiou" else "a"
                raise conflict(
                    f"The {side.party} of {article} {side.doc} with {side.settled_words} "
                    "cannot change."
                )
            updated[side.party_id] = party["id"]
    party = sb.store.get_in(side.parties, scope, updated[side.party_id]) or {}
    check_currency(details, business, body.currency)
    if body.line_items is not None:
        updated["line_items"] = _lines(sb, side, business, body.line_items, party, details)
    updated.update(fields(updated, party, details))
    fail_if(details)
    compute_document(updated)
    _check_total(updated, settled_amount, side)
    updated["updated_at"] = now_iso()
    sb.store.put(side.docs, updated)
    post_document(sb, side, updated)
    return updated
