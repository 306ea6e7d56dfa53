"""Catch-up: every night that failed or was missed is requested again, oldest first, bounded,
each attempt once — against a real Dagster instance (materializations, runs, a backfill)."""

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.execution.backfill import PartitionBackfill
from thred_devtools.sandbox import RunningSandbox, SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, seed_warehouse

from thred_pipeline.assets import PUSH_ASSETS, asset_key
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.definitions import defs
from thred_pipeline.entities import sync_order
from thred_pipeline.jobs import NIGHTLY_JOB_NAME
from thred_pipeline.sensors.catch_up import (
    CatchUpSettings,
    catch_up_missed_nights,
    last_due_partition,
    plan_catch_up,
)
from thred_pipeline.sensors.runs import TRIGGER_TAG

NOW = datetime(2026, 9, 12, 10, 0, tzinfo=UTC)  # the 02:15 run of 09-11 is due by now


def _synced(instance: dg.DagsterInstance, *days: str, only: int | None = None) -> None:
    """Materializations as the nightly run records them (``only``: the first N assets)."""
    for spec in list(sync_order())[:only]:
        for day in days:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=asset_key(spec), partition=day)
            )


def _run(instance: dg.DagsterInstance, day: str, status: dg.DagsterRunStatus, **tags: str) -> None:
    instance.add_run(
        dg.DagsterRun(
            job_name=NIGHTLY_JOB_NAME,
            run_id=str(uuid.uuid4()),
            status=status,
            tags={"dagster/partition": day, **tags},
        )
    )


def _keys(plan: Any) -> list[str]:
    return [r.partition_key for r in plan.requests]


def test_nothing_is_caught_up_before_the_first_night_is_synced():
    with dg.instance_for_test() as instance:
        plan = plan_catch_up(instance, NOW, CatchUpSettings())
    assert plan.requests == []
    assert "no night synced yet" in plan.summary()


def test_failed_blocked_missed_nights_oldest_first_bounded_once_per_attempt():
    with dg.instance_for_test() as instance:
        _synced(instance, *(f"2026-09-0{d}" for d in range(1, 6)))
        _synced(instance, "2026-09-06", only=3)  # a blocking check stopped the chain
        _run(instance, "2026-09-08", dg.DagsterRunStatus.STARTED)  # already running
        # 09-07, 09-09, 09-10, 09-11: never ran (daemon down) or failed

        plan = plan_catch_up(instance, NOW, CatchUpSettings(max_runs=3))
        assert plan.missing == [f"2026-09-{d:02d}" for d in range(6, 12)]
        assert _keys(plan) == ["2026-09-06", "2026-09-07", "2026-09-09"]
        assert [r.run_key for r in plan.requests] == [
            "catch-up:2026-09-06:0",
            "catch-up:2026-09-07:0",
            "catch-up:2026-09-09:0",
        ]
        assert all(r.tags[TRIGGER_TAG] == "catch-up" for r in plan.requests)
        assert plan.in_progress == ["2026-09-08"]

        # the daemon launched them; while they run they are not requested again
        for request in plan.requests:
            _run(instance, request.partition_key or "", dg.DagsterRunStatus.STARTED, **request.tags)
        again = plan_catch_up(instance, NOW, CatchUpSettings(max_runs=3))
        assert _keys(again) == ["2026-09-10", "2026-09-11"]


def test_attempts_are_bounded_and_each_has_its_own_run_key():
    with dg.instance_for_test() as instance:
        _synced(instance, "2026-09-09")
        catch_up = {TRIGGER_TAG: "catch-up"}
        _run(instance, "2026-09-10", dg.DagsterRunStatus.FAILURE, **catch_up)
        _run(instance, "2026-09-10", dg.DagsterRunStatus.FAILURE, **catch_up)
        _run(instance, "2026-09-11", dg.DagsterRunStatus.FAILURE, **catch_up)
        _run(instance, "2026-09-11", dg.DagsterRunStatus.FAILURE)  # the scheduled run: not one
        plan = plan_catch_up(instance, NOW, CatchUpSettings(attempts=2))
        assert plan.given_up == ["2026-09-10"]
        assert [r.run_key for r in plan.requests] == ["catch-up:2026-09-11:1"]
        assert "left to a person" in plan.summary()


def test_the_night_the_schedule_is_about_to_run_is_not_caught_up():
    with dg.instance_for_test() as instance:
        _synced(instance, "2026-09-09")
        early = datetime(2026, 9, 12, 2, 30, tzinfo=UTC)  # 09-11's scheduled run may be starting
        assert last_due_partition(early) == date(2026, 9, 10)
        assert _keys(plan_catch_up(instance, early, CatchUpSettings())) == ["2026-09-10"]
        assert last_due_partition(NOW) == date(2026, 9, 11)


def test_the_horizon_bounds_how_far_back_and_zero_turns_it_off():
    with dg.instance_for_test() as instance:
        _synced(instance, "2026-08-01")
        plan = plan_catch_up(instance, NOW, CatchUpSettings(days=3, max_runs=7))
        assert _keys(plan) == ["2026-09-09", "2026-09-10", "2026-09-11"]
        off = plan_catch_up(instance, NOW, CatchUpSettings(max_runs=0))
        assert off.requests == [] and "off" in off.summary()


def test_a_backfill_in_progress_holds_catch_up_back():
    with dg.instance_for_test() as instance:
        _synced(instance, "2026-09-09")
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="bf1",
            asset_graph=defs.resolve_asset_graph(),
            partition_names=["2026-09-10"],
            asset_selection=[asset_key(s) for s in sync_order()],
            backfill_timestamp=NOW.timestamp(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        plan = plan_catch_up(instance, NOW, CatchUpSettings())
        assert plan.requests == [] and "backfill bf1 in progress" in plan.summary()


def test_the_sensor_requests_from_the_last_synced_night_to_the_last_due_one():
    """The sensor itself, on today's clock (so the expectation allows either side of 03:00)."""
    today = datetime.now(UTC).date()
    synced = [(today - timedelta(days=d)).isoformat() for d in range(10, 4, -1)]
    with dg.instance_for_test() as instance:
        _synced(instance, *synced)
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        result = catch_up_missed_nights.evaluate_tick(context)
    keys = [r.partition_key for r in result.run_requests or []]
    first = today - timedelta(days=4)
    assert keys[0] == first.isoformat()
    assert keys[-1] in {(today - timedelta(days=d)).isoformat() for d in (1, 2)}
    assert keys == [(first + timedelta(days=i)).isoformat() for i in range(len(keys))]
    assert len(keys) <= 7


# --- end to end: real nightly runs against the sandbox --------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with start_sandbox(SandboxConfig()) as running:
        yield running


@pytest.mark.slow
def test_requested_nights_run_for_real_and_are_not_requested_again(
    tmp_path: Path, sandbox: RunningSandbox, monkeypatch: pytest.MonkeyPatch
):
    seed = SeedConfig(
        businesses=1,
        days=7,
        customers=4,
        vendors=4,
        invoices=6,
        payments=4,
        refunds=1,
        refund_payments=1,
        payouts=1,
        bills=4,
        bill_payments=2,
        vendor_credits=1,
    )
    warehouse_url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    seed_warehouse(warehouse_url, seed)
    monkeypatch.setenv("THRED_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("THRED_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    monkeypatch.setenv("THRED_BASE_URL", sandbox.url)
    monkeypatch.setenv("THRED_PARTNER_ID", DEMO_PARTNER_ID)
    monkeypatch.setenv("THRED_API_KEY", DEMO_API_KEY)
    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    now = datetime(2026, 9, 6, 12, 0, tzinfo=UTC)  # nights up to 09-05 are due
    with dg.instance_for_test() as instance:
        assert job.execute_in_process(instance=instance, partition_key="2026-09-01").success
        monkeypatch.setenv("THRED_API_KEY", "wrong-key-for-the-sandbox")
        failed = job.execute_in_process(
            instance=instance, partition_key="2026-09-02", raise_on_error=False
        )
        assert not failed.success
        monkeypatch.setenv("THRED_API_KEY", DEMO_API_KEY)

        plan = plan_catch_up(instance, now, CatchUpSettings(max_runs=2))
        assert _keys(plan) == ["2026-09-02", "2026-09-03"]
        for request in plan.requests:
            result = job.execute_in_process(
                instance=instance, partition_key=request.partition_key, tags=request.tags
            )
            assert result.success
            materialized = {e.asset_key for e in result.get_asset_materialization_events()}
            assert materialized == {a.key for a in PUSH_ASSETS}

        plan = plan_catch_up(instance, now, CatchUpSettings(max_runs=2))
        assert _keys(plan) == ["2026-09-04", "2026-09-05"]  # never 02 or 03 again
