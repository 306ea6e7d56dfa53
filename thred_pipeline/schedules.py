"""The nightly schedule: at 02:15 UTC, sync yesterday's (the last complete) partition."""

from __future__ import annotations

import dagster as dg

from thred_pipeline.jobs import nightly_sync_job

nightly_sync_schedule = dg.build_schedule_from_partitioned_job(
    nightly_sync_job,
    hour_of_day=2,
    minute_of_hour=15,
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
