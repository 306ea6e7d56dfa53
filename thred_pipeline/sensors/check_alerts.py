"""Alerts on checks: a check of the sync that starts failing or warning, escalates, or passes
again, per partition, read from the runs that ended since the last tick.

The cursor remembers every (check, partition) currently failing, so a check that stays failing
night after night is posted once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Literal

import dagster as dg

from thred_pipeline import alerts
from thred_pipeline.sensors.runs import partition_label, range_label

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
        group = _run_checks(instance, run_id, failing)
        if group.changes:
            groups.append(group)
    while len(failing) > MAX_REMEMBERED:
        failing.pop(next(iter(failing)))
    return groups, CheckAlertCursor(after=after, failing=failing)


def _run_checks(
    instance: dg.DagsterInstance, run_id: str, failing: dict[str, str]
) -> alerts.RunChecks:
    """The state changes of one ended run's checks of the sync (``failing`` is updated)."""
    run = instance.get_run_by_id(run_id)
    tags = run.tags if run else {}
    group = alerts.RunChecks(
        run_id=run_id,
        job=run.job_name if run else "",
        partition=partition_label(tags),
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
        partition = evaluation.partition or range_label(tags)
        change = _apply(evaluation, partition, failing)
        if change is not None:
            if group.partition is None and change.partition:
                group = replace(group, partition=change.partition)
            group = replace(group, changes=[*group.changes, change])
    return group


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
