"""Jobs: the nightly sync of every registry entity (with its checks)."""

from __future__ import annotations

import dagster as dg

NIGHTLY_JOB_NAME = "nightly_thred_sync"

nightly_sync_job = dg.define_asset_job(
    NIGHTLY_JOB_NAME,
    selection=dg.AssetSelection.groups("thred_core", "thred_ar", "thred_ap"),
    run_tags={"thred/flow": "nightly"},
    description="Push every changed warehouse record of the day to Thred, then reconcile.",
)
