"""AR and AP aging from the ledger-backed outstanding balances.

The total always equals the sum of open invoice (bill) outstanding amounts and the sum of
the customers' (vendors') balances; see ``rules.AGING_*`` for the inferred details.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.documents import doc_outstanding, due_date
from thred_devtools.sandbox.errors import validation_error
from thred_devtools.sandbox.sides import Side
from thred_devtools.sandbox.state import Sandbox
from thred_devtools.sandbox.store import Obj


def _buckets() -> dict[str, int]:
    return {key: 0 for key, _, _ in rules.AGING_BUCKETS}


def bucket_of(days_past_due: int) -> str:
    for key, low, high in rules.AGING_BUCKETS:
        if (low is None or days_past_due >= low) and (high is None or days_past_due <= high):
            return key
    return rules.AGING_BUCKETS[-1][0]


def _ledger_open_amounts(sb: Sandbox, side: Side, scope: str, as_of: dt.date) -> dict[str, int]:
    """Each document's outstanding amount on ``as_of`` (the journal up to that date)."""
    out: dict[str, int] = {}
    for _, ln in ledger.iter_lines(sb.store, scope, end=as_of):
        if ln["account"] == side.control_account and side.doc_id in ln["tags"]:
            doc = ln["tags"][side.doc_id]
            out[doc] = out.get(doc, 0) + side.sign * (ln["debit"] - ln["credit"])
    return out


def aging(sb: Sandbox, side: Side, business: Obj, as_of: dt.date, group_by: str) -> dict[str, Any]:
    """Open documents of ``side`` by bucket, in total and per party (unless ``total``)."""
    if group_by not in (side.party, "total"):
        raise validation_error({"group_by": [f'Must be "{side.party}" or "total".']})
    scope = business["id"]
    totals = _buckets()
    parties: dict[str, dict[str, Any]] = {}
    as_of_amounts = (
        _ledger_open_amounts(sb, side, scope, as_of) if rules.AGING_USES_LEDGER_AS_OF else None
    )
    for doc in sb.store.scan(scope, side.docs):
        if as_of_amounts is not None:
            amount = as_of_amounts.get(doc["id"], 0)
        else:
            amount = doc_outstanding(sb, side, doc)
        if amount == 0:
            continue
        bucket = bucket_of((as_of - due_date(doc)).days)
        totals[bucket] += amount
        party_id = doc.get(side.party_id) or ""
        entry = parties.get(party_id)
        if entry is None:
            entry = parties[party_id] = _party_row(sb, side, scope, party_id)
        entry["total_outstanding_cents"] += amount
        entry["aging_buckets"][bucket] += amount
    return {
        "business_id": scope,
        "as_of_date": as_of.isoformat(),
        "currency": business["base_currency"],
        "group_by": group_by,
        "total_outstanding_cents": sum(totals.values()),
        "total_aging_buckets": totals,
        side.parties: list(parties.values()) if group_by != "total" else [],
    }


def _party_row(sb: Sandbox, side: Side, scope: str, party_id: str) -> dict[str, Any]:
    party = sb.store.get_in(side.parties, scope, party_id) or {}
    return {
        side.party_id: party_id,
        side.party_external_id: party.get("external_id"),
        f"{side.party}_name": party.get("company_name") or party.get("individual_name"),
        "total_outstanding_cents": 0,
        "aging_buckets": _buckets(),
    }
