"""The code location loads, its graph follows the registry, and the schedule targets yesterday."""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster._core.utils import make_new_run_id

from thred_pipeline import entities
from thred_pipeline.assets import AS_OF_TAG, BOOKS_ASSETS, BOOKS_KEY, PUSH_ASSETS, asset_key
from thred_pipeline.definitions import defs
from thred_pipeline.jobs import BOOKS_JOB_NAME, NIGHTLY_JOB_NAME
from thred_pipeline.schedules import nightly_sync_schedule
from thred_pipeline.sensors import books_after_nightly_sync


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(NIGHTLY_JOB_NAME)


def test_every_entity_has_a_push_asset_with_registry_dependencies():
    graph = defs.resolve_asset_graph()
    for spec in entities.ENTITIES:
        key = asset_key(spec)
        node = graph.get(key)
        parents = {k for k in node.parent_keys if k.path[0] == "thred"}
        assert parents == {asset_key(entities.get(d)) for d in spec.depends_on}, spec.name
        assert node.pools == {"thred_api"}


def test_documented_sync_order():
    order = [s.name for s in entities.sync_order()]
    before = [
        ("businesses", "customers"),
        ("customers", "invoices"),
        ("invoices", "invoice_payments"),
        ("invoices", "refunds"),
        ("refunds", "refund_payments"),
        ("refund_payments", "payouts"),
        ("invoice_payments", "payouts"),
        ("vendors", "bills"),
        ("bills", "bill_payments"),
        ("bills", "vendor_credits"),
    ]
    for parent, child in before:
        assert order.index(parent) < order.index(child), (parent, child)


def test_blocking_checks_on_parent_entities():
    blocking = {
        check.asset_key.path[-1]
        for asset in PUSH_ASSETS
        for check in asset.check_specs
        if check.blocking
    }
    assert blocking == {"businesses", "customers", "vendors", "invoices", "bills"}
    names = {c.name for asset in PUSH_ASSETS for c in asset.check_specs}
    assert names == {"window_matches"}


def test_books_are_checked_once_per_entity_and_per_balance():
    books = next(a for a in BOOKS_ASSETS if BOOKS_KEY in a.keys)
    names = {c.name for c in books.check_specs}
    assert names == {s.name for s in entities.ENTITIES} | {
        "ar_balances",
        "ap_balances",
        "nothing_quarantined",
    }
    assert not any(c.blocking for c in books.check_specs)
    assert not books.partitions_def  # once per night, not once per partition
    assert defs.resolve_job_def(BOOKS_JOB_NAME)


def _run(instance: dg.DagsterInstance, tags: dict[str, str]) -> dg.DagsterRun:
    return dg.DagsterRun(job_name=NIGHTLY_JOB_NAME, run_id=make_new_run_id(), tags=tags)


def test_the_books_sensor_follows_nightly_runs_but_not_backfills():
    with dg.instance_for_test() as instance:
        nightly = _run(instance, {"dagster/partition": "2026-09-14"})
        backfilled = _run(instance, {"dagster/partition": "2026-09-13", "dagster/backfill": "b1"})
        sensor = books_after_nightly_sync
        requested = sensor(
            dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_event=_success_event(nightly),
                dagster_instance=instance,
                dagster_run=nightly,
            )
        )
        assert isinstance(requested, dg.RunRequest)
        assert requested.run_key == nightly.run_id
        assert requested.tags[AS_OF_TAG] == "2026-09-15T00:00:00+00:00"
        skipped = sensor(
            dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_event=_success_event(backfilled),
                dagster_instance=instance,
                dagster_run=backfilled,
            )
        )
        assert isinstance(skipped, dg.SkipReason)


def _success_event(run: dg.DagsterRun) -> dg.DagsterEvent:
    return dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name=run.job_name, message="ok")


def test_schedule_requests_yesterdays_partition():
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 9, 15, 2, 15, tzinfo=dt.UTC),
        )
        schedule = defs.resolve_schedule_def(nightly_sync_schedule.name)
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests or []] == ["2026-09-14"]
