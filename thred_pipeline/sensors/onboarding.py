"""New and reactivated businesses: a business that becomes active (new, or active again) is
synced within minutes instead of waiting for the night."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from thred_pipeline.entities import business_root
from thred_pipeline.jobs import BUSINESS_TAG, sync_businesses_now
from thred_pipeline.resources import LedgerResource, WarehouseResource
from thred_pipeline.schedules import SENSOR_STATUS
from thred_pipeline.sensors.runs import (
    FINISHED,
    IN_PROGRESS,
    TRIGGER_TAG,
    backfills_in_progress,
    env_int,
)


@dataclass
class OnboardCursor:
    """The businesses seen inactive (to notice one turning active again), and the reactivated
    ones still to request."""

    inactive: list[str] = field(default_factory=list)
    reactivated: dict[str, str] = field(default_factory=dict)  # business -> noticed at (ISO)

    def to_json(self) -> str:
        return json.dumps({"inactive": self.inactive, "reactivated": self.reactivated})

    @classmethod
    def from_json(cls, raw: str | None) -> OnboardCursor | None:
        if not raw:
            return None
        data = json.loads(raw)
        return cls(inactive=list(data["inactive"]), reactivated=dict(data["reactivated"]))


@dataclass
class OnboardPlan:
    requests: list[dg.RunRequest] = field(default_factory=list)
    cursor: OnboardCursor = field(default_factory=OnboardCursor)
    notes: list[str] = field(default_factory=list)


def _onboard_runs(instance: dg.DagsterInstance, business: str) -> tuple[int, bool]:
    """(finished onboarding runs of the business, one in progress?)"""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=sync_businesses_now.name, tags={BUSINESS_TAG: business}),
        limit=50,
    )
    finished = sum(r.status in FINISHED for r in runs)
    return finished, any(r.status in IN_PROGRESS for r in runs)


def _onboard_request(business: str, run_key: str, why: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"sync_businesses": {"config": {"business_ids": [business]}}}},
        tags={BUSINESS_TAG: business, TRIGGER_TAG: "onboard", "thred/reason": why},
    )


def plan_onboarding(
    instance: dg.DagsterInstance,
    active: Sequence[str],
    inactive: Sequence[str],
    in_thred: Iterable[str],
    previous: OnboardCursor | None,
    *,
    now: datetime,
    max_runs: int,
    attempts: int,
) -> OnboardPlan:
    """New: active and not in Thred per the ledger (attempts bounded, each attempt once).
    Reactivated: inactive at the previous tick, active now (requested once, from the cursor)."""
    active_set = set(active)
    plan = OnboardPlan(cursor=OnboardCursor(inactive=sorted(inactive)))
    if previous is None:
        plan.notes.append(f"started: {len(inactive)} inactive business(es) remembered")
        return plan
    reactivated = dict(previous.reactivated)
    for business in sorted(set(previous.inactive) & active_set):
        reactivated.setdefault(business, now.isoformat(timespec="seconds"))
    new = [b for b in sorted(active_set - set(in_thred)) if b not in reactivated]
    _request_reactivated(plan, reactivated, active_set, max_runs)
    _request_new(plan, instance, new, max_runs=max_runs, attempts=attempts)
    return plan


def _request_reactivated(
    plan: OnboardPlan, reactivated: dict[str, str], active: set[str], max_runs: int
) -> None:
    """Each reactivated business once; those beyond ``max_runs`` wait in the cursor."""
    for business, noticed in sorted(reactivated.items()):
        if business not in active:
            continue  # inactive again before its sync was requested
        if len(plan.requests) >= max_runs:
            plan.cursor.reactivated[business] = noticed
            continue
        plan.requests.append(
            _onboard_request(business, f"onboard:{business}:reactivated:{noticed}", "reactivated")
        )


def _request_new(
    plan: OnboardPlan,
    instance: dg.DagsterInstance,
    new: Sequence[str],
    *,
    max_runs: int,
    attempts: int,
) -> None:
    """Each new business once per attempt, while it has attempts left and none in progress."""
    for business in new:
        finished, running = _onboard_runs(instance, business)
        if running:
            plan.notes.append(f"{business}: sync in progress")
            continue
        if finished >= attempts:
            plan.notes.append(
                f"{business}: still not in Thred after {finished} run(s); see the quarantine"
            )
            continue
        if len(plan.requests) >= max_runs:
            plan.notes.append(f"{business}: waits for the next tick")
            continue
        plan.requests.append(_onboard_request(business, f"onboard:{business}:{finished}", "new"))


@dg.sensor(
    job=sync_businesses_now,
    minimum_interval_seconds=5 * 60,
    default_status=SENSOR_STATUS,
    description=(
        "Syncs a business as soon as it is active in the warehouse and not yet in Thred (new), "
        "or turns active again (reactivated: its changes while inactive were never sent), "
        "instead of waiting for the night: one sync_businesses_now run per business, every "
        "record of it whatever its updated_at (the nightly partitions only cover the day's "
        "changes, and today's day is not a partition until midnight). Cheap per tick: the ids "
        "of the businesses table and one ledger lookup. THRED_ONBOARD_MAX_RUNS (5; 0 turns it "
        "off) runs per tick, THRED_ONBOARD_ATTEMPTS (2) per business. Waits while the ledger "
        "holds no business yet (the first load is a backfill) and while a backfill runs."
    ),
)
def sync_new_businesses(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    ledger: LedgerResource,
) -> dg.SensorResult:
    max_runs = env_int("THRED_ONBOARD_MAX_RUNS", 5)
    attempts = env_int("THRED_ONBOARD_ATTEMPTS", 2, minimum=1)
    if max_runs == 0:
        return dg.SensorResult(skip_reason=dg.SkipReason("off (THRED_ONBOARD_MAX_RUNS=0)"))
    source = warehouse.warehouse()
    active = source.active_business_ids()
    inactive = source.inactive_business_ids()
    known = ledger.ledger().thred_ids(business_root().name, active)
    previous = OnboardCursor.from_json(context.cursor)
    backfills = backfills_in_progress(context.instance)
    if not known or backfills:
        why = (
            "the ledger holds no business yet: the first load is a backfill"
            if not known
            else f"backfill {', '.join(backfills)} in progress"
        )
        # Keep remembering who is inactive, so a reactivation during the wait is not lost.
        cursor = OnboardCursor(
            inactive=sorted(inactive), reactivated=previous.reactivated if previous else {}
        )
        return dg.SensorResult(skip_reason=dg.SkipReason(why), cursor=cursor.to_json())
    plan = plan_onboarding(
        context.instance,
        active,
        inactive,
        known,
        previous,
        now=datetime.now(UTC),
        max_runs=max_runs,
        attempts=attempts,
    )
    for note in plan.notes:
        context.log.info(note)
    if not plan.requests:
        reason = "; ".join(plan.notes) or "no new or reactivated business"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=plan.cursor.to_json())
    return dg.SensorResult(run_requests=plan.requests, cursor=plan.cursor.to_json())
