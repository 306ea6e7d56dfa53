"""Reconciliation asset checks, generated from each entity's declared measures.

The checks run inside their entity's push step, right after the push (one Dagster step per
entity instead of four), and are still separate, partitioned checks in the UI. Count and money
checks are ERROR, and blocking where the registry says a mismatch must stop dependants; the
WARN ``nothing_quarantined`` check lists rejected, drifted and long-deferred records.
"""

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from thred_pipeline.entities import EntitySpec
from thred_pipeline.partitions import daily_partitions
from thred_pipeline.sync.ledger import SyncLedger
from thred_pipeline.sync.reconcile import CheckOutcome, Reconciler, supported
from thred_pipeline.sync.records import Status, TimeWindow

# Partitioned checks are a preview API in Dagster 1.13; the version is pinned exactly and this
# module is the only place specs are built, so a change is a one-file edit.
warnings.filterwarnings(
    "ignore", "Specifying a partitions_def on an AssetCheckSpec", dg.PreviewWarning
)

DEFERRED_MAX_AGE = timedelta(days=3)
QUARANTINE_CHECK = "nothing_quarantined"


def check_name(measure: str) -> str:
    return f"{measure}_matches"


def check_specs(spec: EntitySpec, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            check_name(measure),
            asset=key,
            blocking=spec.blocking,
            partitions_def=daily_partitions,
            description=f"Reconcile {spec.label}s with Thred: {measure.replace('_', ' ')}.",
        )
        for measure in supported(spec)
    ]
    specs.append(
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=key,
            partitions_def=daily_partitions,
            description=(
                f"WARN while {spec.label}s are rejected, drifted, or deferred for longer than "
                f"{DEFERRED_MAX_AGE.days} days; lists them with their reasons."
            ),
        )
    )
    return specs


def _metadata(metrics: dict[str, int | float], rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict(metrics)
    if rows:
        out["records"] = dg.MetadataValue.json(rows)
        out["first_record"] = dg.MetadataValue.text(json.dumps(rows[0], default=str))
    return out


def measure_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    metadata = _metadata(outcome.metrics, outcome.mismatches)
    if outcome.details:
        metadata["not_comparable"] = dg.MetadataValue.json(outcome.details)
    return dg.AssetCheckResult(
        check_name=check_name(outcome.measure),
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary,
        metadata=metadata,
    )


def quarantine_result(spec: EntitySpec, ledger: SyncLedger) -> dg.AssetCheckResult:
    rows = list(
        ledger.iter_rows(spec.name, statuses=(Status.REJECTED, Status.DRIFT, Status.DEFERRED))
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
        check_name=QUARANTINE_CHECK,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(flagged)} {spec.label}s need attention" if flagged else "all clear",
        metadata=metadata,
    )


def evaluate(
    spec: EntitySpec, window: TimeWindow, reconciler: Reconciler, ledger: SyncLedger
) -> list[dg.AssetCheckResult]:
    outcomes = reconciler.check_all(spec, window)
    return [*(measure_result(o) for o in outcomes), quarantine_result(spec, ledger)]
