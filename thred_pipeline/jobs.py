"""Jobs: the nightly sync (with its window checks), the books reconciliation, quarantine retry."""

import dagster as dg

from thred_pipeline.assets import BOOKS_KEY
from thred_pipeline.resources import LedgerResource

NIGHTLY_JOB_NAME = "nightly_thred_sync"
BOOKS_JOB_NAME = "reconcile_books"

nightly_sync_job = dg.define_asset_job(
    NIGHTLY_JOB_NAME,
    selection=dg.AssetSelection.groups("thred_core", "thred_ar", "thred_ap"),
    run_tags={"thred/flow": "nightly"},
    description="Push every changed warehouse record of the day to Thred, checking each window.",
)

reconcile_books_job = dg.define_asset_job(
    BOOKS_JOB_NAME,
    selection=dg.AssetSelection.assets(BOOKS_KEY),
    run_tags={"thred/flow": "books"},
    description="Compare the whole books of every active business in Thred with the warehouse.",
)


class QuarantineRetryConfig(dg.Config):
    entity: str | None = None  # None: every entity
    source_ids: list[str] = []  # empty: every rejected record of the entity


@dg.op(description="Mark rejected records for re-sending on the next sync run.")
def release_quarantined(
    context: dg.OpExecutionContext, config: QuarantineRetryConfig, ledger: LedgerResource
) -> int:
    released = ledger.ledger().release_for_retry(config.entity, config.source_ids or None)
    context.log.info(f"{released} rejected records will be re-sent on the next sync run")
    context.add_output_metadata({"released": released})
    return released


@dg.job(description="Retry quarantined (rejected) records on demand, e.g. after a Thred fix.")
def retry_quarantine() -> None:
    release_quarantined()
