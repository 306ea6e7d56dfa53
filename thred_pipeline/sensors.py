"""Sensors: reconcile the books once after each nightly sync (not once per backfilled day)."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from thred_pipeline.assets import AS_OF_TAG
from thred_pipeline.jobs import nightly_sync_job, reconcile_books_job

BACKFILL_TAG = "dagster/backfill"
PARTITION_TAG = "dagster/partition"


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[nightly_sync_job],
    request_job=reconcile_books_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "After a nightly sync run succeeds, reconcile the whole books once, as of the end of "
        "the window it synced. Backfill runs are skipped: launch reconcile_books when the "
        "backfill is done (one comparison instead of one per day)."
    ),
)
def books_after_nightly_sync(
    context: dg.RunStatusSensorContext,
) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    if run.tags.get(BACKFILL_TAG):
        return dg.SkipReason(f"run {run.run_id} is part of backfill {run.tags[BACKFILL_TAG]}")
    tags: dict[str, str] = {}
    partition = run.tags.get(PARTITION_TAG)
    if partition:
        end = datetime.fromisoformat(partition) + timedelta(days=1)
        tags[AS_OF_TAG] = end.replace(tzinfo=None).isoformat() + "+00:00"
    return dg.RunRequest(run_key=run.run_id, tags=tags)
