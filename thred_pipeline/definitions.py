"""Composition root: assemble the code location from the modules; no logic lives here."""

from __future__ import annotations

import dagster as dg

from thred_pipeline.assets import BOOKS_ASSETS, FRESHNESS_CHECKS, PUSH_ASSETS, WAREHOUSE_ASSETS
from thred_pipeline.jobs import (
    RUN_EXECUTOR,
    nightly_sync_job,
    reconcile_books_job,
    retry_quarantine,
    sync_businesses_now,
)
from thred_pipeline.resources import default_resources
from thred_pipeline.schedules import nightly_sync_schedule
from thred_pipeline.sensors import ALL_SENSORS

defs = dg.Definitions(
    assets=[*WAREHOUSE_ASSETS, *PUSH_ASSETS, *BOOKS_ASSETS],
    asset_checks=[*FRESHNESS_CHECKS],
    jobs=[nightly_sync_job, reconcile_books_job, retry_quarantine, sync_businesses_now],
    schedules=[nightly_sync_schedule],
    sensors=ALL_SENSORS,
    resources=default_resources(),
    executor=RUN_EXECUTOR,  # also for materializations and backfills launched from the UI
)
