"""The chaos data set: a seeded two-business warehouse with a few bad rows planted in it.

Shared by both chaos scenarios (faults, SIGKILL) so they assert the same thing: after the run,
every good record is in Thred exactly once, every bad row is quarantined with a reason, and
what depends on a bad row waits (``deferred``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from thred_devtools.seed import SeedConfig

from thred_pipeline import entities
from thred_pipeline.core.records import Status
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline_tests.chaos.world import Key, seed_file, sql

CHAOS_SEED = SeedConfig(
    seed=7,
    businesses=2,
    days=7,
    customers=12,
    vendors=8,
    invoices=70,
    payments=50,
    refunds=6,
    refund_payments=5,
    payouts=3,
    bills=25,
    bill_payments=18,
    vendor_credits=4,
)
PARTITIONS = [
    (CHAOS_SEED.start + timedelta(days=offset)).isoformat() for offset in range(CHAOS_SEED.days)
]


@dataclass(frozen=True)
class BadRow:
    entity: str
    source_id: str
    status: Status
    field: str
    what: str
    waits_for: str | None = None  # a waiting row's reason names the missing parent instead

    @property
    def key(self) -> Key:
        return (self.entity, self.source_id)


def _one(engine: Engine, statement: str) -> str:
    with engine.connect() as conn:
        value = conn.execute(text(statement)).scalar()
    assert value is not None, statement
    return str(value)


def _copy(engine: Engine, table: str, where: str, **changes: Any) -> None:
    with engine.begin() as conn:
        row = dict(
            conn.execute(text(f"SELECT * FROM {table} WHERE {where}")).mappings().first() or {}
        )
        row.update(changes)
        names = ", ".join(row)
        conn.execute(
            text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + c for c in row)})"), row
        )


def plant_bad_rows(engine: Engine) -> list[BadRow]:
    """Five kinds of bad row, picked so that nothing but their own dependents is affected."""
    unsettled = _one(
        engine,
        "SELECT id FROM invoices WHERE voided_at IS NULL "
        "AND id NOT IN (SELECT invoice_id FROM payment_allocations) "
        "AND id NOT IN (SELECT invoice_id FROM refunds) ORDER BY id LIMIT 1",
    )
    refund = _one(engine, "SELECT id FROM refunds ORDER BY id LIMIT 1")
    # A payment with one allocation, to an invoice nobody refunds.
    payment = _one(
        engine,
        "SELECT payment_id FROM payment_allocations GROUP BY payment_id "
        "HAVING COUNT(*) = 1 AND MAX(invoice_id) NOT IN (SELECT invoice_id FROM refunds) "
        "ORDER BY payment_id LIMIT 1",
    )
    bill_payment = _one(engine, "SELECT id FROM bill_payments ORDER BY id DESC LIMIT 1")
    stamp = (CHAOS_SEED.window_start + timedelta(days=2, hours=3)).replace(tzinfo=None)

    _copy(
        engine,
        "customers",
        "archived_at IS NULL ORDER BY id",
        id="cus-chaos-nul",
        company_name="Nul\x00 Ltd",
        updated_at=stamp,
    )
    assert sql(
        engine,
        "UPDATE invoice_line_items SET tax_code = 'VAT_99' WHERE id = "
        "(SELECT MIN(id) FROM invoice_line_items WHERE invoice_id = :i)",
        i=unsettled,
    )
    assert sql(engine, "UPDATE refunds SET amount_cents = 99999999 WHERE id = :r", r=refund)
    assert sql(
        engine,
        "UPDATE bill_payments SET payment_method = 'check', check_number = NULL WHERE id = :b",
        b=bill_payment,
    )
    assert sql(
        engine,
        "UPDATE payment_allocations SET invoice_id = 'inv-chaos-missing' WHERE payment_id = :p",
        p=payment,
    )
    return [
        BadRow("customers", "cus-chaos-nul", Status.REJECTED, "company_name", "NUL character"),
        BadRow("invoices", unsettled, Status.REJECTED, "tax_code", "unknown tax code"),
        BadRow("refunds", refund, Status.REJECTED, "amount_cents", "refund over the payment"),
        BadRow("bill_payments", bill_payment, Status.REJECTED, "check_number", "check, no number"),
        BadRow(
            "invoice_payments",
            payment,
            Status.DEFERRED,
            "invoice_id",
            "allocation, no invoice",
            waits_for="inv-chaos-missing",
        ),
    ]


def build_warehouse(path: Path) -> tuple[str, list[BadRow]]:
    seed_file(path, CHAOS_SEED)
    url = f"sqlite:///{path}"
    engine = create_warehouse_engine(url)
    try:
        return url, plant_bad_rows(engine)
    finally:
        engine.dispose()


def check_bad_rows(ledger: SyncLedger, bad: list[BadRow]) -> None:
    """Every bad row is quarantined (or waiting) with a reason naming the record and the field."""
    for row in bad:
        found = ledger.get(row.entity, row.source_id)
        assert found is not None, row
        assert found.status is row.status, (row, found.status, found.error_message)
        assert found.error_code and found.error_message, row
        named = " ".join([found.error_message, *(found.error_details or {})])
        assert row.field in named, (row, found.error_message, found.error_details)
        # A quarantined row's reason names the record; a waiting row's names what it waits for.
        assert (row.waits_for or row.source_id) in found.error_message, (row, found.error_message)
        assert found.external_id == entities.get(row.entity).external_id(row.source_id)
