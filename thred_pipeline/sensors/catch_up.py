"""Catch-up: every night that failed or was missed is requested again, oldest first, bounded,
each attempt once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from thred_pipeline.assets import asset_key
from thred_pipeline.entities import sync_order
from thred_pipeline.jobs import nightly_sync_job
from thred_pipeline.partitions import PARTITION_START
from thred_pipeline.schedules import SCHEDULE_HOUR, SCHEDULE_MINUTE, SENSOR_STATUS
from thred_pipeline.sensors.runs import (
    FINISHED,
    IN_PROGRESS,
    PARTITION_TAG,
    TRIGGER_TAG,
    backfills_in_progress,
    env_int,
    partition_days,
)

CATCH_UP_GRACE = timedelta(minutes=45)  # after the schedule's tick, before a night is "missed"


@dataclass(frozen=True)
class CatchUpSettings:
    """``THRED_CATCH_UP_MAX_RUNS`` (7; 0 turns catch-up off): runs requested per tick.
    ``THRED_CATCH_UP_DAYS`` (31): how far back a missing night is still caught up.
    ``THRED_CATCH_UP_ATTEMPTS`` (2): catch-up runs per night before it is left to a person
    (the failure was alerted; a backfill from the UI retries it)."""

    max_runs: int = 7
    days: int = 31
    attempts: int = 2

    @classmethod
    def from_env(cls) -> CatchUpSettings:
        return cls(
            max_runs=env_int("THRED_CATCH_UP_MAX_RUNS", 7),
            days=env_int("THRED_CATCH_UP_DAYS", 31, minimum=1),
            attempts=env_int("THRED_CATCH_UP_ATTEMPTS", 2, minimum=1),
        )


@dataclass
class CatchUpPlan:
    requests: list[dg.RunRequest] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # not synced, oldest first
    in_progress: list[str] = field(default_factory=list)
    given_up: list[str] = field(default_factory=list)
    reason: str = ""

    def summary(self) -> str:
        parts = [self.reason] if self.reason else []
        if self.missing:
            parts.append(f"{len(self.missing)} night(s) not synced ({_span(self.missing)})")
        if self.in_progress:
            parts.append(f"in progress: {_span(self.in_progress)}")
        if self.given_up:
            parts.append(f"left to a person after the attempts allowed: {', '.join(self.given_up)}")
        return "; ".join(parts) or "every night is synced"


def _span(keys: Sequence[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{keys[0]} .. {keys[-1]}"


def last_due_partition(now: datetime) -> date:
    """The newest night whose scheduled run should have started by ``now`` (plus a grace)."""
    tick_offset = timedelta(hours=SCHEDULE_HOUR, minutes=SCHEDULE_MINUTE) + CATCH_UP_GRACE
    return (now.astimezone(UTC) - tick_offset).date() - timedelta(days=1)


def synced_partitions(instance: dg.DagsterInstance) -> set[str]:
    """Partitions every push asset has materialized (a blocked chain is not synced)."""
    done: set[str] | None = None
    for spec in sync_order():
        keys = instance.get_materialized_partitions(asset_key(spec))
        done = keys if done is None else done & keys
    return done or set()


def _partitions_in_progress(instance: dg.DagsterInstance) -> set[str]:
    busy: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        busy.update(partition_days(run.tags))
    return busy


def _due_nights(done: set[str], now: datetime, settings: CatchUpSettings) -> list[str]:
    """Every night from the first one synced (within ``settings.days``) to the last one due."""
    last = last_due_partition(now)
    first = max(
        date.fromisoformat(min(done)),
        last - timedelta(days=settings.days - 1),
        date.fromisoformat(PARTITION_START),
    )
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _catch_up_attempts(instance: dg.DagsterInstance) -> dict[str, int]:
    """Finished catch-up runs per night."""
    attempts: dict[str, int] = {}
    for run in instance.get_runs(
        filters=dg.RunsFilter(job_name=nightly_sync_job.name, tags={TRIGGER_TAG: "catch-up"}),
        limit=1000,
    ):
        key = run.tags.get(PARTITION_TAG)
        if key and run.status in FINISHED:
            attempts[key] = attempts.get(key, 0) + 1
    return attempts


def _request(night: str, attempt: int) -> dg.RunRequest:
    """The run key names the night and the attempt: requested once however often it ticks."""
    return dg.RunRequest(
        run_key=f"catch-up:{night}:{attempt}",
        partition_key=night,
        tags={TRIGGER_TAG: "catch-up", "thred/attempt": str(attempt + 1)},
    )


def plan_catch_up(
    instance: dg.DagsterInstance, now: datetime, settings: CatchUpSettings
) -> CatchUpPlan:
    """Every night since the first one ever synced (within ``settings.days``) that has no
    successful sync, no run in progress and attempts left: oldest first, at most
    ``settings.max_runs``."""
    plan = CatchUpPlan()
    if settings.max_runs == 0:
        plan.reason = "catch-up is off (THRED_CATCH_UP_MAX_RUNS=0)"
        return plan
    backfills = backfills_in_progress(instance)
    if backfills:
        plan.reason = f"backfill {', '.join(backfills)} in progress: catch-up waits for it"
        return plan
    done = synced_partitions(instance)
    if not done:
        plan.reason = "no night synced yet: start with a backfill from the UI"
        return plan
    plan.missing = [n for n in _due_nights(done, now, settings) if n not in done]
    if not plan.missing:
        return plan
    busy = _partitions_in_progress(instance)
    attempts = _catch_up_attempts(instance)
    for night in plan.missing:
        if night in busy:
            plan.in_progress.append(night)
        elif attempts.get(night, 0) >= settings.attempts:
            plan.given_up.append(night)
        elif len(plan.requests) < settings.max_runs:
            plan.requests.append(_request(night, attempts.get(night, 0)))
    return plan


@dg.sensor(
    job=nightly_sync_job,
    minimum_interval_seconds=30 * 60,
    default_status=SENSOR_STATUS,
    description=(
        "Catch-up: every night (daily partition) since the first one synced that has no "
        "successful sync — the run failed, was blocked by a check, or never ran (daemon down) — "
        "is requested again, oldest first, at most THRED_CATCH_UP_MAX_RUNS (7) per tick, within "
        "THRED_CATCH_UP_DAYS (31), THRED_CATCH_UP_ATTEMPTS (2) times per night. Nights with a "
        "run in progress, and every tick while a UI backfill runs, are left alone."
    ),
)
def catch_up_missed_nights(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    plan = plan_catch_up(context.instance, datetime.now(UTC), CatchUpSettings.from_env())
    if not plan.requests:
        return dg.SensorResult(skip_reason=dg.SkipReason(plan.summary()))
    context.log.info(
        f"requesting {', '.join(r.partition_key or '' for r in plan.requests)}; {plan.summary()}"
    )
    return dg.SensorResult(run_requests=plan.requests)
