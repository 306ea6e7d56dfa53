"""Alerts on runs: a job (and partition) that starts failing, and that succeeds again.

Posted once per state change: the previous finished run of the same job and partition decides
whether a failure is news (a retry or a catch-up attempt that fails again is not).
"""

from __future__ import annotations

from typing import Literal

import dagster as dg

from thred_pipeline import alerts
from thred_pipeline.sensors.runs import WILL_RETRY_TAG, partition_label, previous_finished_run


def _post_state_change(
    context: dg.RunStatusSensorContext, kind: Literal["failed", "recovered"]
) -> dg.SkipReason | None:
    """Post ``kind`` when it changes the state of the run's job (and partition): a failure
    after a run that did not fail, a success after one that failed."""
    settings = alerts.AlertSettings.from_env()
    run = context.dagster_run
    if not settings.webhook_url:
        return dg.SkipReason(f"{alerts.WEBHOOK_ENV} is not set: no alert for run {run.run_id}")
    previous = previous_finished_run(context.instance, run)
    failed_before = previous is not None and previous.status == dg.DagsterRunStatus.FAILURE
    failed = previous if failed_before else None
    if kind == "failed" and failed is not None:
        context.log.info(
            f"run {run.run_id} failed after failed run {failed.run_id}: already alerted"
        )
        return None
    if kind == "recovered" and failed is None:
        return None
    alert = alerts.RunAlert(
        kind=kind,
        run_id=run.run_id,
        job=run.job_name,
        partition=partition_label(run.tags),
        detail=_first_error(context) if isinstance(context, dg.RunFailureSensorContext) else "",
        previous_run_id=failed.run_id if failed is not None else None,
        will_retry=kind == "failed" and run.tags.get(WILL_RETRY_TAG) == "true",
    )
    alerts.post(alerts.run_message(alert, settings), settings)
    if kind == "failed":
        context.log.info(f"alerted: run {run.run_id} of {run.job_name} failed")
    else:
        context.log.info(f"alerted: {run.job_name} recovered with run {run.run_id}")
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
    return _post_state_change(context, "failed")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts to THRED_ALERT_WEBHOOK_URL when a job (and partition) succeeds after its "
        "previous run failed: the failure alert's 'recovered'."
    ),
)
def run_recovered_alert(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
    return _post_state_change(context, "recovered")
