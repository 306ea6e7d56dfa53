"""AR and AP aging from the ledger-backed outstanding balances.

The total always equals the sum of open invoice (bill) outstanding amounts and the sum of
the customers' (vendors') balances; see ``rules.AGING_*`` for the inferred details.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.ap import bill_outstanding
from thred_devtools.sandbox.errors import validation_error
from thred_devtools.sandbox.invoices import due_date, invoice_outstanding
from thred_devtools.sandbox.state import Sandbox
from thred_devtools.sandbox.store import Obj


def _buckets() -> dict[str, int]:
    return {key: 0 for key, _, _ in rules.AGING_BUCKETS}


def bucket_of(days_past_due: int) -> str:
    for key, low, high in rules.AGING_BUCKETS:
        if (low is None or days_past_due >= low) and (high is None or days_past_due <= high):
            return key
    return rules.AGING_BUCKETS[-1][0]


def _ledger_open_amounts(
    sb: Sandbox, scope: str, account: str, tag: str, as_of: dt.date
) -> dict[str, int]:
    sign = 1 if account in (rules.ACC_AR,) else -1
    out: dict[str, int] = {}
    for _, ln in ledger.iter_lines(sb.store, scope, end=as_of):
        if ln["account"] == account and tag in ln["tags"]:
            doc = ln["tags"][tag]
            out[doc] = out.get(doc, 0) + sign * (ln["debit"] - ln["credit"])
    return out


def aging_report(
    sb: Sandbox,
    business: Obj,
    as_of: dt.date,
    group_by: str,
    *,
    collection: str,
    party_collection: str,
    party_field: str,
    party_key: str,
    open_amount: Any,
    account: str,
    doc_tag: str,
) -> dict[str, Any]:
    scope = business["id"]
    totals = _buckets()
    parties: dict[str, dict[str, Any]] = {}
    as_of_amounts = (
        _ledger_open_amounts(sb, scope, account, doc_tag, as_of)
        if rules.AGING_USES_LEDGER_AS_OF
        else None
    )
    for doc in sb.store.scan(scope, collection):
        amount = as_of_amounts.get(doc["id"], 0) if as_of_amounts is not None else open_amount(doc)
        if amount == 0:
            continue
        bucket = bucket_of((as_of - due_date(doc)).days)
        totals[bucket] += amount
        party_id = doc.get(party_field) or ""
        entry = parties.get(party_id)
        if entry is None:
            party = sb.store.get_in(party_collection, scope, party_id) or {}
            entry = parties[party_id] = {
                f"{party_key}_id": party_id,
                f"{party_key}_external_id": party.get("external_id"),
                f"{party_key}_name": party.get("company_name") or party.get("individual_name"),
                "total_outstanding_cents": 0,
                "aging_buckets": _buckets(),
            }
        entry["total_outstanding_cents"] += amount
        entry["aging_buckets"][bucket] += amount
    return {
        "business_id": scope,
        "as_of_date": as_of.isoformat(),
        "currency": business["base_currency"],
        "group_by": group_by,
        "total_outstanding_cents": sum(totals.values()),
        "total_aging_buckets": totals,
        f"{party_key}s": list(parties.values()) if group_by != "total" else [],
    }


def ar_aging(sb: Sandbox, business: Obj, as_of: dt.date, group_by: str) -> dict[str, Any]:
    if group_by not in ("customer", "total"):
        raise validation_error({"group_by": ['Must be "customer" or "total".']})
    return aging_report(
        sb,
        business,
        as_of,
        group_by,
        collection="invoices",
        party_collection="customers",
        party_field="customer_id",
        party_key="customer",
        open_amount=lambda inv: invoice_outstanding(sb, inv),
        account=rules.ACC_AR,
        doc_tag="invoice_id",
    )


def ap_aging(sb: Sandbox, business: Obj, as_of: dt.date, group_by: str) -> dict[str, Any]:
    if group_by not in ("vendor", "total"):
        raise validation_error({"group_by": ['Must be "vendor" or "total".']})
    return aging_report(
        sb,
        business,
        as_of,
        group_by,
        collection="bills",
        party_collection="vendors",
        party_field="vendor_id",
        party_key="vendor",
        open_amount=lambda bill: bill_outstanding(sb, bill),
        account=rules.ACC_AP,
        doc_tag="bill_id",
    )
