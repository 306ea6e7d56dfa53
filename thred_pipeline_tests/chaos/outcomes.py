"""The outcomes every chaos scenario must end with, whatever the faults did on the way.

Only end states are asserted, never how many faults fired or how often anything retried:

- **no duplicate**: the sandbox holds exactly one object per external_id, and per entity exactly
  as many objects as the ledger says were created (no extra objects);
- **none lost**: every warehouse record has its ledger row, every good record is ``synced``,
  nothing is left ``pending`` or ``unknown``;
- **bad rows cost one row each**: every planted bad row is quarantined (or, for a missing
  parent, waiting) with a reason naming the record and the field, and exactly the records that
  need one of them wait (``deferred``) with a reason naming what they wait for;
- **no 409 leftovers**: no record is held back because Thred answered ``duplicate_external_id``
  (in that reading the engine must adopt the stored object);
- **the books are equal**: ``BooksReconciler`` compares the warehouse with Thred and reports a
  difference for exactly the planted rows and their dependants (and the balances of the
  parties they belong to), each explained as quarantined or waiting; nothing unexplained.

What a record "needs" is computed from the warehouse's own references (``world.py``),
independently of the engine and of the reconciliation under test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from pydantic import SecretStr
from sqlalchemy import Engine

from thred_pipeline import entities
from thred_pipeline.core.records import Status
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.reconcile import BooksReconciler, BooksReport, Cause
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.extract import Warehouse
from thred_pipeline_tests.chaos.scenario import CHAOS_SEED, BadRow, check_bad_rows
from thred_pipeline_tests.chaos.world import (
    API_KEY,
    PARTNER_ID,
    Audit,
    Key,
    audit,
    expected_statuses,
    ledger_rows,
    warehouse_parents,
)

BALANCE_CHECKS = frozenset({"ar_balances", "ap_balances"})
# The records whose money lands on a customer's (AR) or a vendor's (AP) open balance.
PARTY_OF = {
    "invoices": ("customers", "customer_id"),
    "invoice_payments": ("customers", "customer_id"),
    "bills": ("vendors", "vendor_id"),
    "bill_payments": ("vendors", "vendor_id"),
    "vendor_credits": ("vendors", "vendor_id"),
}
CAUSE_OF = {Status.REJECTED: Cause.QUARANTINED.value, Status.DEFERRED: Cause.WAITING.value}


@dataclass
class Outcome:
    """What the final state was measured as (the figures); the assertions already passed."""

    audit: Audit
    books: BooksReport
    held_back: dict[Key, Status]  # planted bad rows and what needs them

    @property
    def differences(self) -> pd.DataFrame:
        return self.books.differences


def held_back(engine: Engine, bad: list[BadRow]) -> dict[Key, Status]:
    """The planted rows and every record that (transitively) needs one: not ``synced``."""
    expected = expected_statuses(engine, {b.key: b.status for b in bad})
    return {k: s for k, s in expected.items() if s is not Status.SYNCED}


def _parties(engine: Engine, keys: set[Key]) -> set[tuple[str, str, str]]:
    """(party entity, business, party id) of every held-back record that moves a balance."""
    out: set[tuple[str, str, str]] = set()
    with engine.connect() as conn:
        for entity, (party, column) in PARTY_OF.items():
            ids = sorted(s for e, s in keys if e == entity)
            if not ids:
                continue
            table = entities.get(entity).table
            rows = conn.execute(
                table.select()
                .with_only_columns(table.c.business_id, table.c[column])
                .where(table.c.id.in_(ids))
            )
            out |= {(party, str(b), str(p)) for b, p in rows}
    return out


def _business_of(engine: Engine, keys: set[Key]) -> set[str]:
    out: set[str] = set()
    with engine.connect() as conn:
        for entity in {e for e, _ in keys}:
            table = entities.get(entity).table
            ids = sorted(s for e, s in keys if e == entity)
            column = table.c.id if entity == "businesses" else table.c.business_id
            rows = conn.execute(table.select().with_only_columns(column).where(table.c.id.in_(ids)))
            out |= {str(b) for (b,) in rows}
    return out


def check_ledger(ledger: SyncLedger, engine: Engine, bad: list[BadRow]) -> None:
    """Planted rows name record and field; dependants wait naming a parent; no 409 leftovers."""
    check_bad_rows(ledger, bad)
    rows = ledger_rows(ledger)
    parents = warehouse_parents(engine)
    waiting = held_back(engine, bad)
    planted = {b.key for b in bad}
    for key in sorted(waiting):
        if key in planted:
            continue
        row = rows[key]
        assert row.status is Status.DEFERRED, (key, row.status, row.error_message)
        held = {p for p in parents[key] if p in waiting}
        reason = " ".join([row.error_message or "", *map(str, (row.error_details or {}).values())])
        assert any(source_id in reason for _, source_id in held), (key, held, reason)
    stuck = {
        k: r.status.value for k, r in rows.items() if r.status in (Status.PENDING, Status.UNKNOWN)
    }
    assert not stuck, stuck
    conflicts = {
        k: (r.status.value, r.error_code, r.error_message)
        for k, r in rows.items()
        if "duplicate_external_id" in (r.error_code or "")
        or "duplicate_external_id" in (r.error_message or "")
    }
    assert not conflicts, f"records held back by a 409 duplicate_external_id: {conflicts}"


def books(warehouse_url: str, ledger: SyncLedger, url: str) -> BooksReport:
    """The whole books, as of the end of the seeded data (every partition synced)."""
    engine = create_warehouse_engine(warehouse_url)
    settings = ThredSettings(base_url=url, partner_id=PARTNER_ID, api_key=SecretStr(API_KEY))
    try:
        return BooksReconciler(Warehouse(engine), ledger, settings).run(as_of=CHAOS_SEED.window_end)
    finally:
        engine.dispose()


def check_books(report: BooksReport, engine: Engine, waiting: Mapping[Key, Status]) -> None:
    """Differences for exactly the held-back records (and their parties), all explained."""
    frame = report.differences
    text = report.render_text()
    unexplained = frame[frame["cause"] == Cause.UNEXPLAINED.value]
    assert unexplained.empty, text
    assert report.verdict == ("WARN" if waiting else "PASS"), text

    records = frame[~frame["check"].isin(BALANCE_CHECKS)]
    found: dict[Key, set[tuple[str, str]]] = {}
    for row in records.to_dict("records"):
        key = (str(row["entity"]), str(row["source_id"]))
        found.setdefault(key, set()).add((str(row["kind"]), str(row["cause"])))
    assert set(found) == set(waiting), {
        "differing, not held back": sorted(set(found) - set(waiting)),
        "held back, not differing": sorted(set(waiting) - set(found)),
        "report": text,
    }
    for key, seen in sorted(found.items()):
        assert seen == {("missing in Thred", CAUSE_OF[waiting[key]])}, (key, seen, text)

    balances = frame[frame["check"].isin(BALANCE_CHECKS)]
    parties = _parties(engine, set(waiting))
    businesses = _business_of(engine, set(waiting))
    for row in balances.to_dict("records"):
        assert row["cause"] in CAUSE_OF.values(), (row, text)
        if row["source_id"] is None or pd.isna(row["source_id"]):  # a business's aging total
            assert row["business_id"] in businesses, (row, text)
        else:
            assert (row["entity"], row["business_id"], row["source_id"]) in parties, (row, text)
    stake = report.money_at_stake()
    assert set(stake) <= businesses, (stake, businesses)


def assert_outcomes(warehouse_url: str, ledger: SyncLedger, url: str, bad: list[BadRow]) -> Outcome:
    """Every outcome of the module docstring, measured on the real parts."""
    engine = create_warehouse_engine(warehouse_url)
    try:
        report = audit(engine, ledger, url, {b.key: b.status for b in bad})
        report.assert_ok()  # none lost, statuses as the data implies, no duplicate or extra
        assert report.duplicates == 0 and not report.lost and not report.count_mismatch
        check_ledger(ledger, engine, bad)
        waiting = held_back(engine, bad)
        report_books = books(warehouse_url, ledger, url)
        check_books(report_books, engine, waiting)
    finally:
        engine.dispose()
    return Outcome(report, report_books, waiting)
