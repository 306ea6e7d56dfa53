"""What the sensors read off runs: the tags Dagster and the sync put on them, the statuses that
mean "in progress" or "ended", and the settings the sensors read when they tick."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, timedelta

import dagster as dg

# ``BulkActionStatus`` is not exported by ``dagster``; the version is pinned exactly, and
# sensors/test_catch_up covers the call that uses it.
from dagster._core.execution.backfill import BulkActionStatus

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


def env_int(name: str, default: int, minimum: int = 0) -> int:
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


def partition_label(tags: Mapping[str, str]) -> str | None:
    """The run's partition, or ``start...end`` for a range run (a multi-day backfill run)."""
    return tags.get(PARTITION_TAG) or range_label(tags)


def range_label(tags: Mapping[str, str]) -> str | None:
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}...{end}"
    return None


def partition_days(tags: Mapping[str, str]) -> list[str]:
    """Every day a run covers: its partition, or each day of its range."""
    if tags.get(PARTITION_TAG):
        return [tags[PARTITION_TAG]]
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not (start and end):
        return []
    first, last = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def backfills_in_progress(instance: dg.DagsterInstance) -> list[str]:
    """Backfills still launching runs."""
    return [b.backfill_id for b in instance.get_backfills(status=BulkActionStatus.REQUESTED)]


def previous_finished_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun | None:
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
