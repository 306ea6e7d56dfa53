"""Reconciliation asset checks, generated from each entity's declared measures.

ERROR + blocking on the entities whose mismatch must stop their dependants (declared in the
registry); WARN checks surface quarantined and drifted records without stopping the run.
"""


import json
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from thred_pipeline.assets import asset_key
from thred_pipeline.entities import EntitySpec, sync_order
from thred_pipeline.partitions import daily_partitions
from thred_pipeline.resources import (
    LedgerResource,
    ThredResource,
    WarehouseResource,
    build_reconciler,
)
from thred_pipeline.sync.records import Status, TimeWindow

DEFERRED_MAX_AGE = timedelta(days=3)


def check_name(measure: str) -> str:
    return f"{measure}_matches"


def _metadata(metrics: dict[str, int | float], rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict(metrics)
    if rows:
        out["records"] = dg.MetadataValue.json(rows)
        out["first_record"] = dg.MetadataValue.text(json.dumps(rows[0], default=str))
    return out


def build_measure_check(spec: EntitySpec, measure: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key(spec),
        name=check_name(measure),
        blocking=spec.blocking,
        partitions_def=daily_partitions,
        description=f"Reconcile {spec.label}s with Thred: {measure.replace('_', ' ')}.",
    )
    def reconcile(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        ledger: LedgerResource,
        thred: ThredResource,
    ) -> dg.AssetCheckResult:
        start, end = context.partition_time_window
        outcome = build_reconciler(warehouse, ledger, thred).check(
            spec, measure, TimeWindow(start, end)
        )
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=outcome.summary,
            metadata=_metadata(outcome.metrics, outcome.mismatches),
        )

    return reconcile


def build_quarantine_check(spec: EntitySpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset_key(spec),
        name="nothing_quarantined",
        partitions_def=daily_partitions,
        description=(
            f"WARN while {spec.label}s are rejected, drifted, or deferred for longer than "
            f"{DEFERRED_MAX_AGE.days} days; lists them with their reasons."
        ),
    )
    def quarantine(ledger: LedgerResource) -> dg.AssetCheckResult:
        rows = list(
            ledger.ledger().iter_rows(
                spec.name, statuses=(Status.REJECTED, Status.DRIFT, Status.DEFERRED)
            )
        )
        cutoff = datetime.now(UTC) - DEFERRED_MAX_AGE
        flagged = [r for r in rows if r.status is not Status.DEFERRED or r.status_since < cutoff]
        by_reason: dict[str, int] = {}
        for row in flagged:
            key = f"{row.status.value}:{row.error_code}"
            by_reason[key] = by_reason.get(key, 0) + 1
        samples = [
            {
                "status": r.status.value,
                "external_id": r.external_id,
                "code": r.error_code,
                "reason": r.error_message,
                "details": r.error_details,
            }
            for r in flagged[:25]
        ]
        metrics: dict[str, int | float] = {
            "rejected": sum(r.status is Status.REJECTED for r in rows),
            "drift": sum(r.status is Status.DRIFT for r in rows),
            "deferred": sum(r.status is Status.DEFERRED for r in rows),
            "deferred_too_long": sum(r.status is Status.DEFERRED for r in flagged),
        }
        metadata = _metadata(metrics, samples)
        if by_reason:
            metadata["by_reason"] = dg.MetadataValue.json(by_reason)
        return dg.AssetCheckResult(
            passed=not flagged,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"{len(flagged)} {spec.label}s need attention" if flagged else "nothing quarantined"
            ),
            metadata=metadata,
        )

    return quarantine


ALL_CHECKS = [
    check
    for spec in sync_order()
    for check in (
        *(
            build_measure_check(spec, measure)
            for measure in spec.measures
            if measure
            in ("count", "customer_balance", "ar_outstanding", "vendor_balance", "ap_outstanding")
        ),
        build_quarantine_check(spec),
    )
]
