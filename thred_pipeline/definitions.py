"""Composition root: assemble the code location from the modules; no logic lives here."""

from __future__ import annotations

import dagster as dg

from thred_pipeline.assets import PUSH_ASSETS, WAREHOUSE_ASSETS
from thred_pipeline.jobs import nightly_sync_job, retry_quarantine
from thred_pipeline.resources import default_resources
from thred_pipeline.schedules import nightly_sync_schedule

defs = dg.Definitions(
    assets=[*WAREHOUSE_ASSETS, *PUSH_ASSETS],
    jobs=[nightly_sync_job, retry_quarantine],
    schedules=[nightly_sync_schedule],
    resources=default_resources(),
)
