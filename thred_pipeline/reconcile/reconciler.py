"""Run reconciliation at its two levels.

- ``WindowReconciler`` (per partition, inside each push step): the records of one entity that
  changed in the window are in Thred with the same documented values, or listed with their
  reason. It reads that entity's list only for businesses with records in the window.
- ``BooksReconciler`` (per night, and on demand): the whole books of every active business —
  every record of every entity, each customer's and vendor's open balance and aging, each
  business's aging totals — read once, not once per partition.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pandas as pd

from thred_pipeline.core.records import Status, TimeWindow
from thred_pipeline.ledger import LedgerRow, SyncLedger
from thred_pipeline.reconcile import thred_side
from thred_pipeline.reconcile.compare import (
    AP,
    AR,
    RULES,
    RecordComparison,
    Side,
    compare_parties,
    expected_open,
    parties_of,
    with_parties,
)
from thred_pipeline.reconcile.explain import TERMINAL_WAITING, explain
from thred_pipeline.reconcile.findings import (
    Cause,
    CheckReport,
    SeverityPolicy,
    differences_frame,
)
from thred_pipeline.reconcile.report import BooksReport
from thred_pipeline.reconcile.warehouse_side import WarehouseBooks
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.errors import ThredAuthError
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.extract import Warehouse

T = TypeVar("T")
ENTITY_ORDER = tuple(RULES)
THRED_COLUMNS = ("business_id", "thred_id", "external_id", "source_id")
WINDOW_POLICY = SeverityPolicy()  # explained differences WARN: one bad row never blocks others


class _Context:
    """The ledger read once: rows per entity and Thred id -> source id maps."""

    def __init__(self, ledger: SyncLedger) -> None:
        self.rows: dict[str, dict[str, LedgerRow]] = {}
        self.refs: dict[str, dict[str, str]] = {}
        for entity in ENTITY_ORDER:
            rows = {r.source_id: r for r in ledger.iter_rows(entity)}
            self.rows[entity] = rows
            self.refs[entity] = {r.thred_id: s for s, r in rows.items() if r.thred_id}

    def thred_business(self, business_id: str) -> str | None:
        row = self.rows["businesses"].get(business_id)
        return row.thred_id if row else None


def thred_frame(
    entity: str,
    items: Iterable[tuple[str, Mapping[str, Any]]],
    refs: Mapping[str, Mapping[str, str]],
) -> pd.DataFrame:
    """Thred items of one entity as rows with the compared columns; (business, item) pairs."""
    shape = thred_side.SHAPES[entity]
    rows = []
    for business_id, item in items:
        thred_id = str(item.get("id")) if item.get("id") else None
        rows.append(
            {
                "business_id": business_id,
                "thred_id": thred_id,
                "external_id": item.get("external_id"),
                "source_id": refs.get(entity, {}).get(thred_id) if thred_id else None,
                **shape(item, refs),
            }
        )
    columns = [*THRED_COLUMNS, *(c.column for c in RULES[entity].columns)]
    frame = pd.DataFrame(rows)
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame.astype(object)


@dataclass
class _Reader:
    """Reads Thred for a set of businesses; a business Thred refuses is noted, not fatal."""

    client: ThredClient
    context: _Context
    not_read: dict[str, str]

    async def items(
        self,
        entity: str,
        business_id: str,
        thred_business: str,
        in_scope: set[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Thred's items of one entity; ``in_scope``: the records compared (None: all)."""
        refund_ids: list[str] = []
        if entity == "refund_payments":
            refunds = await thred_side.list_items(self.client, thred_business, "refunds")
            refund_ids = [str(r["id"]) for r in refunds if r.get("id")]
        items = await thred_side.list_items(
            self.client, thred_business, entity, refund_ids=refund_ids
        )
        if entity == "customers":
            items += await self._archived_customers(business_id, thred_business, items, in_scope)
        return items

    async def _archived_customers(
        self,
        business_id: str,
        thred_business: str,
        listed: list[dict[str, Any]],
        in_scope: set[str] | None,
    ) -> list[dict[str, Any]]:
        """Customers the list left out: the docs do not say whether it shows archived ones."""
        seen = {str(i.get("id")) for i in listed}
        found = []
        for source_id, row in self.context.rows["customers"].items():
            if in_scope is not None and source_id not in in_scope:
                continue
            if row.business_id == business_id and row.thred_id and row.thred_id not in seen:
                item = await thred_side.get_detail(
                    self.client, thred_business, "customers", row.thred_id
                )
                if item is not None:
                    found.append(item)
        return found

    async def guarded(self, business_id: str, work: Awaitable[T]) -> T | None:
        try:
            return await work
        except ThredAuthError as exc:
            if exc.business_id is None:
                raise
            self.not_read[business_id] = (
                f"Thred refused access to business {business_id} ({exc.status}, "
                f"{exc.error_code}): not compared"
            )
            return None


def _finish(
    name: str,
    entity: str | None,
    description: str,
    rows: list[dict[str, Any]],
    policy: SeverityPolicy,
    metrics: Mapping[str, int | float],
    not_read: Mapping[str, str],
    not_read_severity: str = "ERROR",
) -> CheckReport:
    """A check's report; a business Thred would not show makes it fail, never pass."""
    differences = differences_frame(rows)
    report = CheckReport(
        name, entity, description, differences, dict(metrics), None, dict(not_read)
    )
    if not report.passed:
        severity = policy.severity(differences)
        if not_read and severity != "ERROR":
            severity = not_read_severity
        report.severity = severity
    report.metrics.update(_difference_metrics(differences))
    report.metrics["businesses_not_read"] = len(not_read)
    return report


def _note_warehouse_only(check: CheckReport, noted: Mapping[str, list[str]]) -> None:
    """Values Thred cannot take (e.g. archived vendors): counted and named, not differences."""
    for column, ids in sorted(noted.items()):
        check.metrics[f"{column}_in_warehouse_only"] = len(ids)
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        check.notes.append(
            f"{len(ids)} {column} in the warehouse only, as Thred documents no way to set it "
            f"({shown})"
        )


def _difference_metrics(differences: pd.DataFrame) -> dict[str, int | float]:
    kinds = differences["kind"].value_counts()
    return {
        "differences": len(differences),
        "missing_in_thred": int(kinds.get("missing in Thred", 0)),
        "extra_in_thred": int(kinds.get("extra in Thred", 0)),
        "different": int(kinds.get("different in Thred", 0)),
        "duplicates": int(kinds.get("duplicate in Thred", 0)),
        "cannot_compare": int(kinds.get("cannot compare", 0)),
        "unexplained": int((differences["cause"] == "unexplained").sum()),
        "money_at_stake_cents": int(differences["money_cents"].sum()),
    }


class _Base:
    def __init__(
        self,
        warehouse: Warehouse,
        ledger: SyncLedger,
        thred_settings: ThredSettings,
        *,
        policy: SeverityPolicy | None = None,
        client_factory: Callable[[ThredSettings], ThredClient] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.ledger = ledger
        self.thred_settings = thred_settings
        self.policy = policy or SeverityPolicy()
        self._client_factory = client_factory or ThredClient


class WindowReconciler(_Base):
    """Per partition: the window's changed records of one entity, in Thred as they should be."""

    def check(self, entity: str, window: TimeWindow) -> CheckReport:
        return asyncio.run(self._check(entity, window))

    async def _check(self, entity: str, window: TimeWindow) -> CheckReport:
        books = WarehouseBooks(self.warehouse.engine)
        context = _Context(self.ledger)
        expected = books.frame(entity)
        start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
        in_window = expected["version"].isna() | (
            (expected["version"] >= start) & (expected["version"] < end)
        )
        expected = expected[in_window].reset_index(drop=True)
        in_scope = set(expected["source_id"])
        not_read: dict[str, str] = {}
        pairs: list[tuple[str, Mapping[str, Any]]] = []
        async with self._client_factory(self.thred_settings) as client:
            reader = _Reader(client, context, not_read)
            if entity == "businesses":
                pairs = await _partner_businesses(client, context)
            else:
                for business_id in sorted(set(expected["business_id"])):
                    thred_business = context.thred_business(business_id)
                    if thred_business is None:
                        continue  # its records are missing in Thred, each with its reason
                    items = await reader.guarded(
                        business_id,
                        reader.items(entity, business_id, thred_business, in_scope),
                    )
                    pairs += [(business_id, i) for i in items or []]
            requests = int(client.stats.requests)
        thred = thred_frame(entity, pairs, context.refs)
        if entity == "businesses":
            thred = thred[thred["source_id"].isin(set(expected["source_id"]))]
        expected = expected[~expected["business_id"].isin(not_read)]  # not compared, not missing
        comparison = RecordComparison(
            RULES[entity], expected, thred, context.rows[entity], pd.Timestamp(end), "window"
        )
        rows = comparison.run(all_extras=False)
        metrics = {
            "window_records": len(expected),
            "matched": comparison.matched,
            "thred_reads": requests,
        }
        description = (
            f"{len(expected)} {RULES[entity].label} records changed "
            f"{window.start:%Y-%m-%d %H:%M}..{window.end:%Y-%m-%d %H:%M}"
        )
        # A business Thred refuses is paused by the engine alone (its records wait): WARN, so
        # the blocking check does not stop the other businesses' dependants.
        check = _finish(
            "window", entity, description, rows, WINDOW_POLICY, metrics, not_read, "WARN"
        )
        _note_warehouse_only(check, comparison.warehouse_only)
        return check


async def _partner_businesses(
    client: ThredClient, context: _Context
) -> list[tuple[str, Mapping[str, Any]]]:
    """The partner's businesses in Thred, each under the warehouse id it maps to (if any)."""
    pairs: list[tuple[str, Mapping[str, Any]]] = []
    async for item in client.iter_pages("businesses/"):
        thred_id = str(item.get("id"))
        source = context.refs["businesses"].get(thred_id)
        pairs.append((source or f"thred:{thred_id}", item))
    return pairs


class BooksReconciler(_Base):
    """Per night: every active business's books in Thred against the warehouse."""

    def run(
        self, businesses: Iterable[str] | None = None, as_of: datetime | None = None
    ) -> BooksReport:
        """Compare (only ``businesses`` when given) as of ``as_of`` (default: today 00:00 UTC)."""
        return asyncio.run(self._run(set(businesses) if businesses else None, as_of))

    async def _run(self, only: set[str] | None, as_of: datetime | None) -> BooksReport:
        started = time.monotonic()
        # Default: the end of the last complete daily window (the nightly run syncs yesterday);
        # rows changed after it are "in flight", not yet due.
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        when = pd.Timestamp(as_of or midnight)
        books = WarehouseBooks(self.warehouse.engine)
        context = _Context(self.ledger)
        frames = {e: books.frame(e) for e in ENTITY_ORDER}
        if only is not None:
            frames = {
                e: f[f["business_id"].isin(only)].reset_index(drop=True) for e, f in frames.items()
            }
        active = sorted(set(frames["businesses"]["source_id"]))
        not_read: dict[str, str] = {}
        items: dict[str, list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
        aging: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        async with self._client_factory(self.thred_settings) as client:
            reader = _Reader(client, context, not_read)
            items["businesses"] = await _partner_businesses(client, context)
            for business_id in active:
                thred_business = context.thred_business(business_id)
                if thred_business is None:
                    continue
                done = await reader.guarded(
                    business_id,
                    self._read_business(reader, business_id, thred_business, items, aging),
                )
                if done is None:  # drop what was read of it before Thred refused
                    for entity in ENTITY_ORDER[1:]:
                        items[entity] = [p for p in items[entity] if p[0] != business_id]
            requests = int(client.stats.requests)
        # A business Thred would not show is not compared (each check says so), not missing;
        # the partner's business list itself was read.
        frames = {
            e: f if e == "businesses" else f[~f["business_id"].isin(not_read)]
            for e, f in frames.items()
        }
        checks: list[CheckReport] = []
        record_rows: list[dict[str, Any]] = []
        inactive = books.businesses()
        inactive = inactive[~inactive["active"]]
        for entity in ENTITY_ORDER:
            thred = thred_frame(entity, items[entity], context.refs)
            if only is not None:
                thred = thred[thred["business_id"].isin(only)]
            rows, noted = self._compare_entity(
                entity, frames[entity], thred, context, when, inactive
            )
            record_rows += rows
            metrics: dict[str, int | float] = {
                "warehouse_records": len(frames[entity]),
                "thred_records": len(thred),
            }
            check = _finish(
                entity,
                entity,
                f"{len(frames[entity])} {RULES[entity].label} records",
                rows,
                self.policy,
                metrics,
                {b: w for b, w in not_read.items() if entity != "businesses"},
            )
            _note_warehouse_only(check, noted)
            checks.append(check)
        record_differences = with_parties(
            differences_frame(record_rows), (parties_of(frames, AR), parties_of(frames, AP))
        )
        for side in (AR, AP):
            checks.append(
                self._balances(
                    side, frames, items, aging, context, record_differences, not_read, when
                )
            )
        extra = {"thred_reads": requests, "duration_s": round(time.monotonic() - started, 3)}
        return BooksReport(checks=checks, as_of=when.to_pydatetime(), extra=extra)

    async def _read_business(
        self,
        reader: _Reader,
        business_id: str,
        thred_business: str,
        items: dict[str, list[tuple[str, Mapping[str, Any]]]],
        aging: dict[str, dict[str, dict[str, Any]]],
    ) -> bool:
        fetched = {}
        for entity in ENTITY_ORDER[1:]:
            fetched[entity] = await reader.items(entity, business_id, thred_business)
        ar = await thred_side.read_aging(reader.client, thred_business, "ar")
        ap = await thred_side.read_aging(reader.client, thred_business, "ap")
        for entity, found in fetched.items():
            items[entity] += [(business_id, i) for i in found]
        aging[business_id] = {"ar": ar, "ap": ap}
        return True

    def _compare_entity(
        self,
        entity: str,
        expected: pd.DataFrame,
        thred: pd.DataFrame,
        context: _Context,
        when: pd.Timestamp,
        inactive: pd.DataFrame,
    ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
        if entity != "businesses":
            comparison = RecordComparison(
                RULES[entity], expected, thred, context.rows[entity], when, entity
            )
            return comparison.run(), comparison.warehouse_only
        return _compare_businesses(expected, thred, context, when, inactive), {}

    def _balances(
        self,
        side: Side,
        frames: Mapping[str, pd.DataFrame],
        items: Mapping[str, list[tuple[str, Mapping[str, Any]]]],
        aging: Mapping[str, Mapping[str, Mapping[str, Any]]],
        context: _Context,
        record_differences: pd.DataFrame,
        not_read: Mapping[str, str],
        when: pd.Timestamp,
    ) -> CheckReport:
        """Open balance per party: the party list (customers) and the aging report."""
        tables = {
            "invoice_payments": (wh.payment_allocations, "payment_id", "invoice_id"),
            "bill_payments": (wh.bill_payment_allocations, "bill_payment_id", "bill_id"),
            "vendor_credits": (wh.vendor_credit_allocations, "vendor_credit_id", "bill_id"),
        }
        books = WarehouseBooks(self.warehouse.engine)
        allocations = pd.concat(
            [books.allocations(*tables[s]) for s in side.settlements], ignore_index=True
        )
        expected = expected_open(frames[side.document], allocations, side)
        party = "customer" if side is AR else "vendor"
        thred_values: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
        refs = context.refs[side.party]
        if side is AR:
            for business_id, item in items["customers"]:
                source = refs.get(str(item.get("id")), f"thred:{item.get('id')}")
                value = thred_side.money(item, "outstanding_balance")
                thred_values[(business_id, source)]["outstanding_balance"] = value
        aging_totals: dict[str, Any] = {}
        read = set(frames["businesses"]["source_id"]) - set(not_read)
        for business_id in sorted(read):
            # A business Thred does not hold at all has nothing open there: compare with 0.
            body = aging.get(business_id, {}).get(side.name, {"total_outstanding_cents": 0})
            aging_totals[business_id] = thred_side.money(body, "total_outstanding_cents")
            per_party = thred_side.aging_per_party(body, side.name)
            for thred_id, value in per_party.items():
                thred_values[(business_id, refs.get(thred_id, f"thred:{thred_id}"))]["aging"] = (
                    value
                )
            for (b, _party), values in list(thred_values.items()):
                if b == business_id:
                    values.setdefault("aging", 0)
            for p in frames[side.party].loc[
                frames[side.party]["business_id"] == business_id, "source_id"
            ]:
                thred_values[(business_id, p)].setdefault("aging", 0)
                if side is AR:
                    thred_values[(business_id, p)].setdefault("outstanding_balance", None)
        expected = expected[expected["business_id"].isin(read)]
        parties = frames[side.party]
        parties = parties[parties["business_id"].isin(read)]
        rows = compare_parties(
            side,
            expected,
            parties,
            thred_values,
            aging_totals,
            pd.concat(
                [record_differences, _unsettled(side, frames, context, when)], ignore_index=True
            ),
            f"{side.name}_balances",
        )
        metrics = {
            f"{party}s_compared": len(parties),
            "expected_open_cents": int(expected["expected"].fillna(0).sum()),
        }
        return _finish(
            f"{side.name}_balances",
            side.party,
            f"{party} open balances ({side.name.upper()} aging"
            + (", customer outstanding_balance)" if side is AR else ")"),
            rows,
            self.policy,
            metrics,
            dict(not_read),
        )


def _unsettled(
    side: Side, frames: Mapping[str, pd.DataFrame], context: _Context, when: pd.Timestamp
) -> pd.DataFrame:
    """A party's documents and settlements the ledger does not show as synced at their current
    version: they explain a balance difference even when their own documented fields match
    (e.g. an invoice update whose outcome is uncertain changes only the total)."""
    rows = []
    for entity in (side.document, *side.settlements):
        frame = frames[entity]
        ledger = context.rows[entity]
        for source_id, business_id, party, version in frame[
            ["source_id", "business_id", side.party_column, "version"]
        ].itertuples(index=False):
            row = ledger.get(source_id)
            settled = (
                row is not None
                and row.status is Status.SYNCED
                and row.error_code != TERMINAL_WAITING
                and explain(row, version, when)[0] is Cause.UNEXPLAINED
            )
            if settled:
                continue
            cause, why = explain(row, version, when)
            rows.append(
                {
                    "entity": entity,
                    "business_id": business_id,
                    "source_id": source_id,
                    "party_id": str(party),
                    "cause": cause.value,
                    "explanation": why,
                }
            )
    return pd.DataFrame(
        rows, columns=["entity", "business_id", "source_id", "party_id", "cause", "explanation"]
    )


def _compare_businesses(
    expected: pd.DataFrame,
    thred: pd.DataFrame,
    context: _Context,
    when: pd.Timestamp,
    inactive: pd.DataFrame,
) -> list[dict[str, Any]]:
    """Active businesses as records; a business inactive in the warehouse but in Thred too."""
    inactive_ids = set(inactive["source_id"])
    planted = thred["source_id"].isna() & thred["external_id"].isin(
        {f"business-{i}" for i in inactive_ids}
    )
    held = thred[thred["source_id"].isin(inactive_ids) | planted]
    others = thred[~thred.index.isin(held.index)]
    comparison = RecordComparison(
        RULES["businesses"], expected, others, context.rows["businesses"], when, "businesses"
    )
    rows = comparison.run()
    for row in held.to_dict("records"):
        synced_by_us = row["source_id"] is not None
        source_id = row["source_id"] or str(row["external_id"]).removeprefix("business-")
        rows.append(
            {
                "check": "businesses",
                "entity": "businesses",
                "business_id": source_id,
                "source_id": source_id,
                "external_id": row["external_id"],
                "thred_id": row["thred_id"],
                "kind": "different in Thred",
                "field": "active",
                "expected": False,
                "thred": bool(row.get("active")),
                "money_cents": 0,
                "cause": "business inactive" if synced_by_us else "unexplained",
                "explanation": (
                    "inactive in the warehouse: the sync stopped sending its records; "
                    "Thred keeps its books and documents no way to deactivate a business"
                    if synced_by_us
                    else "Thred holds a business the warehouse marks inactive; this pipeline "
                    "never created it"
                ),
            }
        )
    return rows
