"""Running the real assets in tests: fast retry delays, resources, and what a run said.

The assets are rebuilt by the production factory (``assets.build_push_asset``) with the same
RetryPolicy shape (3 retries, exponential, jitter) but sub-second delays, so a test exercises
Dagster's retry of uncertain steps without waiting 5 + 10 + 20 seconds each time.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pydantic import SecretStr

from thred_pipeline import assets
from thred_pipeline.entities import sync_order
from thred_pipeline.resources import (
    LedgerResource,
    ReconcileResource,
    SyncResource,
    ThredResource,
    WarehouseResource,
)
from thred_pipeline.thred.settings import ThredSettings

FAST_RETRY = dg.RetryPolicy(
    max_retries=3, delay=0.3, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def fast_retry_assets() -> list[dg.AssetsDefinition]:
    """The production push assets, with sub-second RetryPolicy delays."""
    production = assets.TRANSIENT_RETRY
    assets.TRANSIENT_RETRY = FAST_RETRY
    try:
        return [assets.build_push_asset(spec) for spec in sync_order()]
    finally:
        assets.TRANSIENT_RETRY = production


class TunedThredResource(ThredResource):
    """``ThredResource`` with the client's retry knobs exposed (they exist on ThredSettings)."""

    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_budget_s: float = 300.0

    def settings(self) -> ThredSettings:
        return ThredSettings(
            base_url=self.base_url,
            partner_id=self.partner_id,
            api_key=SecretStr(self.api_key),
            timeout_s=self.timeout_s,
            allow_insecure_tls=self.allow_insecure_tls,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_max_s=self.backoff_max_s,
            retry_budget_s=self.retry_budget_s,
        )


def resources(
    warehouse_url: str, ledger_url: str, thred: ThredResource, lookback_hours: float = 0
) -> dict[str, Any]:
    return {
        "warehouse": WarehouseResource(url=warehouse_url),
        "ledger": LedgerResource(url=ledger_url),
        "thred": thred,
        "sync": SyncResource(lookback_hours=lookback_hours),
        "reconcile": ReconcileResource(),  # the books asset's severity policy (the default)
    }


@dataclass(frozen=True)
class CheckSeen:
    """One asset check evaluation of a run, with the differences its table metadata lists."""

    asset: str
    name: str
    passed: bool
    severity: str  # "ERROR" / "WARN" (Dagster's severity; meaningful when not passed)
    description: str
    differences: tuple[dict[str, Any], ...]

    @property
    def failed_error(self) -> bool:
        return not self.passed and self.severity == "ERROR"


@dataclass
class RunSummary:
    """What one run reported, in the numbers the reliability figures are made of."""

    partition: str
    success: bool
    outcomes: Counter[str] = field(default_factory=Counter)
    retried_steps: int = 0
    failed_steps: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)  # failed with severity ERROR
    checks_passed: int = 0
    warnings_failed: list[str] = field(default_factory=list)  # failed with severity WARN
    checks: list[CheckSeen] = field(default_factory=list)


def _differences(metadata: Any) -> tuple[dict[str, Any], ...]:
    table = metadata.get("differences")
    if not isinstance(table, dg.TableMetadataValue):
        return ()
    return tuple(dict(record.data) for record in table.records)


def summarize(partition: str, result: dg.ExecuteInProcessResult) -> RunSummary:
    out = RunSummary(partition, result.success)
    for event in result.all_events:
        if event.event_type_value == "STEP_UP_FOR_RETRY":
            out.retried_steps += 1
        elif event.event_type_value == "STEP_FAILURE":
            out.failed_steps.append(str(event.step_key))
    for event in result.get_asset_materialization_events():
        metadata = event.event_specific_data.materialization.metadata  # type: ignore[union-attr]
        for key in ("created", "updated", "unchanged", "deferred", "rejected", "unknown"):
            if key in metadata:
                out.outcomes[key] += int(metadata[key].value)  # type: ignore[arg-type]
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.path[-1]}.{evaluation.check_name}: {evaluation.description}"
        severity = "WARN" if evaluation.severity == dg.AssetCheckSeverity.WARN else "ERROR"
        out.checks.append(
            CheckSeen(
                asset=evaluation.asset_key.path[-1],
                name=evaluation.check_name,
                passed=evaluation.passed,
                severity=severity,
                description=evaluation.description or "",
                differences=_differences(evaluation.metadata),
            )
        )
        if evaluation.passed:
            out.checks_passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            out.warnings_failed.append(name)
        else:
            out.checks_failed.append(name)
    return out


class CountingHandler(logging.Handler):
    """Counts the client's retry and give-up log lines (its stats die with each client).

    They are WARNING lines; the logger is not lowered further, so the per-request DEBUG lines
    are neither built nor captured (that costs CPU a loaded machine does not have).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("thred retry:"):
            self.counts["retries"] += 1
            reason = message.rsplit("reason=", 1)[-1]
            self.counts[f"retry:{reason.split(',')[0].split(':')[0]}"] += 1
        elif message.startswith("thred giving up:"):
            self.counts["gave_up"] += 1
        elif "renewing the" in message:
            self.counts["token_renewals"] += 1


@contextmanager
def counting_client_logs() -> Iterator[CountingHandler]:
    handler = CountingHandler()
    logger = logging.getLogger("thred_pipeline.thred")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
