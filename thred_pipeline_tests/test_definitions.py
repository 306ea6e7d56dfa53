"""The code location loads, its graph follows the registry, and the schedule targets yesterday."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from thred_pipeline import entities
from thred_pipeline.assets import PUSH_ASSETS, asset_key
from thred_pipeline.definitions import defs
from thred_pipeline.jobs import NIGHTLY_JOB_NAME
from thred_pipeline.schedules import nightly_sync_schedule


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
    assert {"count_matches", "customer_balance_matches", "ar_outstanding_matches"} <= names
    assert "nothing_quarantined" in names


def test_schedule_requests_yesterdays_partition():
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime(2026, 9, 15, 2, 15, tzinfo=dt.UTC),
        )
        schedule = defs.resolve_schedule_def(nightly_sync_schedule.name)
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests or []] == ["2026-09-14"]
