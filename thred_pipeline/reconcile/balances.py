"""The party-balance checks of the books: what Thred says each party owes (its party item and
its aging report), against the open balance the warehouse's documents and settlements imply.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from thred_pipeline import entities
from thred_pipeline.core.records import Status
from thred_pipeline.entities import Balances
from thred_pipeline.entities.thred_values import money
from thred_pipeline.ledger.codes import LedgerCode
from thred_pipeline.reconcile import thred_side
from thred_pipeline.reconcile.explain import explain
from thred_pipeline.reconcile.findings import (
    Cause,
    CheckReport,
    SeverityPolicy,
    balance_check_name,
    finish_check,
)
from thred_pipeline.reconcile.parties import (
    PartyComparison,
    PartyKey,
    expected_open,
    money_entities,
)
from thred_pipeline.reconcile.reading import BUSINESSES, LedgerView, Pairs
from thred_pipeline.reconcile.warehouse_side import WarehouseBooks

UNSETTLED_COLUMNS = ["entity", "business_id", "source_id", "party_id", "cause", "explanation"]


@dataclass
class BooksRead:
    """One night's reading of both sides, shared by every check of the books."""

    warehouse: WarehouseBooks
    frames: Mapping[str, pd.DataFrame]  # entity -> expected records (of businesses read)
    items: Mapping[str, Pairs]  # entity -> Thred items
    aging: Mapping[str, Mapping[str, Mapping[str, Any]]]  # business -> side -> report
    ledger: LedgerView
    not_read: Mapping[str, str]
    as_of: pd.Timestamp


def balance_check(
    side: Balances, read: BooksRead, record_differences: pd.DataFrame, policy: SeverityPolicy
) -> CheckReport:
    """Open balance per party: the party list (customers) and the aging report."""
    allocations = pd.concat(
        [
            read.warehouse.allocations(s.allocations, s.settlement_column, s.document_column)
            for s in side.settlements
        ],
        ignore_index=True,
    )
    expected = expected_open(read.frames[side.document], allocations, side)
    shown = set(read.frames[BUSINESSES.name]["source_id"]) - set(read.not_read)
    thred_values, aging_totals = _thred_balances(side, read, shown)
    expected = expected[expected["business_id"].isin(shown)]
    parties = read.frames[side.party]
    parties = parties[parties["business_id"].isin(shown)]
    check = balance_check_name(side)
    explaining = pd.concat([record_differences, _unsettled(side, read)], ignore_index=True)
    comparison = PartyComparison(side, expected, parties, explaining, check)
    rows = comparison.run(thred_values, aging_totals)
    party = entities.get(side.party).label
    metrics = {
        f"{party}s_compared": len(parties),
        "expected_open_cents": int(expected["expected"].fillna(0).sum()),
    }
    measures = f"{side.name.upper()} aging"
    if side.party_balance:
        measures += f", {party} {side.party_balance}"
    description = f"{party} open balances ({measures})"
    return finish_check(check, side.party, description, rows, policy, metrics, dict(read.not_read))


def _thred_balances(
    side: Balances, read: BooksRead, shown: set[str]
) -> tuple[dict[PartyKey, dict[str, Any]], dict[str, Any]]:
    """(business, party) -> measure -> Thred's value; business -> Thred's aging total."""
    values: dict[PartyKey, dict[str, Any]] = defaultdict(dict)
    refs = read.ledger.refs[side.party]
    if side.party_balance:
        for business_id, item in read.items[side.party]:
            source = refs.get(str(item.get("id")), f"thred:{item.get('id')}")
            values[(business_id, source)][side.party_balance] = money(item, side.party_balance)
    party = entities.get(side.party).label
    parties = read.frames[side.party]
    totals: dict[str, Any] = {}
    for business_id in sorted(shown):
        # A business Thred does not hold at all has nothing open there: compare with 0.
        body = read.aging.get(business_id, {}).get(side.name, {"total_outstanding_cents": 0})
        totals[business_id] = money(body, "total_outstanding_cents")
        for thred_id, value in thred_side.aging_per_party(body, party).items():
            values[(business_id, refs.get(thred_id, f"thred:{thred_id}"))]["aging"] = value
        for (b, _party), measures in list(values.items()):
            if b == business_id:
                measures.setdefault("aging", 0)
        for p in parties.loc[parties["business_id"] == business_id, "source_id"]:
            values[(business_id, p)].setdefault("aging", 0)
            if side.party_balance:
                values[(business_id, p)].setdefault(side.party_balance, None)
    return values, totals


def _unsettled(side: Balances, read: BooksRead) -> pd.DataFrame:
    """A party's documents and settlements the ledger does not show as synced at their current
    version: they explain a balance difference even when their own documented fields match
    (e.g. an invoice update whose outcome is uncertain changes only the total)."""
    rows = []
    for entity in money_entities(side):
        ledger = read.ledger.rows[entity]
        columns = ["source_id", "business_id", side.party_column, "version"]
        for source_id, business_id, party, version in read.frames[entity][columns].itertuples(
            index=False
        ):
            row = ledger.get(source_id)
            cause, why = explain(row, version, read.as_of)
            settled = (
                row is not None
                and row.status is Status.SYNCED
                and row.error_code != LedgerCode.TERMINAL_WAITING
                and cause is Cause.UNEXPLAINED
            )
            if not settled:
                rows.append([entity, business_id, source_id, str(party), cause.value, why])
    return pd.DataFrame(rows, columns=UNSETTLED_COLUMNS)
