"""Push assets, one per registry entity, generated from ``entities.ENTITIES``.

Each asset streams the partition window's changed rows out of the warehouse, plans them
against the ledger and pushes them to Thred (see ``sync/engine.py``); extraction is not a
separate asset because a staged copy of the window would double the IO and break streaming.
The warehouse tables appear as external assets so the lineage reads warehouse -> Thred.
"""

import json
from typing import Any

import dagster as dg
from sqlalchemy.exc import OperationalError

from thred_pipeline.checks import check_specs, evaluate
from thred_pipeline.entities import EntitySpec, sync_order
from thred_pipeline.partitions import daily_partitions
from thred_pipeline.resources import (
    LedgerResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
    build_engine,
    build_reconciler,
)
from thred_pipeline.sync.engine import EntityRunResult
from thred_pipeline.sync.records import TimeWindow
from thred_pipeline.thred.errors import ThredTransientError

THRED_POOL = "thred_api"

TRANSIENT_RETRY = dg.RetryPolicy(
    max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


TRANSIENT = (ThredTransientError, OperationalError)  # retried by TRANSIENT_RETRY


class UncertainOutcomes(Exception):
    """Some writes ended with an uncertain outcome; a retry resolves them before new work."""


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
        check_specs=check_specs(spec, asset_key(spec)),
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
        try:
            result = build_engine(warehouse, ledger, thred, sync).sync_entity(spec, window)
        except TRANSIENT as exc:
            raise UncertainOutcomes(f"{spec.name}: transient failure, will retry: {exc}") from None
        except Exception as exc:  # a bug or bad configuration: retrying cannot help
            raise dg.Failure(
                description=f"{spec.name} sync failed: {type(exc).__name__}: {exc}",
                allow_retries=False,
            ) from exc
        context.log.info(f"{spec.name}: {dict(result.counts)} ({result.api_calls} API calls)")
        if result.counts["unknown"]:
            raise UncertainOutcomes(
                f"{result.counts['unknown']} {spec.label} writes have an uncertain outcome; "
                "retrying re-sends them with the same external_id first"
            )
        checks = evaluate(spec, window, build_reconciler(warehouse, ledger, thred), ledger.ledger())
        return dg.MaterializeResult(metadata=result_metadata(result), check_results=checks)

    return push


PUSH_ASSETS = [build_push_asset(spec) for spec in sync_order()]
WAREHOUSE_ASSETS = warehouse_specs()
