"""The nightly schedule: at 02:15 UTC, sync yesterday's (the last complete) partition.

A night it could not sync (the run failed, or the daemon was down at 02:15) is requested again
by the ``catch_up_missed_nights`` sensor (``thred_pipeline.sensors``).
"""

from __future__ import annotations

import os

import dagster as dg

from thred_pipeline.jobs import nightly_sync_job

SCHEDULE_HOUR = 2
SCHEDULE_MINUTE = 15

# ``THRED_AUTOMATION=on`` (production): the schedule and the sensors that launch runs on their
# own (catch-up, new businesses, freshness checks) start running when the code location loads.
# Unset (a laptop, tests, the demo): they start stopped; turn them on in the UI or with
# ``dagster schedule start`` / ``dagster sensor start``.
AUTOMATION_ON = os.environ.get("THRED_AUTOMATION", "").strip().lower() in {"on", "1", "true"}
SCHEDULE_STATUS = (
    dg.DefaultScheduleStatus.RUNNING if AUTOMATION_ON else dg.DefaultScheduleStatus.STOPPED
)
SENSOR_STATUS = dg.DefaultSensorStatus.RUNNING if AUTOMATION_ON else dg.DefaultSensorStatus.STOPPED

nightly_sync_schedule = dg.build_schedule_from_partitioned_job(
    nightly_sync_job,
    hour_of_day=SCHEDULE_HOUR,
    minute_of_hour=SCHEDULE_MINUTE,
    default_status=SCHEDULE_STATUS,
)
