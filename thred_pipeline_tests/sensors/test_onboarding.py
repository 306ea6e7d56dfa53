"""New and reactivated businesses are synced without waiting for the night: the sensor against a
real warehouse (SQLite), ledger, sandbox and Dagster instance, and the runs it requests, run."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import select, update
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.jobs import BUSINESS_TAG, sync_businesses_now
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.resources import LedgerResource, SyncResource, ThredResource, WarehouseResource
from thred_pipeline.sensors.onboarding import sync_new_businesses
from thred_pipeline.sensors.runs import TRIGGER_TAG
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.schema import businesses, customers

pytestmark = pytest.mark.slow

SEED = SeedConfig(
    businesses=3,
    days=7,
    customers=6,
    vendors=4,
    invoices=8,
    payments=4,
    refunds=1,
    refund_payments=1,
    payouts=1,
    bills=4,
    bill_payments=2,
    vendor_credits=1,
)
LONG_AGO = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)  # before the first partition: no night sends it


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


@pytest.fixture
def world(tmp_path: Path, sandbox: RunningSandbox) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    seed_warehouse(url, SEED)
    return {
        "warehouse": WarehouseResource(url=url),
        "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.db'}"),
        "thred": ThredResource(
            base_url=sandbox.url, partner_id=DEMO_PARTNER_ID, api_key=DEMO_API_KEY
        ),
        "sync": SyncResource(lookback_hours=0),
    }


class Sensor:
    def __init__(self, instance: dg.DagsterInstance, world: dict[str, Any]) -> None:
        self.instance, self.world, self.cursor = instance, world, None

    def tick(self) -> Any:
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources={"warehouse": self.world["warehouse"], "ledger": self.world["ledger"]},
        )
        data = sync_new_businesses.evaluate_tick(context)
        if data.cursor is not None:
            self.cursor = data.cursor
        return data

    def run(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """What the daemon does with a request: a run of the job with its config and tags."""
        result = sync_businesses_now.execute_in_process(
            run_config=request.run_config,
            tags=request.tags,
            instance=self.instance,
            resources=self.world,
        )
        assert result.success
        return result


def _copy_business(world: dict[str, Any], new_id: str, **changes: Any) -> str:
    """A new business (and one customer of it) in the warehouse, last updated long ago."""
    engine = create_warehouse_engine(world["warehouse"].url)
    with engine.begin() as conn:
        template = dict(conn.execute(select(businesses).limit(1)).mappings().one())
        template.update(
            id=new_id,
            legal_name=f"Newco {new_id}",
            is_active=True,
            created_at=LONG_AGO,
            updated_at=LONG_AGO,
            **changes,
        )
        conn.execute(businesses.insert().values(**template))
        customer = dict(
            conn.execute(select(customers).where(customers.c.archived_at.is_(None)).limit(1))
            .mappings()
            .one()
        )
        customer.update(
            id=f"cust-of-{new_id}", business_id=new_id, created_at=LONG_AGO, updated_at=LONG_AGO
        )
        conn.execute(customers.insert().values(**customer))
    engine.dispose()
    return new_id


def _set_active(world: dict[str, Any], business: str, active: bool) -> None:
    engine = create_warehouse_engine(world["warehouse"].url)
    with engine.begin() as conn:
        conn.execute(update(businesses).where(businesses.c.id == business).values(is_active=active))
    engine.dispose()


def test_new_and_reactivated_businesses_are_synced_now(world: dict[str, Any]):
    ledger = SyncLedger.from_url(world["ledger"].url)
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, world)
        waiting = sensor.tick()
        assert not waiting.run_requests
        assert "ledger holds no business yet" in (waiting.skip_message or "")

        # an operator syncs one business by hand: only that business's records are read and sent
        ids = world["warehouse"].warehouse().active_business_ids()
        first, others = ids[0], ids[1:]
        sensor.run(
            dg.RunRequest(
                run_config={"ops": {"sync_businesses": {"config": {"business_ids": [first]}}}}
            )
        )
        assert {r.business_id for r in ledger.iter_rows()} == {first}
        assert ledger.thred_ids("customers", [r.source_id for r in ledger.iter_rows("customers")])

        # the others are new to the sync: requested at once, one run each, once
        requests = sensor.tick().run_requests
        assert [r.tags[BUSINESS_TAG] for r in requests] == others
        assert [r.run_key for r in requests] == [f"onboard:{b}:0" for b in others]
        assert all(r.tags[TRIGGER_TAG] == "onboard" for r in requests)
        for request in requests:
            sensor.run(request)
        assert set(ledger.thred_ids("businesses", ids)) == set(ids)
        quiet = sensor.tick()
        assert not quiet.run_requests and quiet.skip_message

        # a business created today whose data is dated long ago: no nightly window sends it
        newco = _copy_business(world, "biz-newco")
        [request] = sensor.tick().run_requests
        assert request.tags[BUSINESS_TAG] == newco and request.tags["thred/reason"] == "new"
        sensor.run(request)
        assert ledger.thred_ids("businesses", [newco]) and ledger.thred_ids(
            "customers", [f"cust-of-{newco}"]
        )

        # deactivated, changed while inactive (in a window that already ran), reactivated
        _set_active(world, first, False)
        assert not sensor.tick().run_requests
        changed = next(r for r in ledger.iter_rows("customers") if r.business_id == first)
        engine = create_warehouse_engine(world["warehouse"].url)
        with engine.begin() as conn:
            conn.execute(
                update(customers)
                .where(customers.c.id == changed.source_id)
                .values(company_name="Renamed while inactive", updated_at=LONG_AGO)
            )
        engine.dispose()
        _set_active(world, first, True)
        [request] = sensor.tick().run_requests
        assert request.tags[BUSINESS_TAG] == first
        assert request.tags["thred/reason"] == "reactivated"
        assert request.run_key.startswith(f"onboard:{first}:reactivated:")
        before = ledger.get("customers", changed.source_id)
        sensor.run(request)
        after = ledger.get("customers", changed.source_id)
        assert before is not None and after is not None
        assert after.intended_hash != before.intended_hash  # the change was sent
        assert after.source_updated_at == LONG_AGO
        assert not sensor.tick().run_requests  # requested once


def test_a_business_thred_never_takes_is_tried_a_bounded_number_of_times(world: dict[str, Any]):
    ledger = SyncLedger.from_url(world["ledger"].url)
    ids = world["warehouse"].warehouse().active_business_ids()
    with dg.instance_for_test() as instance:
        sensor = Sensor(instance, world)
        sensor.tick()
        sensor.run(
            dg.RunRequest(
                run_config={"ops": {"sync_businesses": {"config": {"business_ids": ids}}}}
            )
        )
        # a VAT number longer than Thred documents: quarantined, so never in Thred
        bad = _copy_business(world, "biz-bad-vat", vat_number="GB" + "9" * 30)
        keys = []
        for _ in range(2):
            [request] = sensor.tick().run_requests
            keys.append(request.run_key)
            sensor.run(request)
            assert not ledger.thred_ids("businesses", [bad])
        assert keys == [f"onboard:{bad}:0", f"onboard:{bad}:1"]
        given_up = sensor.tick()
        assert not given_up.run_requests
        assert "still not in Thred after 2 run(s)" in (given_up.skip_message or "")


def test_the_sensor_can_be_turned_off(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("THRED_ONBOARD_MAX_RUNS", "0")
    with dg.instance_for_test() as instance:
        off = Sensor(instance, world).tick()
        assert not off.run_requests and "THRED_ONBOARD_MAX_RUNS=0" in (off.skip_message or "")
