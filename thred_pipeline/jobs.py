"""Jobs: the nightly sync (with its window checks), the books reconciliation, quarantine retry,
and syncing chosen businesses now.

Every job runs its steps with ``RUN_EXECUTOR``, Dagster's in-process executor: the steps of a
run execute one after another, in the asset graph's order, inside the run worker. Dagster's
default (a new process per step) spent ~35 s of a 27-42 s no-change partition starting 11
push steps and their checks, each re-importing the code and re-opening the databases, for
work the CLI does in ~8 s (issue 8, B6). In one process every step also shares the client's
rate governor (one token bucket per business, per process) instead of each step starting
its own at the initial rate. What stays the same: each step's ``RetryPolicy``
(``TRANSIENT_RETRY``; ``dg.Failure(allow_retries=False)`` still fails at once), a failed
step skips only its downstream steps, and the ``thred_api`` pool still limits the steps of
concurrent runs. What is given up: AR and AP steps no longer overlap within a run (each step
is already concurrent inside, against the API's limit), and a crash of the run worker fails
the whole run (the instance's run retries resume it from the failure).
"""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import ColumnElement, Engine, Table, and_

from thred_pipeline.assets import (
    BOOKS_KEY,
    FRESHNESS_CHECKS,
    THRED_POOL,
    TRANSIENT_RETRY,
    UncertainOutcomes,
    as_dagster_failures,
)
from thred_pipeline.core.records import TimeWindow
from thred_pipeline.entities import ENTITIES, business_root, sync_order
from thred_pipeline.resources import LedgerResource, SyncResource, ThredResource, WarehouseResource
from thred_pipeline.sync.engine import SyncEngine
from thred_pipeline.warehouse.extract import Warehouse

NIGHTLY_JOB_NAME = "nightly_thred_sync"
BOOKS_JOB_NAME = "reconcile_books"

RUN_EXECUTOR = dg.in_process_executor  # see the module docstring

# From the registry, so a new entity's push asset cannot be left out of the nightly job.
ENTITY_GROUPS = sorted({spec.group for spec in ENTITIES})

nightly_sync_job = dg.define_asset_job(
    NIGHTLY_JOB_NAME,
    # The freshness checks are evaluated on their own schedule (freshness_checks_sensor).
    selection=dg.AssetSelection.groups(*ENTITY_GROUPS)
    - dg.AssetSelection.checks(*FRESHNESS_CHECKS),
    run_tags={"thred/flow": "nightly"},
    executor_def=RUN_EXECUTOR,
    description="Push every changed warehouse record of the day to Thred, checking each window.",
)

reconcile_books_job = dg.define_asset_job(
    BOOKS_JOB_NAME,
    selection=dg.AssetSelection.assets(BOOKS_KEY),
    run_tags={"thred/flow": "books"},
    executor_def=RUN_EXECUTOR,
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


@dg.job(
    executor_def=RUN_EXECUTOR,
    description="Retry quarantined (rejected) records on demand, e.g. after a Thred fix.",
)
def retry_quarantine() -> None:
    release_quarantined()


# --- syncing businesses now (new or reactivated; requested by the sync_new_businesses sensor) --

ONBOARD_JOB_NAME = "sync_businesses_now"
BUSINESS_TAG = "thred/business"
ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)


class BusinessScopedWarehouse(Warehouse):
    """The warehouse as the engine reads it, restricted to some businesses (in SQL).

    The engine reads windows of ``updated_at``; a business that is new to the sync (created,
    or imported with old ``updated_at`` values) or reactivated (its changes while inactive were
    never extracted) needs every record of it, whatever the window. Restricting the owner
    filter keeps that read to the business's own rows, on the ``business_id`` indexes.
    """

    def __init__(self, engine: Engine, business_ids: Sequence[str]) -> None:
        super().__init__(engine)
        self.scope = tuple(business_ids)

    def _of_active_business(self, table: Table) -> ColumnElement[bool]:  # type: ignore[override]
        owner = table.c.business_id if "business_id" in table.c else table.c.id
        return and_(Warehouse._of_active_business(table), owner.in_(self.scope))


class SyncBusinessesConfig(dg.Config):
    business_ids: list[str]


@dg.op(
    pool=THRED_POOL,
    retry_policy=TRANSIENT_RETRY,
    description=(
        "Sync every record of the given businesses, whatever its updated_at, entity by entity "
        "in the documented order; what Thred already holds unchanged is not sent again."
    ),
)
def sync_businesses(
    context: dg.OpExecutionContext,
    config: SyncBusinessesConfig,
    warehouse: WarehouseResource,
    ledger: LedgerResource,
    thred: ThredResource,
    sync: SyncResource,
) -> dict[str, int]:
    totals: Counter[str] = Counter()
    window = TimeWindow(ALL_TIME, datetime.now(UTC))
    with as_dagster_failures("sync_businesses"):
        scoped = BusinessScopedWarehouse(warehouse.warehouse().engine, config.business_ids)
        engine = SyncEngine(scoped, ledger.ledger(), thred.settings(), sync.options())
        for spec in sync_order():
            result = engine.sync_entity(spec, window)
            totals.update(result.counts)
            context.log.info(f"{spec.name}: {dict(result.counts)}")
            if result.counts["unknown"]:
                raise UncertainOutcomes(
                    f"{result.counts['unknown']} {spec.label} writes have an uncertain outcome; "
                    "retrying re-sends them with the same external_id first"
                )
    synced = ledger.ledger().thred_ids(business_root().name, config.business_ids)
    missing = sorted(set(config.business_ids) - set(synced))
    context.add_output_metadata(
        {
            **{k: int(v) for k, v in sorted(totals.items())},
            "businesses_in_thred": len(synced),
            "businesses_not_in_thred": dg.MetadataValue.json(missing),
        }
    )
    if missing:
        context.log.warning(
            f"not in Thred after the sync (see the quarantine): {', '.join(missing)}"
        )
    return dict(totals)


@dg.job(
    executor_def=RUN_EXECUTOR,
    tags={"thred/flow": "onboard"},
    description=(
        "Sync new or reactivated businesses now instead of waiting for the night (requested by "
        "the sync_new_businesses sensor; launch it by hand with a list of business ids)."
    ),
)
def sync_businesses_now() -> None:
    sync_businesses()
