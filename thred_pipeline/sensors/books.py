"""The books after a nightly batch: reconciled once, after the last nightly run of a batch."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from thred_pipeline.assets import AS_OF_TAG
from thred_pipeline.jobs import nightly_sync_job, reconcile_books_job
from thred_pipeline.sensors.runs import BACKFILL_TAG, IN_PROGRESS, PARTITION_TAG


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
