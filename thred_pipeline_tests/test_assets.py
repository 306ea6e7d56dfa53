"""The Dagster layer against real parts: a Dagster instance, the sandbox, SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest

from thred_pipeline import entities
from thred_pipeline.assets import PUSH_ASSETS, asset_key
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.resources import LedgerResource, SyncResource, ThredResource, WarehouseResource
from thred_pipeline.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from thred_pipeline.sync.ledger import SyncLedger
from thred_pipeline.warehouse.seed import SeedConfig, seed_warehouse

pytestmark = pytest.mark.slow

SMALL = SeedConfig(
    businesses=2,
    days=7,
    customers=6,
    vendors=4,
    invoices=20,
    payments=14,
    refunds=2,
    refund_payments=2,
    payouts=1,
    bills=6,
    bill_payments=4,
    vendor_credits=2,
)
DAYS = ["2026-09-01", "2026-09-02", "2026-09-03"]
DAY = DAYS[-1]


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture
def resources(tmp_path: Path, sandbox: RunningSandbox) -> dict[str, object]:
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    seed_warehouse(warehouse_url, SMALL)
    return {
        "warehouse": WarehouseResource(url=warehouse_url),
        "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.db'}"),
        "thred": ThredResource(
            base_url=sandbox.url, partner_id=DEMO_PARTNER_ID, api_key=DEMO_API_KEY
        ),
        "sync": SyncResource(lookback_hours=0),
    }


def _backfill(resources, instance) -> dg.ExecuteInProcessResult:
    """Partitions in order, as a backfill would: a window's count check also demands that
    nothing updated before it was left unsynced."""
    result = None
    for day in DAYS:
        result = dg.materialize(
            PUSH_ASSETS, partition_key=day, resources=resources, instance=instance
        )
        assert result.success, day
    assert result is not None
    return result


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], object]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def test_one_partition_materializes_and_every_check_passes(resources):
    with dg.instance_for_test() as instance:
        result = _backfill(resources, instance)
        evaluations = _evaluations(result)
        assert evaluations, "no check ran"
        failed = {k: e.description for k, e in evaluations.items() if not e.passed}
        assert failed == {}
        assert {e.partition for e in evaluations.values()} == {DAY}
        customers = result.asset_materializations_for_node("thred__customers")[0].metadata
        assert customers["created"].value > 0
        for key in (
            "created",
            "updated",
            "unchanged",
            "deferred",
            "rejected",
            "drift",
            "api_calls",
            "duration_s",
            "amount_cents",
        ):
            assert key in customers


def test_a_broken_balance_fails_the_blocking_check_and_stops_invoices(resources, sandbox):
    with dg.instance_for_test() as instance:
        _backfill(resources, instance)
        ledger = SyncLedger.from_url(resources["ledger"].url)  # type: ignore[attr-defined]
        invoice = next(
            r for r in ledger.iter_rows("invoices") if r.thred_id and not r.terminal_done
        )
        business = ledger.thred_ids("businesses", [invoice.business_id])[invoice.business_id]
        tampered = httpx.post(
            f"{sandbox.url}/_sandbox/tamper",
            json={
                "business_id": business,
                "collection": "invoices",
                "id": invoice.thred_id,
                "set": {"line_items[0].unit_price": 987_654},
            },
        )
        assert tampered.status_code == 200, tampered.text

        selection = [
            a
            for a in PUSH_ASSETS
            if asset_key(entities.get("customers")) in a.keys
            or asset_key(entities.get("invoices")) in a.keys
            or asset_key(entities.get("businesses")) in a.keys
        ]
        second = dg.materialize(
            selection,
            partition_key=DAY,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not second.success
        evaluations = _evaluations(second)
        balance = evaluations[("customers", "customer_balance_matches")]
        assert not balance.passed
        named = str(balance.metadata["records"].value)
        customer_external = f"customer-{_customer_of(resources, invoice.source_id)}"
        assert customer_external in named
        # blocking: the invoices step never ran in this run
        assert not second.asset_materializations_for_node("thred__invoices")
        assert "thred__invoices" not in {
            e.step_key for e in second.all_events if e.event_type_value == "STEP_START"
        }


def _customer_of(resources: dict[str, object], invoice_id: str) -> str:
    from sqlalchemy import select

    from thred_pipeline.warehouse.schema import invoices

    warehouse = resources["warehouse"].warehouse()  # type: ignore[attr-defined]
    with warehouse.engine.connect() as conn:
        return str(
            conn.execute(
                select(invoices.c.customer_id).where(invoices.c.id == invoice_id)
            ).scalar_one()
        )
