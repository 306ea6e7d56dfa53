"""The code location loads, its graph follows the registry, the schedule targets yesterday, and
every asset carries its owners, code version, backfill policy and freshness."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
import re
import subprocess
import sys

import dagster as dg

# Dagster's own freshness evaluator and clock, to evaluate the policy as its daemon does.
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.definitions.freshness_evaluator import CronFreshnessPolicyEvaluator
from dagster._core.loader import LoadingContextForTest
from dagster._core.test_utils import freeze_time
from dagster._core.utils import make_new_run_id

from thred_pipeline import entities
from thred_pipeline.assets import (
    AS_OF_TAG,
    BOOKS_ASSETS,
    BOOKS_KEY,
    FRESHNESS_CHECKS,
    PUSH_ASSETS,
    asset_key,
    package_version,
)
from thred_pipeline.definitions import defs
from thred_pipeline.jobs import BOOKS_JOB_NAME, NIGHTLY_JOB_NAME, ONBOARD_JOB_NAME
from thred_pipeline.resources import LedgerResource, SyncResource, ThredResource, WarehouseResource
from thred_pipeline.schedules import nightly_sync_schedule
from thred_pipeline.sensors import ALL_SENSORS
from thred_pipeline.sensors.books import books_after_nightly_sync


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(NIGHTLY_JOB_NAME)


def test_every_job_runs_its_steps_in_the_run_process():
    """No process per step (issue 8, B6), for the UI's own asset job and backfills too."""
    jobs = defs.resolve_all_job_defs()
    assert {job.name for job in jobs} >= {NIGHTLY_JOB_NAME, BOOKS_JOB_NAME, ONBOARD_JOB_NAME}
    for job in jobs:
        assert job.executor_def is dg.in_process_executor, job.name
        config = job.executor_def.config_schema.as_field().default_value
        assert config["retries"] == {"enabled": {}}, job.name  # RetryPolicy still applies


def test_every_entity_has_a_push_asset_with_registry_dependencies():
    graph = defs.resolve_asset_graph()
    for spec in entities.ENTITIES:
        key = asset_key(spec)
        node = graph.get(key)
        parents = {k for k in node.parent_keys if k.path[0] == "thred"}
        upstream = {*spec.depends_on, *spec.retry_after}  # the order sync_order() follows
        assert parents == {asset_key(entities.get(d)) for d in upstream}, spec.name
        assert node.pools == {"thred_api"}
    refunds = graph.get(asset_key(entities.get("refunds")))
    assert asset_key(entities.get("invoice_payments")) in refunds.parent_keys


def test_the_nightly_job_pushes_every_registry_entity_once():
    job = defs.resolve_job_def(NIGHTLY_JOB_NAME)
    selected = job.asset_layer.selected_asset_keys
    pushed = sorted(key.path[1] for key in selected if key.path[0] == "thred")
    assert pushed == sorted(spec.name for spec in entities.ENTITIES)


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


def test_the_books_wait_for_the_last_of_a_batch_of_nightly_runs():
    """Catch-up queues several nights: the books are reconciled after the last one only."""
    with dg.instance_for_test() as instance:
        done = _run(instance, {"dagster/partition": "2026-09-13"})
        instance.add_run(
            dg.DagsterRun(
                job_name=NIGHTLY_JOB_NAME,
                run_id=make_new_run_id(),
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/partition": "2026-09-14"},
            )
        )
        skipped = books_after_nightly_sync(
            dg.build_run_status_sensor_context(
                sensor_name=books_after_nightly_sync.name,
                dagster_event=_success_event(done),
                dagster_instance=instance,
                dagster_run=done,
            )
        )
    assert isinstance(skipped, dg.SkipReason)
    assert "reconciled after the last one" in (skipped.skip_message or "")


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


# --- operations metadata: owners, code versions, descriptions, backfill policy, freshness ----


def _all_asset_nodes():
    graph = defs.resolve_asset_graph()
    return [graph.get(k) for k in graph.get_all_asset_keys()]


def test_every_asset_has_owners_a_code_version_and_a_clean_description():
    nodes = _all_asset_nodes()
    assert len(nodes) == 2 * len(entities.ENTITIES) + 1  # warehouse tables, pushes, books
    version = package_version()
    for node in nodes:
        name = node.key.to_user_string()
        assert node.owners == ["team:data-platform"], name
        assert re.fullmatch(rf"{re.escape(version)}\+[0-9a-f]{{12}}", node.code_version or ""), name
        _assert_clean(node.description, name)
    versions = [n.code_version for n in nodes]
    assert len(set(versions)) == len(versions)  # each entry of the registry versions its asset
    jobs = [defs.resolve_job_def(n) for n in (NIGHTLY_JOB_NAME, BOOKS_JOB_NAME, ONBOARD_JOB_NAME)]
    for definition in [*jobs, *(defs.resolve_sensor_def(s.name) for s in ALL_SENSORS)]:
        if definition.name != "freshness_checks_sensor":  # Dagster's own words
            _assert_clean(definition.description, definition.name)


def _assert_clean(text: str | None, name: str) -> None:
    assert text and text[0].isupper() and text.rstrip().endswith("."), (name, text)
    words = re.findall(r"[A-Za-z']+", text.lower())
    assert not [w for w in words if re.search(r"(.)\1\1", w)], (name, text)  # "businesss"
    assert not [a for a, b in itertools.pairwise(words) if a == b], (name, text)


def test_code_versions_are_stable_across_processes():
    script = (
        "import json; from thred_pipeline.definitions import defs; g = defs.resolve_asset_graph();"
        "print(json.dumps({k.to_user_string(): g.get(k).code_version "
        "for k in g.get_all_asset_keys()}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    graph = defs.resolve_asset_graph()
    here = {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}
    assert json.loads(other.stdout.strip().splitlines()[-1]) == here


def test_backfills_run_one_day_per_run_by_default_and_the_freshness_deadline_is_six():
    for asset in PUSH_ASSETS:
        # No policy: Dagster then tags each backfill run with its day (see test_backfill_ui).
        assert asset.backfill_policy is None
        fresh = asset.specs_by_key[asset.key].freshness_policy
        assert fresh == dg.FreshnessPolicy.cron(
            deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=6), timezone="UTC"
        )
    checked = {k.asset_key for c in FRESHNESS_CHECKS for k in c.check_keys}
    assert checked == {a.key for a in PUSH_ASSETS}


def _load_in_subprocess(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    script = f"import thred_pipeline.assets as a; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_settings_from_the_environment_and_one_line_errors():
    ok = _load_in_subprocess(
        {
            "THRED_FRESH_BY_HOUR": "07:30",
            "THRED_OWNERS": "team:finance-data, ops@example.com",
            "THRED_BACKFILL_DAYS_PER_RUN": "5",
        },
        "a.FRESH_BY, a.OWNERS, a.PUSH_ASSETS[0].backfill_policy.max_partitions_per_run, "
        "a.PUSH_ASSETS[0].specs_by_key[a.PUSH_ASSETS[0].key].freshness_policy.deadline_cron",
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "(7, 30) ['team:finance-data', 'ops@example.com'] 5 30 7 * * *"
    for env, message in (
        ({"THRED_FRESH_BY_HOUR": "25"}, "THRED_FRESH_BY_HOUR must be a UTC time"),
        ({"THRED_OWNERS": "data platform"}, "is neither team:<name> nor an e-mail address"),
        ({"THRED_BACKFILL_DAYS_PER_RUN": "0"}, "THRED_BACKFILL_DAYS_PER_RUN must be a whole"),
    ):
        bad = _load_in_subprocess(env, "1")
        assert bad.returncode != 0 and message in bad.stderr, (env, bad.stderr[-500:])


def test_freshness_policy_state_as_dagsters_daemon_evaluates_it():
    """The policy on the push assets, evaluated by Dagster's own cron evaluator."""
    key = asset_key(entities.get("customers"))
    node = defs.resolve_asset_graph().get(key)

    def state(instance: dg.DagsterInstance) -> FreshnessState:
        return asyncio.run(
            CronFreshnessPolicyEvaluator().evaluate_freshness(LoadingContextForTest(instance), node)
        )

    with dg.instance_for_test() as instance:
        assert state(instance) == FreshnessState.UNKNOWN  # never synced
        instance.report_runless_asset_event(dg.AssetMaterialization(key, partition="2026-09-14"))
        assert state(instance) == FreshnessState.PASS  # synced since the last 00:00..06:00 window
        synced_at = dt.datetime.now(dt.UTC)
        with freeze_time(synced_at + dt.timedelta(days=2)):
            assert state(instance) == FreshnessState.FAIL  # nothing since: the deadline passed


def test_freshness_checks_flag_yesterday_missing_after_the_deadline():
    """The partition-aware checks: from 06:00 UTC, yesterday's partition must be in Thred."""
    customers, invoices = (asset_key(entities.get(n)) for n in ("customers", "invoices"))
    with dg.instance_for_test() as instance:
        for key in (customers, invoices):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition="2026-09-13")
            )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(customers, partition="2026-09-14")
        )

        def evaluate(now: dt.datetime) -> dict[str, dg.AssetCheckEvaluation]:
            with freeze_time(now):
                result = dg.materialize(
                    [*PUSH_ASSETS, *FRESHNESS_CHECKS],
                    selection=dg.AssetSelection.checks(
                        *(
                            k
                            for c in FRESHNESS_CHECKS
                            for k in c.check_keys
                            if k.asset_key in (customers, invoices)
                        )
                    ),
                    instance=instance,
                    resources=_unused_resources(),
                )
            return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}

        before = evaluate(dt.datetime(2026, 9, 15, 5, 0, tzinfo=dt.UTC))  # 09-13 is expected
        assert before["customers"].passed and before["invoices"].passed
        after = evaluate(dt.datetime(2026, 9, 15, 6, 30, tzinfo=dt.UTC))  # now 09-14 is
        assert after["customers"].passed
        assert not after["invoices"].passed
        assert after["invoices"].severity == dg.AssetCheckSeverity.WARN


def _unused_resources() -> dict[str, object]:
    """The push assets' resources (not run when only the freshness checks are selected)."""
    return {
        "warehouse": WarehouseResource(url="sqlite:///unused.db"),
        "ledger": LedgerResource(url="sqlite:///unused.db"),
        "thred": ThredResource(base_url="http://127.0.0.1:9", partner_id="p", api_key="k" * 16),
        "sync": SyncResource(),
    }
