"""Run reconciliation at its two levels.

- ``WindowReconciler`` (per partition, inside each push step): the records of one entity that
  changed in the window are in Thred with the same documented values, or listed with their
  reason. It reads only businesses with records in the window, each by its records' Thred ids
  or by the entity's list, whichever costs fewer requests (``window_read``).
- ``BooksReconciler`` (per night, and on demand): the whole books of every active business —
  every record of every entity, each customer's and vendor's open balance and aging, each
  business's aging totals — read once, not once per partition.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from thred_pipeline import entities
from thred_pipeline.core.records import TimeWindow
from thred_pipeline.entities import EntitySpec
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.reconcile.balances import BooksRead, balance_check
from thred_pipeline.reconcile.compare import RecordComparison
from thred_pipeline.reconcile.findings import (
    Cause,
    CheckReport,
    Kind,
    Metric,
    SeverityPolicy,
    Where,
    difference,
    differences_frame,
    finish_check,
    note_warehouse_only,
)
from thred_pipeline.reconcile.parties import parties_of, with_parties
from thred_pipeline.reconcile.reading import (
    BUSINESSES,
    IN_BUSINESS,
    LedgerView,
    Pairs,
    ThredReader,
    thred_frame,
)
from thred_pipeline.reconcile.report import BooksReport
from thred_pipeline.reconcile.warehouse_side import WarehouseBooks
from thred_pipeline.reconcile.window_read import ReadMode, WindowRead, business_windows
from thred_pipeline.thred import loop as event_loop
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse.extract import Warehouse

WINDOW_POLICY = SeverityPolicy()  # explained differences WARN: one bad row never blocks others
BY_ID_NOTE = (
    "read by Thred id where cheaper than the list: objects Thred holds under no Thred id the "
    "ledger knows (extras, duplicates) are the books check's"
)


@dataclass(frozen=True)
class _Base:
    warehouse: Warehouse
    ledger: SyncLedger
    thred_settings: ThredSettings
    _: KW_ONLY
    policy: SeverityPolicy | None = None  # None: SeverityPolicy()
    client_factory: Callable[[ThredSettings], ThredClient] = ThredClient

    @property
    def grading(self) -> SeverityPolicy:
        return self.policy or SeverityPolicy()


@dataclass(frozen=True)
class WindowReconciler(_Base):
    """Per partition: the window's changed records of one entity, in Thred as they should be.

    ``read``: how Thred is read (``window_read``): by default the cheaper of the records' detail
    pages and the entity's list, per business; forced one way in tests.
    """

    read: ReadMode = field(default=ReadMode.AUTO, kw_only=True)

    def check(self, entity: str, window: TimeWindow) -> CheckReport:
        return event_loop.run(self._check(entities.get(entity), window))

    async def _check(self, spec: EntitySpec, window: TimeWindow) -> CheckReport:
        # Only the window's candidate records are read, not the entity's history (issue 8).
        expected = _in_window(
            WarehouseBooks(self.warehouse.engine).window_frame(spec, window), window
        )
        if expected.empty:
            # Nothing to compare, but a check is green only if Thred could be read at all: a
            # wrong key or an unreachable Thred must still fail the run (ThredConfigError).
            async with self.client_factory(self.thred_settings) as client:
                await client.check_connection()
            return _nothing_changed(spec, window)
        ledger = LedgerView.for_window(self.ledger, spec, expected["source_id"])
        not_read: dict[str, str] = {}
        async with self.client_factory(self.thred_settings) as client:
            read = WindowRead(ThredReader(client, ledger, not_read), spec, self.read)
            pairs = await self._read(read, expected)
            requests = int(client.stats.requests)
        thred = thred_frame(spec, pairs, ledger)
        if spec.partner_scoped:  # the partner lists every business: compare the window's
            thred = thred[thred["source_id"].isin(set(expected["source_id"]))]
        expected = expected[~expected["business_id"].isin(not_read)]  # not compared, not missing
        end = pd.Timestamp(window.end)
        comparison = RecordComparison(spec, expected, thred, ledger.rows[spec.name], end, "window")
        rows = comparison.run(all_extras=False)
        metrics: dict[str, Metric] = {
            "window_records": len(expected),
            "matched": comparison.matched,
            "thred_reads": requests,
            "read": read.how,
            "businesses_read_by_detail": read.by_detail,
            "businesses_read_by_list": read.by_list,
            "businesses_read_under_window_parents": read.by_parent,
            "detail_misses_listed": read.detail_misses,
        }
        check = _window_check(spec, window, rows, metrics, not_read)
        note_warehouse_only(check, comparison.warehouse_only)
        if read.by_detail:
            check.notes.append(BY_ID_NOTE)
        return check

    async def _read(self, read: WindowRead, expected: pd.DataFrame) -> Pairs:
        """Thred's items of the entity, only for the businesses with records in the window."""
        if read.spec.partner_scoped:
            read.by_list += 1  # the partner's one list of businesses
            return await read.reader.partner_businesses()
        history = self.ledger.created_counts(read.spec.name)
        windows = business_windows(read.reader.ledger, read.spec, expected, history)
        return await read.pairs(windows, set(expected["source_id"]))


def _window_check(
    spec: EntitySpec,
    window: TimeWindow,
    rows: list[dict[str, Any]],
    metrics: dict[str, Metric],
    not_read: dict[str, str],
) -> CheckReport:
    description = (
        f"{metrics['window_records']} {spec.label} records changed "
        f"{window.start:%Y-%m-%d %H:%M}..{window.end:%Y-%m-%d %H:%M}"
    )
    # A business Thred refuses is paused by the engine alone (its records wait): WARN, so
    # the blocking check does not stop the other businesses' dependants.
    return finish_check(
        "window", spec.name, description, rows, WINDOW_POLICY, metrics, not_read, "WARN"
    )


def _nothing_changed(spec: EntitySpec, window: TimeWindow) -> CheckReport:
    """No warehouse record of the entity changed in the window: nothing to compare, so
    nothing but the partner token is read from Thred, and nothing from the ledger (objects
    Thred holds that the warehouse does not
    are the books check's). Most entity-days of a backfill are such, and the set-up of a
    check cost more than its rows (issue 8, B6)."""
    metrics: dict[str, Metric] = {
        "window_records": 0,
        "matched": 0,
        "thred_reads": 0,
        "read": "none",
        "businesses_read_by_detail": 0,
        "businesses_read_by_list": 0,
        "businesses_read_under_window_parents": 0,
        "detail_misses_listed": 0,
    }
    return _window_check(spec, window, [], metrics, {})


def _in_window(expected: pd.DataFrame, window: TimeWindow) -> pd.DataFrame:
    """The records changed in the window (and those whose version cannot be read)."""
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    version = expected["version"]
    in_window = version.isna() | ((version >= start) & (version < end))
    return expected[in_window].reset_index(drop=True)


class BooksReconciler(_Base):
    """Per night: every active business's books in Thred against the warehouse."""

    def run(
        self, businesses: Iterable[str] | None = None, as_of: datetime | None = None
    ) -> BooksReport:
        """Compare (only ``businesses`` when given) as of ``as_of`` (default: today 00:00 UTC)."""
        return event_loop.run(self._run(set(businesses) if businesses else None, as_of))

    async def _run(self, only: set[str] | None, as_of: datetime | None) -> BooksReport:
        started = time.monotonic()
        # Default: the end of the last complete daily window (the nightly run syncs yesterday);
        # rows changed after it are "in flight", not yet due.
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        read, requests = await self._read(only, pd.Timestamp(as_of or midnight))
        checks: list[CheckReport] = []
        record_rows: list[dict[str, Any]] = []
        for spec in entities.ENTITIES:
            check, rows = self._record_check(spec, read, only)
            checks.append(check)
            record_rows += rows
        sides = entities.BALANCES
        owners = [parties_of(read.frames, side) for side in sides]
        record_differences = with_parties(differences_frame(record_rows), owners)
        checks += [balance_check(s, read, record_differences, self.grading) for s in sides]
        extra = {"thred_reads": requests, "duration_s": round(time.monotonic() - started, 3)}
        return BooksReport(checks=checks, as_of=read.as_of.to_pydatetime(), extra=extra)

    async def _read(self, only: set[str] | None, as_of: pd.Timestamp) -> tuple[BooksRead, int]:
        """Both sides of the books (of ``only`` when given), and how many Thred requests."""
        books = WarehouseBooks(self.warehouse.engine)
        ledger = LedgerView(self.ledger)
        frames = {spec.name: books.frame(spec) for spec in entities.ENTITIES}
        if only is not None:
            frames = {
                e: f[f["business_id"].isin(only)].reset_index(drop=True) for e, f in frames.items()
            }
        not_read: dict[str, str] = {}
        items: dict[str, Pairs] = defaultdict(list)
        aging: dict[str, dict[str, dict[str, Any]]] = {}
        async with self.client_factory(self.thred_settings) as client:
            reader = ThredReader(client, ledger, not_read)
            items[BUSINESSES.name] = await reader.partner_businesses()
            for business_id in sorted(set(frames[BUSINESSES.name]["source_id"])):
                thred_business = ledger.thred_business(business_id)
                if thred_business is None:
                    continue
                # all or nothing: what was read of a business before Thred refused is dropped
                found = await reader.guarded(business_id, reader.books(business_id, thred_business))
                if found is not None:
                    for entity, listed in found[0].items():
                        items[entity] += [(business_id, i) for i in listed]
                    aging[business_id] = found[1]
            requests = int(client.stats.requests)
        # A business Thred would not show is not compared (each check says so), not missing;
        # the partner's business list itself was read.
        for spec in IN_BUSINESS:
            frames[spec.name] = frames[spec.name][~frames[spec.name]["business_id"].isin(not_read)]
        return BooksRead(books, frames, items, aging, ledger, not_read, as_of), requests

    def _record_check(
        self, spec: EntitySpec, read: BooksRead, only: set[str] | None
    ) -> tuple[CheckReport, list[dict[str, Any]]]:
        """Every record of one entity; its difference rows also explain party balances."""
        expected = read.frames[spec.name]
        thred = thred_frame(spec, read.items[spec.name], read.ledger)
        if only is not None:
            thred = thred[thred["business_id"].isin(only)]
        if spec.is_business_root:
            rows, noted = _compare_businesses(expected, thred, read), {}
        else:
            ledger = read.ledger.rows[spec.name]
            comparison = RecordComparison(spec, expected, thred, ledger, read.as_of, spec.name)
            rows, noted = comparison.run(), comparison.warehouse_only
        metrics: dict[str, int | float] = {
            "warehouse_records": len(expected),
            "thred_records": len(thred),
        }
        not_read = {} if spec.is_business_root else read.not_read
        description = f"{len(expected)} {spec.label} records"
        check = finish_check(
            spec.name, spec.name, description, rows, self.grading, metrics, not_read
        )
        note_warehouse_only(check, noted)
        return check, rows


def _compare_businesses(
    expected: pd.DataFrame, thred: pd.DataFrame, read: BooksRead
) -> list[dict[str, Any]]:
    """Active businesses as records; a business inactive in the warehouse but in Thred too."""
    inactive = read.warehouse.businesses()
    inactive_ids = set(inactive.loc[~inactive["active"], "source_id"])
    prefix = BUSINESSES.external_prefix
    planted = thred["source_id"].isna() & thred["external_id"].isin(
        {f"{prefix}-{i}" for i in inactive_ids}
    )
    held = thred[thred["source_id"].isin(inactive_ids) | planted]
    others = thred[~thred.index.isin(held.index)]
    ledger = read.ledger.rows[BUSINESSES.name]
    rows = RecordComparison(BUSINESSES, expected, others, ledger, read.as_of, BUSINESSES.name).run()
    return rows + [_inactive_but_held(row) for row in held.to_dict("records")]


def _inactive_but_held(row: dict[str, Any]) -> dict[str, Any]:
    """A business Thred holds that the warehouse marks inactive: it stays in Thred's books."""
    synced_by_us = row["source_id"] is not None
    prefix = BUSINESSES.external_prefix
    source_id = row["source_id"] or str(row["external_id"]).removeprefix(f"{prefix}-")
    where = Where(
        BUSINESSES.name,
        BUSINESSES.name,
        source_id,
        source_id,
        row["external_id"],
        row["thred_id"],
    )
    if synced_by_us:
        cause, why = (
            Cause.INACTIVE,
            "inactive in the warehouse: the sync stopped sending its records; "
            "Thred keeps its books and documents no way to deactivate a business",
        )
    else:
        cause, why = (
            Cause.UNEXPLAINED,
            "Thred holds a business the warehouse marks inactive; this pipeline never created it",
        )
    active = bool(row.get("active"))
    return difference(
        where, Kind.DIFFERENT, cause, why, field="active", expected=False, thred=active
    )
