"""Push assets, one per registry entity, generated from ``entities.ENTITIES``.

Each asset streams the partition window's changed rows out of the warehouse, plans them
against the ledger and pushes them to Thred (see ``sync/engine.py``); extraction is not a
separate asset because a staged copy of the window would double the IO and break streaming.
The warehouse tables appear as external assets so the lineage reads warehouse -> Thred.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import dagster as dg
from sqlalchemy.exc import OperationalError

from thred_pipeline.checks import (
    WINDOW_CHECK,
    books_check_specs,
    books_metadata,
    books_results,
    check_result,
    window_check_spec,
)
from thred_pipeline.config import SettingsError
from thred_pipeline.entities import EntitySpec, sync_order
from thred_pipeline.partitions import daily_partitions
from thred_pipeline.resources import (
    LedgerResource,
    ReconcileResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
    build_books_reconciler,
    build_engine,
    build_window_reconciler,
)
from thred_pipeline.sync.engine import EntityRunResult
from thred_pipeline.sync.records import TimeWindow
from thred_pipeline.thred.errors import ThredConfigError, ThredTransientError

THRED_POOL = "thred_api"
BOOKS_KEY = dg.AssetKey(["thred", "books"])
AS_OF_TAG = "thred/as_of"  # set by the sensor: the end of the window the nightly run synced

TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


TRANSIENT = (ThredTransientError, OperationalError)  # retried by TRANSIENT_RETRY


class UncertainOutcomes(Exception):
    """Some writes ended with an uncertain outcome; a retry resolves them before new work."""


@contextmanager
def _failures(what: str) -> Iterator[None]:
    """Map errors to Dagster's retry semantics: transient ones retry, the rest fail at once."""
    try:
        yield
    except (ThredConfigError, SettingsError) as exc:  # a setting to fix: one clear line
        raise dg.Failure(description=f"configuration error: {exc}", allow_retries=False) from None
    except TRANSIENT as exc:
        raise UncertainOutcomes(f"{what}: transient failure, will retry: {exc}") from None
    except Exception as exc:  # a bug: retrying cannot help
        raise dg.Failure(
            description=f"{what} failed: {type(exc).__name__}: {exc}", allow_retries=False
        ) from exc


def asset_key(spec: EntitySpec) -> dg.AssetKey:
    return dg.AssetKey(["thred", spec.name])


def warehouse_key(spec: EntitySpec) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", spec.table.name])


def warehouse_specs() -> list[dg.AssetSpec]:
    return [
        dg.AssetSpec(
            warehouse_key(spec),
            group_name="warehouse",
            description=f"Platform warehouse table `{spec.table.name}` (read-only source).",
            kinds={"sql"},
        )
        for spec in sync_order()
    ]


def result_metadata(result: EntityRunResult) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(result.metrics())
    metadata["window"] = (
        f"{result.window.start:%Y-%m-%d %H:%M} .. {result.window.end:%Y-%m-%d %H:%M}"
    )
    metadata["per_business"] = dg.MetadataValue.json(
        {b: dict(c) for b, c in sorted(result.per_business.items())}
    )
    for outcome, samples in sorted(result.samples.items()):
        metadata[f"{outcome}_samples"] = dg.MetadataValue.md(_samples_md(samples))
    if result.paused_businesses:
        metadata["paused"] = dg.MetadataValue.json(result.paused_businesses)
    return metadata


def _samples_md(samples: list[dict[str, Any]]) -> str:
    keys = sorted({k for s in samples for k in s})
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for sample in samples:
        cells = [json.dumps(sample.get(k), default=str).replace("|", "\\|") for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_push_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    deps = [warehouse_key(spec), *(dg.AssetKey(["thred", d]) for d in spec.depends_on)]

    @dg.asset(
        key=asset_key(spec),
        group_name=spec.group,
        partitions_def=daily_partitions,
        deps=deps,
        pool=THRED_POOL,
        retry_policy=TRANSIENT_RETRY,
        kinds={"thred"},
        description=(
            f"{spec.label.capitalize()}s pushed to Thred ({spec.create_path}); "
            f"changes after creation: {spec.change_policy.value}."
        ),
        tags={"thred/entity": spec.name},
        check_specs=[window_check_spec(spec, asset_key(spec))],
    )
    def push(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        ledger: LedgerResource,
        thred: ThredResource,
        sync: SyncResource,
    ) -> dg.MaterializeResult:  # type: ignore[type-arg]
        start, end = context.partition_time_window
        window = TimeWindow(start, end)
        with _failures(spec.name):
            result = build_engine(warehouse, ledger, thred, sync).sync_entity(spec, window)
        context.log.info(f"{spec.name}: {dict(result.counts)} ({result.api_calls} API calls)")
        if result.counts["unknown"]:
            raise UncertainOutcomes(
                f"{result.counts['unknown']} {spec.label} writes have an uncertain outcome; "
                "retrying re-sends them with the same external_id first"
            )
        with _failures(f"{spec.name} window check"):
            report = build_window_reconciler(warehouse, ledger, thred).check(spec.name, window)
        return dg.MaterializeResult(
            metadata=result_metadata(result), check_results=[check_result(report, WINDOW_CHECK)]
        )

    return push


@dg.asset(
    key=BOOKS_KEY,
    group_name="thred_reconciliation",
    deps=[asset_key(spec) for spec in sync_order()],
    pool=THRED_POOL,
    kinds={"thred", "pandas"},
    description=(
        "Thred's books against the warehouse's, once per night (after the nightly sync) and "
        "on demand: every record, every customer's and vendor's balance and aging, per active "
        "business. A difference is never green; the ledger only explains it."
    ),
    check_specs=books_check_specs(BOOKS_KEY),
)
def books(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ledger: LedgerResource,
    thred: ThredResource,
    reconcile: ReconcileResource,
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    as_of_tag = context.run.tags.get(AS_OF_TAG)
    as_of = datetime.fromisoformat(as_of_tag) if as_of_tag else None
    with _failures("books"):
        report = build_books_reconciler(warehouse, ledger, thred, reconcile).run(as_of=as_of)
    context.log.info(f"books: {report.verdict}; money at stake {report.money_at_stake()}")
    return dg.MaterializeResult(
        metadata=books_metadata(report),
        check_results=books_results(report, ledger.ledger()),
    )


PUSH_ASSETS = [build_push_asset(spec) for spec in sync_order()]
BOOKS_ASSETS = [books]
WAREHOUSE_ASSETS = warehouse_specs()
