"""The Dagster layer against real parts: a Dagster instance, the sandbox, SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import pytest
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline import entities
from thred_pipeline.assets import BOOKS_ASSETS, BOOKS_KEY, PUSH_ASSETS, asset_key
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.resources import (
    LedgerResource,
    ReconcileResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
)

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
DAYS = [f"2026-09-0{d}" for d in range(1, 8)]  # every day the seed spans
DAY = DAYS[2]


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


def _backfill(resources, instance, days=DAYS) -> list[dg.ExecuteInProcessResult]:
    """Partitions in order, as a backfill would."""
    results = []
    for day in days:
        result = dg.materialize(
            PUSH_ASSETS, partition_key=day, resources=resources, instance=instance
        )
        assert result.success, day
        results.append(result)
    return results


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], object]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def test_a_backfill_checks_each_window_then_the_books_once(resources, sandbox):
    """The seed has late parents: a day's invoice whose customer row arrives days later is in
    the warehouse but not in Thred. Its window check fails as a WARN naming it, never green."""
    with dg.instance_for_test() as instance:
        results = _backfill(resources, instance)
        for day, result in zip(DAYS, results, strict=True):
            evaluations = _evaluations(result)
            assert len(evaluations) == len(entities.ENTITIES), day
            assert {e.partition for e in evaluations.values()} == {day}
            for evaluation in evaluations.values():
                if evaluation.passed:
                    continue
                assert evaluation.severity == dg.AssetCheckSeverity.WARN, evaluation.description
                records = [r.data for r in evaluation.metadata["differences"].value.records]
                assert records and all(r["cause"] == "waiting" for r in records), records
        last = _evaluations(results[-1])
        assert all(e.passed for e in last.values())  # every late parent has arrived
        result = results[2]
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

        # the books, once, after the backfill: equal; then a payment lost in Thred
        books = dg.materialize(
            [*PUSH_ASSETS, *BOOKS_ASSETS],
            selection=[BOOKS_KEY],
            resources={**resources, "reconcile": ReconcileResource()},
            instance=instance,
        )
        evaluations = {e.check_name: e for e in books.get_asset_check_evaluations()}
        assert all(e.passed for e in evaluations.values()), {
            k: e.description for k, e in evaluations.items() if not e.passed
        }
        assert {e.partition for e in evaluations.values()} == {None}
        metadata = books.asset_materializations_for_node("thred__books")[0].metadata
        assert metadata["verdict"].value == "PASS"
        assert metadata["money_at_stake_cents"].value == 0

        ledger = SyncLedger.from_url(resources["ledger"].url)  # type: ignore[attr-defined]
        payment = next(r for r in ledger.iter_rows("invoice_payments") if r.thred_id)
        business = ledger.thred_ids("businesses", [payment.business_id])[payment.business_id]
        deleted = httpx.post(
            f"{sandbox.url}/_sandbox/delete-object",
            json={
                "business_id": business,
                "collection": "invoice_payments",
                "id": payment.thred_id,
            },
        )
        assert deleted.status_code == 200, deleted.text
        again = dg.materialize(
            [*PUSH_ASSETS, *BOOKS_ASSETS],
            selection=[BOOKS_KEY],
            resources={**resources, "reconcile": ReconcileResource()},
            instance=instance,
        )
        failed = {e.check_name: e for e in again.get_asset_check_evaluations() if not e.passed}
        assert set(failed) >= {"invoice_payments", "ar_balances"}
        metadata = again.asset_materializations_for_node("thred__books")[0].metadata
        assert metadata["verdict"].value == "FAIL"
        assert metadata["money_at_stake_cents"].value > 0
        report = metadata["report"].value
        assert payment.business_id in report and payment.source_id in report


def test_an_unexplained_difference_fails_the_blocking_check_and_stops_invoices(resources, sandbox):
    with dg.instance_for_test() as instance:
        _backfill(resources, instance, DAYS[:3])
        customer = _customer_updated_on(resources, DAY)
        ledger = SyncLedger.from_url(resources["ledger"].url)  # type: ignore[attr-defined]
        row = ledger.get("customers", customer)
        assert row is not None and row.thred_id
        business = ledger.thred_ids("businesses", [row.business_id])[row.business_id]
        deleted = httpx.post(
            f"{sandbox.url}/_sandbox/delete-object",
            json={"business_id": business, "collection": "customers", "id": row.thred_id},
        )
        assert deleted.status_code == 200, deleted.text

        selection = [
            a
            for a in PUSH_ASSETS
            if {asset_key(entities.get(n)) for n in ("businesses", "customers", "invoices")}
            & set(a.keys)
        ]
        second = dg.materialize(
            selection,
            partition_key=DAY,
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        assert not second.success
        check = _evaluations(second)[("customers", "window_matches")]
        assert not check.passed
        assert check.severity == dg.AssetCheckSeverity.ERROR
        table = check.metadata["differences"].value
        named = [r.data for r in table.records]
        assert any(r["source_id"] == customer and r["kind"] == "missing in Thred" for r in named), (
            named
        )
        # blocking: the invoices step never ran in this run
        assert "thred__invoices" not in {
            e.step_key for e in second.all_events if e.event_type_value == "STEP_START"
        }


def _customer_updated_on(resources: dict[str, object], day: str) -> str:
    from sqlalchemy import String, cast, select

    from thred_pipeline.warehouse.schema import customers

    warehouse = resources["warehouse"].warehouse()  # type: ignore[attr-defined]
    with warehouse.engine.connect() as conn:
        rows = conn.execute(select(customers.c.id, cast(customers.c.updated_at, String))).all()
    return next(str(i) for i, updated in rows if str(updated).startswith(day))
