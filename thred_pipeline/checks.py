"""Reconciliation as Dagster asset checks, at the two levels of ``thred_pipeline.reconcile``.

- ``window_matches`` on every push asset, per partition, evaluated inside the push step: the
  window's records of that entity are in Thred with the same documented values. Blocking where
  the registry says so; an unexplained difference is an ERROR (and blocks), a difference the
  ledger explains (quarantined, deferred, in flight) is a WARN, so one bad record never stops
  the other records' dependants.
- The books checks on ``thred/books`` (unpartitioned, once per night and on demand): every
  record, every party balance and aging total of every active business; and the WARN
  ``nothing_quarantined`` listing what the ledger holds back.

A check passes only when its differences are empty; severity never turns a difference green.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from thred_pipeline.core.records import Status
from thred_pipeline.entities import BY_NAME, ENTITIES, EntitySpec
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.partitions import daily_partitions
from thred_pipeline.reconcile import BooksReport, CheckReport
from thred_pipeline.reconcile.report import BALANCE_CHECKS

# Partitioned checks are a preview API in Dagster 1.13; the version is pinned exactly and this
# module is the only place specs are built, so a change is a one-file edit.
warnings.filterwarnings(
    "ignore", "Specifying a partitions_def on an AssetCheckSpec", dg.PreviewWarning
)

WINDOW_CHECK = "window_matches"
QUARANTINE_CHECK = "nothing_quarantined"
BOOKS_CHECKS = (*(spec.name for spec in ENTITIES), *BALANCE_CHECKS)
DEFERRED_MAX_AGE = timedelta(days=3)
TABLE_ROWS = 100  # differences shown as table metadata per check; all are counted


def window_check_spec(spec: EntitySpec, key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        WINDOW_CHECK,
        asset=key,
        blocking=spec.blocking,
        partitions_def=daily_partitions,
        description=(
            f"The {spec.name.replace('_', ' ')} that changed in the partition's window are in "
            "Thred with the same documented values; every difference is listed with its record, "
            "business, money and the ledger's explanation."
        ),
    )


def books_check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            name,
            asset=key,
            description=(
                f"Every {BY_NAME[name].label} of every active business: in Thred, with the same "
                "documented values, and nothing extra or duplicated."
                if name in BY_NAME
                else f"Every {'customer' if name == 'ar_balances' else 'vendor'}'s open "
                "balance and aging in Thred equal the warehouse's; each business's aging total."
            ),
        )
        for name in BOOKS_CHECKS
    ]
    specs.append(
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=key,
            description=(
                "WARN while records are rejected, drifted, uncertain, or deferred for longer "
                f"than {DEFERRED_MAX_AGE.days} days; lists them with their reasons."
            ),
        )
    )
    return specs


def differences_table(frame: pd.DataFrame) -> dg.TableMetadataValue:
    columns = [c for c in frame.columns if c != "check"]
    shown = frame.head(TABLE_ROWS)
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({c: _cell(v) for c, v in row.items() if c in columns})
            for row in shown.to_dict("records")
        ],
        schema=dg.TableSchema(
            columns=[dg.TableColumn(c, "int" if c == "money_cents" else "string") for c in columns]
        ),
    )


def _cell(value: Any) -> str | int:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return value
    return str(value)


def check_result(report: CheckReport, check_name: str) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = dict(report.metrics)
    if not report.differences.empty:
        metadata["differences"] = differences_table(report.differences)
    if report.not_read:
        metadata["businesses_not_read"] = dg.MetadataValue.json(report.not_read)
    severity = (
        dg.AssetCheckSeverity.WARN if report.severity == "WARN" else dg.AssetCheckSeverity.ERROR
    )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=report.passed,
        severity=severity,
        description=report.summary(),
        metadata=metadata,
    )


def books_results(report: BooksReport, ledger: SyncLedger) -> list[dg.AssetCheckResult]:
    return [
        *(check_result(c, c.name) for c in report.checks),
        quarantine_result(ledger),
    ]


def books_metadata(report: BooksReport) -> dict[str, Any]:
    """The night's verdict, money at stake per business, and a markdown report per business."""
    stake = report.money_at_stake()
    metadata: dict[str, Any] = {
        "verdict": report.verdict,
        "differences": len(report.differences),
        "money_at_stake_cents": sum(stake.values()),
        "businesses_with_differences": len(stake),
        "as_of": report.as_of.isoformat(),
        **report.extra,
    }
    if stake:
        metadata["money_at_stake_per_business"] = dg.MetadataValue.json(stake)
        metadata["report"] = dg.MetadataValue.md(
            "\n\n".join(report.markdown(b) for b in sorted(stake))
        )
    return metadata


def quarantine_result(ledger: SyncLedger) -> dg.AssetCheckResult:
    statuses = (Status.REJECTED, Status.DRIFT, Status.DEFERRED, Status.UNKNOWN, Status.PENDING)
    rows = list(ledger.iter_rows(None, statuses=statuses))
    cutoff = datetime.now(UTC) - DEFERRED_MAX_AGE
    flagged = [r for r in rows if r.status is not Status.DEFERRED or r.status_since < cutoff]
    by_reason: dict[str, int] = {}
    for row in flagged:
        key = f"{row.entity}:{row.status.value}:{row.error_code}"
        by_reason[key] = by_reason.get(key, 0) + 1
    metadata: dict[str, Any] = {
        status.value: sum(r.status is status for r in rows) for status in statuses
    }
    metadata["deferred_too_long"] = sum(r.status is Status.DEFERRED for r in flagged)
    if flagged:
        metadata["by_reason"] = dg.MetadataValue.json(by_reason)
        metadata["records"] = dg.MetadataValue.json(
            [
                {
                    "entity": r.entity,
                    "business": r.business_id,
                    "external_id": r.external_id,
                    "status": r.status.value,
                    "code": r.error_code,
                    "reason": r.error_message,
                }
                for r in flagged[:25]
            ]
        )
    return dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(flagged)} records need attention" if flagged else "all clear",
        metadata=metadata,
    )
