"""Sensors: what keeps the sync running without anyone watching the UI.

- ``books_after_nightly_sync``: reconcile the books once after a nightly (or catch-up) batch.
- ``run_failure_alert`` / ``run_recovered_alert`` / ``check_alert``: post to the team's webhook
  (``thred_pipeline.alerts``) once per state change: a job (and partition) that starts failing,
  that succeeds again, a check that starts failing or warning, that passes again.
- ``catch_up_missed_nights``: every night that failed or was missed is requested again, oldest
  first, bounded, each attempt once.
- ``sync_new_businesses``: a business that becomes active (new, or reactivated) is synced within
  minutes instead of waiting for the night.

Settings are environment variables read when a sensor ticks, i.e. in the user-code server's
environment (see README and docs/runbook.md).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import dagster as dg

from thred_pipeline import alerts
from thred_pipeline.assets import AS_OF_TAG, FRESHNESS_CHECKS, asset_key
from thred_pipeline.entities import sync_order
from thred_pipeline.jobs import (
    BUSINESS_TAG,
    nightly_sync_job,
    reconcile_books_job,
    sync_businesses_now,
)
from thred_pipeline.partitions import PARTITION_START
from thred_pipeline.resources import LedgerResource, WarehouseResource
from thred_pipeline.schedules import SCHEDULE_HOUR, SCHEDULE_MINUTE, SENSOR_STATUS

BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
WILL_RETRY_TAG = "dagster/will_retry"
TRIGGER_TAG = "thred/trigger"  # who requested a run: "catch-up", "onboard"

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _partition_label(tags: Mapping[str, str]) -> str | None:
    """The run's partition, or ``start...end`` for a range run (a multi-day backfill run)."""
    return tags.get(PARTITION_TAG) or _range_label(tags)


def _range_label(tags: Mapping[str, str]) -> str | None:
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


# --- the books after a nightly batch -----------------------------------------------------------


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[nightly_sync_job],
    request_job=reconcile_books_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After a nightly sync run succeeds, reconcile the whole books once, as of the end of "
        "the window it synced. Backfill runs are skipped, and so is a run that other nightly "
        "runs (catch-up) follow in the queue: the books are compared once, after the last one."
    ),
)
def books_after_nightly_sync(
    context: dg.RunStatusSensorContext,
) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    if run.tags.get(BACKFILL_TAG):
        return dg.SkipReason(f"run {run.run_id} is part of backfill {run.tags[BACKFILL_TAG]}")
    pending = [
        r.run_id
        for r in context.instance.get_runs(
            filters=dg.RunsFilter(job_name=run.job_name, statuses=IN_PROGRESS), limit=5
        )
        if r.run_id != run.run_id
    ]
    if pending:
        return dg.SkipReason(
            f"run {run.run_id} is followed by {len(pending)} more nightly run(s) "
            f"({', '.join(pending)}): the books are reconciled after the last one"
        )
    tags: dict[str, str] = {}
    partition = run.tags.get(PARTITION_TAG)
    if partition:
        end = datetime.fromisoformat(partition) + timedelta(days=1)
        tags[AS_OF_TAG] = end.replace(tzinfo=None).isoformat() + "+00:00"
    return dg.RunRequest(run_key=run.run_id, tags=tags)


# --- alerts: runs ------------------------------------------------------------------------------


def _previous_finished_run(
    instance: dg.DagsterInstance, run: dg.DagsterRun
) -> dg.DagsterRun | None:
    """The last finished run of the same job and partition (or range) created before ``run``."""
    keys = (PARTITION_TAG,) if run.tags.get(PARTITION_TAG) else (RANGE_START_TAG, RANGE_END_TAG)
    tags = {k: run.tags[k] for k in keys if run.tags.get(k)}
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=run.job_name, tags=tags, statuses=FINISHED), limit=20
    )
    mine = instance.get_run_record_by_id(run.run_id)
    created = mine.create_timestamp if mine else None
    for record in records:  # newest first
        other = record.dagster_run
        if other.run_id == run.run_id:
            continue
        if created is not None and record.create_timestamp > created:
            continue
        return other
    return None


def _first_error(context: dg.RunFailureSensorContext) -> str:
    """The first failed step and the error that started it (Dagster wraps it in its own)."""
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return f"{event.step_key}: {error.message.strip()}"
    return (context.failure_event.message or "").strip()


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts to THRED_ALERT_WEBHOOK_URL when a run of this code location fails: job, "
        "partition, the first error (secrets redacted) and a link to the run. Once per state "
        "change: a failure after a failed run of the same job and partition (a retry, a "
        "catch-up attempt) is not posted again; run_recovered_alert posts when it succeeds."
    ),
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
    settings = alerts.AlertSettings.from_env()
    run = context.dagster_run
    if not settings.webhook_url:
        return dg.SkipReason(f"{alerts.WEBHOOK_ENV} is not set: no alert for run {run.run_id}")
    previous = _previous_finished_run(context.instance, run)
    if previous is not None and previous.status == dg.DagsterRunStatus.FAILURE:
        context.log.info(
            f"run {run.run_id} failed after failed run {previous.run_id}: already alerted"
        )
        return None
    alert = alerts.RunAlert(
        kind="failed",
        run_id=run.run_id,
        job=run.job_name,
        partition=_partition_label(run.tags),
        detail=_first_error(context),
        will_retry=run.tags.get(WILL_RETRY_TAG) == "true",
    )
    alerts.post(alerts.run_message(alert, settings), settings)
    context.log.info(f"alerted: run {run.run_id} of {run.job_name} failed")
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts to THRED_ALERT_WEBHOOK_URL when a job (and partition) succeeds after its "
        "previous run failed: the failure alert's 'recovered'."
    ),
)
def run_recovered_alert(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
    settings = alerts.AlertSettings.from_env()
    run = context.dagster_run
    if not settings.webhook_url:
        return dg.SkipReason(f"{alerts.WEBHOOK_ENV} is not set: no alert for run {run.run_id}")
    previous = _previous_finished_run(context.instance, run)
    if previous is None or previous.status != dg.DagsterRunStatus.FAILURE:
        return None
    alert = alerts.RunAlert(
        kind="recovered",
        run_id=run.run_id,
        job=run.job_name,
        partition=_partition_label(run.tags),
        previous_run_id=previous.run_id,
    )
    alerts.post(alerts.run_message(alert, settings), settings)
    context.log.info(f"alerted: {run.job_name} recovered with run {run.run_id}")
    return None


# --- alerts: checks ----------------------------------------------------------------------------

MAX_RUNS_PER_TICK = 200  # ended runs read per tick
MAX_RUNS_PER_MESSAGE = 10  # runs with changes per message (Slack: 50 blocks)
MAX_REMEMBERED = 20_000  # failing (check, partition) states kept in the cursor


@dataclass
class CheckAlertCursor:
    """The last run end read (a run's check results are read once it has ended), and every
    (check, partition) currently failing.

    A state not in ``failing`` is passing (or never seen), so the cursor only grows with what
    is broken; the oldest entries are dropped beyond ``MAX_REMEMBERED``.
    """

    after: int  # storage id of the last run-end event read
    failing: dict[str, str] = field(default_factory=dict)  # state key -> "ERROR" | "WARN"

    def to_json(self) -> str:
        return json.dumps({"after": self.after, "failing": self.failing}, sort_keys=False)

    @classmethod
    def from_json(cls, raw: str) -> CheckAlertCursor:
        data = json.loads(raw)
        return cls(after=int(data["after"]), failing=dict(data.get("failing", {})))


def _state_key(asset: str, check: str, partition: str | None) -> str:
    return f"{asset}|{check}|{partition or ''}"


RunEnd = Literal[
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
]
RUN_ENDS: tuple[RunEnd, ...] = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)


def _latest_run_end(instance: dg.DagsterInstance) -> int:
    latest = -1
    for event_type in RUN_ENDS:
        records = instance.fetch_run_status_changes(records_filter=event_type, limit=1).records
        if records:
            latest = max(latest, records[0].storage_id)
    return latest


def _run_ends_after(instance: dg.DagsterInstance, after: int) -> list[tuple[int, str]]:
    """(storage id, run id) of runs that ended after ``after``, in order.

    Run status changes are indexed globally on every storage (run-sharded SQLite included),
    unlike check evaluations; a run's evaluations are read once it has ended, all of them.
    """
    found: list[tuple[int, str]] = []
    cutoff: int | None = None
    for event_type in RUN_ENDS:
        records = instance.fetch_run_status_changes(
            records_filter=dg.RunStatusChangeRecordsFilter(
                event_type=event_type, after_storage_id=after
            ),
            limit=MAX_RUNS_PER_TICK,
            ascending=True,
        ).records
        found.extend((r.storage_id, r.event_log_entry.run_id) for r in records)
        if len(records) == MAX_RUNS_PER_TICK:  # more of this type after the last one read
            last = records[-1].storage_id
            cutoff = last if cutoff is None else min(cutoff, last)
    found.sort()
    return [f for f in found if cutoff is None or f[0] <= cutoff]


def collect_check_changes(
    instance: dg.DagsterInstance, cursor: CheckAlertCursor
) -> tuple[list[alerts.RunChecks], CheckAlertCursor]:
    """The check state changes of the runs that ended after the cursor, grouped by run."""
    failing = dict(cursor.failing)
    after = cursor.after
    groups: list[alerts.RunChecks] = []
    for storage_id, run_id in _run_ends_after(instance, cursor.after):
        if len(groups) >= MAX_RUNS_PER_MESSAGE:
            break  # the next tick continues from here
        after = storage_id
        run = instance.get_run_by_id(run_id)
        tags = run.tags if run else {}
        group = alerts.RunChecks(
            run_id=run_id,
            job=run.job_name if run else "",
            partition=_partition_label(tags),
            changes=[],
        )
        entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        for entry in entries:
            evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue
            if evaluation.asset_key.path[0] != "thred":
                continue
            # A partitioned check names its partition, except in a range run (it then covers
            # the range); an unpartitioned one (books, freshness) has one state for all runs.
            partition = evaluation.partition or _range_label(tags)
            change = _apply(evaluation, partition, failing)
            if change is not None:
                if group.partition is None and change.partition:
                    group = replace(group, partition=change.partition)
                group = replace(group, changes=[*group.changes, change])
        if group.changes:
            groups.append(group)
    while len(failing) > MAX_REMEMBERED:
        failing.pop(next(iter(failing)))
    return groups, CheckAlertCursor(after=after, failing=failing)


def _apply(
    evaluation: dg.AssetCheckEvaluation, partition: str | None, failing: dict[str, str]
) -> alerts.CheckChange | None:
    """Record the evaluation's state in ``failing``; the change, if its state changed."""
    asset = evaluation.asset_key.to_user_string()
    key = _state_key(asset, evaluation.check_name, partition)
    state = "PASSED" if evaluation.passed else evaluation.severity.value
    previous = failing.get(key, "PASSED")
    if state == previous:
        return None
    failing.pop(key, None)
    if state != "PASSED":
        failing[key] = state  # newest last: the oldest are dropped first
    stake = evaluation.metadata.get("money_at_stake_cents")
    return alerts.CheckChange(
        asset=asset,
        check=evaluation.check_name,
        partition=partition,
        state=state,
        previous=previous,
        description=evaluation.description or "",
        money_at_stake_cents=(
            stake.value if isinstance(stake, dg.IntMetadataValue) and state != "PASSED" else None
        ),
    )


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts to THRED_ALERT_WEBHOOK_URL when a check of the sync changes state: a window or "
        "books check (or a freshness check) starts failing (ERROR) or warning (WARN), escalates, "
        "or passes again ('recovered'), per partition. A check that stays failing night after "
        "night is posted once. One message per tick: per run, the job, partition, checks, money "
        "at stake and a link to the run."
    ),
)
def check_alert(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    settings = alerts.AlertSettings.from_env()
    if not settings.webhook_url:
        return dg.SkipReason(f"{alerts.WEBHOOK_ENV} is not set: check results are not posted")
    if context.cursor is None:
        start = CheckAlertCursor(after=_latest_run_end(context.instance))
        return dg.SensorResult(
            skip_reason=dg.SkipReason("started: alerts on check results from now on"),
            cursor=start.to_json(),
        )
    cursor = CheckAlertCursor.from_json(context.cursor)
    groups, new_cursor = collect_check_changes(context.instance, cursor)
    if groups:
        # Raises when the webhook refuses: the cursor stays, the next tick posts it again.
        alerts.post(alerts.check_message(groups, settings), settings)
        changes = sum(len(g.changes) for g in groups)
        context.log.info(f"posted {changes} check state change(s) of {len(groups)} run(s)")
        return dg.SensorResult(cursor=new_cursor.to_json())
    if new_cursor.after == cursor.after:
        return dg.SkipReason("no new check results")
    return dg.SensorResult(
        skip_reason=dg.SkipReason("no check changed state"), cursor=new_cursor.to_json()
    )


# --- catch-up ----------------------------------------------------------------------------------

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
            max_runs=_env_int("THRED_CATCH_UP_MAX_RUNS", 7),
            days=_env_int("THRED_CATCH_UP_DAYS", 31, minimum=1),
            attempts=_env_int("THRED_CATCH_UP_ATTEMPTS", 2, minimum=1),
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
        busy.update(_expand(run.tags))
    return busy


def _expand(tags: Mapping[str, str]) -> list[str]:
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not (start and end):
        return []
    first, last = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _backfills_in_progress(instance: dg.DagsterInstance) -> list[str]:
    """Backfills still launching runs (``BulkActionStatus`` is not exported by ``dagster``; the
    version is pinned exactly, and test_catch_up covers this call)."""
    from dagster._core.execution.backfill import BulkActionStatus

    return [b.backfill_id for b in instance.get_backfills(status=BulkActionStatus.REQUESTED)]


def plan_catch_up(
    instance: dg.DagsterInstance, now: datetime, settings: CatchUpSettings
) -> CatchUpPlan:
    """Every night since the first one ever synced (within ``settings.days``) that has no
    successful sync, no run in progress and attempts left: oldest first, at most
    ``settings.max_runs``. Run keys name the night and the attempt, so a night is requested
    once per attempt, however often the sensor ticks."""
    plan = CatchUpPlan()
    if settings.max_runs == 0:
        plan.reason = "catch-up is off (THRED_CATCH_UP_MAX_RUNS=0)"
        return plan
    backfills = _backfills_in_progress(instance)
    if backfills:
        plan.reason = f"backfill {', '.join(backfills)} in progress: catch-up waits for it"
        return plan
    done = synced_partitions(instance)
    if not done:
        plan.reason = "no night synced yet: start with a backfill from the UI"
        return plan
    last = last_due_partition(now)
    first = max(
        date.fromisoformat(min(done)),
        last - timedelta(days=settings.days - 1),
        date.fromisoformat(PARTITION_START),
    )
    nights = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    plan.missing = [n for n in nights if n not in done]
    if not plan.missing:
        return plan
    busy = _partitions_in_progress(instance)
    attempts: dict[str, int] = {}
    for run in instance.get_runs(
        filters=dg.RunsFilter(job_name=nightly_sync_job.name, tags={TRIGGER_TAG: "catch-up"}),
        limit=1000,
    ):
        key = run.tags.get(PARTITION_TAG)
        if key and run.status in FINISHED:
            attempts[key] = attempts.get(key, 0) + 1
    for night in plan.missing:
        if night in busy:
            plan.in_progress.append(night)
        elif attempts.get(night, 0) >= settings.attempts:
            plan.given_up.append(night)
        elif len(plan.requests) < settings.max_runs:
            attempt = attempts.get(night, 0)
            plan.requests.append(
                dg.RunRequest(
                    run_key=f"catch-up:{night}:{attempt}",
                    partition_key=night,
                    tags={TRIGGER_TAG: "catch-up", "thred/attempt": str(attempt + 1)},
                )
            )
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


# --- new and reactivated businesses ------------------------------------------------------------


@dataclass
class OnboardCursor:
    """The businesses seen inactive (to notice one turning active again), and the reactivated
    ones still to request."""

    inactive: list[str] = field(default_factory=list)
    reactivated: dict[str, str] = field(default_factory=dict)  # business -> noticed at (ISO)

    def to_json(self) -> str:
        return json.dumps({"inactive": self.inactive, "reactivated": self.reactivated})

    @classmethod
    def from_json(cls, raw: str | None) -> OnboardCursor | None:
        if not raw:
            return None
        data = json.loads(raw)
        return cls(inactive=list(data["inactive"]), reactivated=dict(data["reactivated"]))


@dataclass
class OnboardPlan:
    requests: list[dg.RunRequest] = field(default_factory=list)
    cursor: OnboardCursor = field(default_factory=OnboardCursor)
    notes: list[str] = field(default_factory=list)


def _onboard_runs(instance: dg.DagsterInstance, business: str) -> tuple[int, bool]:
    """(finished onboarding runs of the business, one in progress?)"""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=sync_businesses_now.name, tags={BUSINESS_TAG: business}),
        limit=50,
    )
    finished = sum(r.status in FINISHED for r in runs)
    return finished, any(r.status in IN_PROGRESS for r in runs)


def _onboard_request(business: str, run_key: str, why: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"sync_businesses": {"config": {"business_ids": [business]}}}},
        tags={BUSINESS_TAG: business, TRIGGER_TAG: "onboard", "thred/reason": why},
    )


def plan_onboarding(
    instance: dg.DagsterInstance,
    active: Sequence[str],
    inactive: Sequence[str],
    in_thred: Iterable[str],
    previous: OnboardCursor | None,
    *,
    now: datetime,
    max_runs: int,
    attempts: int,
) -> OnboardPlan:
    """New: active and not in Thred per the ledger (attempts bounded, each attempt once).
    Reactivated: inactive at the previous tick, active now (requested once, from the cursor)."""
    active_set = set(active)
    plan = OnboardPlan(cursor=OnboardCursor(inactive=sorted(inactive)))
    if previous is None:
        plan.notes.append(f"started: {len(inactive)} inactive business(es) remembered")
        return plan
    reactivated = dict(previous.reactivated)
    for business in sorted(set(previous.inactive) & active_set):
        reactivated.setdefault(business, now.isoformat(timespec="seconds"))
    synced = set(in_thred)
    new = [b for b in sorted(active_set - synced) if b not in reactivated]
    for business, noticed in sorted(reactivated.items()):
        if business not in active_set:
            continue  # inactive again before its sync was requested
        if len(plan.requests) >= max_runs:
            plan.cursor.reactivated[business] = noticed
            continue
        plan.requests.append(
            _onboard_request(business, f"onboard:{business}:reactivated:{noticed}", "reactivated")
        )
    for business in new:
        finished, running = _onboard_runs(instance, business)
        if running:
            plan.notes.append(f"{business}: sync in progress")
            continue
        if finished >= attempts:
            plan.notes.append(
                f"{business}: still not in Thred after {finished} run(s); see the quarantine"
            )
            continue
        if len(plan.requests) >= max_runs:
            plan.notes.append(f"{business}: waits for the next tick")
            continue
        plan.requests.append(_onboard_request(business, f"onboard:{business}:{finished}", "new"))
    return plan


@dg.sensor(
    job=sync_businesses_now,
    minimum_interval_seconds=5 * 60,
    default_status=SENSOR_STATUS,
    description=(
        "Syncs a business as soon as it is active in the warehouse and not yet in Thred (new), "
        "or turns active again (reactivated: its changes while inactive were never sent), "
        "instead of waiting for the night: one sync_businesses_now run per business, every "
        "record of it whatever its updated_at (the nightly partitions only cover the day's "
        "changes, and today's day is not a partition until midnight). Cheap per tick: the ids "
        "of the businesses table and one ledger lookup. THRED_ONBOARD_MAX_RUNS (5; 0 turns it "
        "off) runs per tick, THRED_ONBOARD_ATTEMPTS (2) per business. Waits while the ledger "
        "holds no business yet (the first load is a backfill) and while a backfill runs."
    ),
)
def sync_new_businesses(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    ledger: LedgerResource,
) -> dg.SensorResult:
    max_runs = _env_int("THRED_ONBOARD_MAX_RUNS", 5)
    attempts = _env_int("THRED_ONBOARD_ATTEMPTS", 2, minimum=1)
    if max_runs == 0:
        return dg.SensorResult(skip_reason=dg.SkipReason("off (THRED_ONBOARD_MAX_RUNS=0)"))
    source = warehouse.warehouse()
    active = source.active_business_ids()
    inactive = source.inactive_business_ids()
    known = ledger.ledger().thred_ids("businesses", active)
    previous = OnboardCursor.from_json(context.cursor)
    backfills = _backfills_in_progress(context.instance)
    if not known or backfills:
        why = (
            "the ledger holds no business yet: the first load is a backfill"
            if not known
            else f"backfill {', '.join(backfills)} in progress"
        )
        # Keep remembering who is inactive, so a reactivation during the wait is not lost.
        cursor = OnboardCursor(
            inactive=sorted(inactive), reactivated=previous.reactivated if previous else {}
        )
        return dg.SensorResult(skip_reason=dg.SkipReason(why), cursor=cursor.to_json())
    plan = plan_onboarding(
        context.instance,
        active,
        inactive,
        known,
        previous,
        now=datetime.now(UTC),
        max_runs=max_runs,
        attempts=attempts,
    )
    for note in plan.notes:
        context.log.info(note)
    if not plan.requests:
        reason = "; ".join(plan.notes) or "no new or reactivated business"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=plan.cursor.to_json())
    return dg.SensorResult(run_requests=plan.requests, cursor=plan.cursor.to_json())


# Dagster's own sensor factory passes `owners` (a beta parameter) when the code location loads.
warnings.filterwarnings(
    "ignore", r"Parameter `owners` of initializer `SensorDefinition", dg.BetaWarning
)
with warnings.catch_warnings():  # "superseded" by FreshnessPolicy: see assets.FRESHNESS_CHECKS
    warnings.simplefilter("ignore")
    freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
        freshness_checks=FRESHNESS_CHECKS,
        name="freshness_checks_sensor",
        minimum_interval_seconds=5 * 60,
        default_status=SENSOR_STATUS,
    )

ALL_SENSORS = [
    books_after_nightly_sync,
    run_failure_alert,
    run_recovered_alert,
    check_alert,
    catch_up_missed_nights,
    sync_new_businesses,
    freshness_checks_sensor,
]
