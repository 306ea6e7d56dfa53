"""The acting half of a sync: carries out a record's plan against Thred and the ledger.

Write-ahead: the intent (``pending`` + the payload's hash) is committed before any request
that may create or change an object leaves, so a crash leaves evidence the next run resolves.
Every outcome short of "Thred confirmed it" goes through :class:`~thred_pipeline.sync.recorder.
Recorder`; Thred's confirmations through :meth:`Executor.synced`.

**One bad row costs one row.** A record the warehouse could not read is quarantined as
``unreadable_source_row`` without being mapped or sent; a record whose mapping, keying or
sending raises anything unexpected is quarantined as ``internal_error`` with the exception's
type — never left ``pending``. What concerns the whole run is not swallowed:
``ThredConfigError`` (credentials, base URL, Thred unreachable) and ``asyncio.CancelledError``
propagate.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from thred_pipeline import entities
from thred_pipeline.core.records import MapContext, ParentNotSynced, RecordInvalid, Status
from thred_pipeline.entities import ChangePolicy
from thred_pipeline.ledger import Intent, LedgerCode, LedgerRow, SyncLedger
from thred_pipeline.sync.adopt import find_ours
from thred_pipeline.sync.outcomes import Confirmation, Outcome, Setback
from thred_pipeline.sync.planner import (
    Action,
    Confirm,
    Create,
    Defer,
    Drift,
    Facts,
    Keep,
    Plan,
    Replay,
    Skip,
    Terminal,
    Update,
    WaitForDependants,
    plan_change,
    plan_confirm,
    plan_paused,
    plan_record,
    settled_by_inputs,
)
from thred_pipeline.sync.recorder import Recorder
from thred_pipeline.sync.requests import Requests, response_thred_id
from thred_pipeline.sync.run import Job, rule_of
from thred_pipeline.sync.versions import payload_hash, wants_terminal
from thred_pipeline.thred.errors import (
    ThredAuthError,
    ThredConfigError,
    ThredDuplicateExternalId,
    ThredError,
    ThredTransientError,
)


class Executor:
    def __init__(self, ledger: SyncLedger, secret: str) -> None:
        self.ledger = ledger
        self.recorder = Recorder(ledger, secret)
        self.requests = Requests(ledger, self.recorder)

    def prepare(self, job: Job, ctx: MapContext, prior: LedgerRow | None) -> Plan | None:
        """Map and plan one record, before any request of its chunk leaves (so its intent can
        be written with the chunk's); None when it is settled already (its outcome recorded)."""
        try:
            return self._prepare(job, ctx, prior)
        except Exception as exc:
            self._failed(job, exc)
            return None

    def _prepare(self, job: Job, ctx: MapContext, prior: LedgerRow | None) -> Plan | None:
        spec, state = job.spec, job.state
        if job.record.problem is not None:
            self.recorder.invalid(job, LedgerCode.UNREADABLE_SOURCE_ROW, job.record.problem)
            return None
        if state.paused and spec.reference_data and not state.has_reference_data():
            # No payload can be built without Thred's tax codes and chart.
            return plan_paused(prior, job.version)
        job.wants_terminal = wants_terminal(spec, job.record)
        if job.inputs and settled_by_inputs(
            prior,
            job.inputs,
            job.version,
            wants_terminal=job.wants_terminal,
            resend=job.resend,
            full_refresh=job.run.full_refresh,
        ):
            assert prior is not None
            job.result.amount_cents += prior.mapped_amount_cents or 0
            return Plan((Keep(touch=False),))
        if not self._map(job, ctx):
            return None
        job.planned_paused = bool(state.paused)
        return plan_record(self.facts(job, prior), rule_of(spec))

    async def process(self, job: Job, plan: Plan | None, prior: LedgerRow | None) -> None:
        """Carry out a prepared plan; whatever goes wrong with the record stays with it."""
        try:
            if plan is not None:
                if job.mapped is not None and bool(job.state.paused) != job.planned_paused:
                    # The business was refused while this record waited: plan again.
                    plan = plan_record(self.facts(job, prior), rule_of(job.spec))
                if plan.resend_intent:
                    # Written ahead like any attempt: whatever the outcome, the refusal's time
                    # moves, so the record is re-sent again only after a later upstream change.
                    self.intent(job)
                await self.run_plan(job, plan, prior)
            if job.spec.warehouse_only is not None:
                self._mark_warehouse_only(job)
        except Exception as exc:
            self._failed(job, exc)

    def _failed(self, job: Job, exc: Exception) -> None:
        """Record what went wrong with one record; what concerns the run is raised."""
        if isinstance(exc, ThredConfigError):
            raise exc  # the run cannot talk to Thred: not this record's problem
        if isinstance(exc, ThredTransientError):  # outside a request (a lookup): retry next run
            sample = {"reason": str(exc)}
            setback = Setback(
                Outcome.UNKNOWN, LedgerCode.TRANSIENT, f"{job.name}: {exc}", sample=sample
            )
            self.recorder.record(job, setback, safely=True)
        else:
            self.recorder.internal_error(job, exc)

    def _map(self, job: Job, ctx: MapContext) -> bool:
        """Map the record (False: deferred or quarantined, and recorded)."""
        try:
            if not job.spec.is_business_root and job.state.thred_id is None:
                raise ParentNotSynced(entities.business_root().name, job.business_id, "business_id")
            mapped = job.spec.mapper(job.record, ctx)
        except ParentNotSynced as exc:
            details = {"field": exc.field_path, "entity": exc.entity, "id": exc.source_id}
            setback = Setback(
                Outcome.DEFERRED,
                LedgerCode.PARENT_NOT_SYNCED,
                str(exc),
                details=details,
                sample={"reason": str(exc)},
            )
            self.recorder.record(job, setback)
            return False
        except RecordInvalid as exc:
            self.recorder.invalid(job, LedgerCode.INVALID_SOURCE_DATA, exc)
            return False
        job.mapped = mapped
        job.body = {**mapped.body, "external_id": job.external_id}
        job.digest = payload_hash(mapped, job.body)
        job.result.amount_cents += mapped.amount_cents
        return True

    def facts(self, job: Job, prior: LedgerRow | None) -> Facts:
        return Facts(
            prior=prior,
            digest=job.digest,
            version=job.version,
            wants_terminal=job.wants_terminal,
            blockers=job.blockers,
            paused=bool(job.state.paused),
            resend=job.resend,
            full_refresh=job.run.full_refresh,
        )

    async def run_plan(self, job: Job, plan: Plan, prior: LedgerRow | None) -> None:
        for step in plan.steps:
            if not await self._act(job, step, prior):
                return
        if plan.released:
            job.count(Outcome.RELEASED)

    async def _act(self, job: Job, step: Action, prior: LedgerRow | None) -> bool:
        """Carry out one step; False when the plan stops here (its outcome is recorded)."""
        match step:
            case Skip(outcome=outcome, code=code, reason=reason):
                sample = (
                    None if outcome is Outcome.UNCHANGED else job.sample(code=code, reason=reason)
                )
                job.count(outcome, sample)
            case Keep(touch=touch):
                if touch:
                    self.ledger.touch_confirmed(job.spec.name, job.source_id, job.version)
                inputs = self.recorder.inputs(job, job.digest)
                if inputs is not None and (prior is None or prior.inputs_hash != inputs[0]):
                    self.ledger.note_inputs(job.spec.name, job.source_id, inputs)
                job.count(Outcome.UNCHANGED)
            case Confirm(thred_id=thred_id, terminal_done=done, count_as=count_as):
                self.synced(job, thred_id, terminal_done=done, body=job.body)
                job.count(count_as)
            case WaitForDependants(thred_id=thred_id, blockers=blockers):
                self.recorder.waiting(job, thred_id, blockers)
            case Defer():
                self.recorder.paused(job)
                return False
            case Drift():
                self._drift(job, step)
                return False
            case Create():
                await self._create(job, step, prior)
            case Update():
                return await self._update(job, step)
            case Terminal(thred_id=thred_id):
                if job.state.paused:  # refused while this record's update was in flight
                    self.recorder.paused(job)
                    return False
                return await self.make_terminal(job, thred_id)
            case Replay():
                await self._replay(job, step)
        return True

    # --- requests ----------------------------------------------------------------------------

    async def _create(self, job: Job, step: Create, prior: LedgerRow | None) -> None:
        spec = job.spec
        assert job.mapped is not None
        self.intent(job)
        path = self.requests.path(job, spec.create_path, job.mapped.path_params)
        sent_at = time.monotonic()
        try:
            response = await self.requests.call(
                job,
                "POST",
                path,
                job.body,
                idempotency_key=job.external_id if spec.idempotency_header else None,
                duplicates_raise=True,
                keep_if_refused=prior if step.keep_if_refused else None,
            )
        except ThredDuplicateExternalId:
            adopted = await self._adopt(job, prior, path, sent_at)
            if adopted is None:
                return
            thred_id, created, applied = adopted, False, False
        else:
            if response is None:
                return
            thred_id = response_thred_id(spec, response)
            created, applied = bool(response.created), True
        facts = self.facts(job, prior)
        plan = plan_confirm(facts, rule_of(spec), thred_id, created=created, applied=applied)
        await self.run_plan(job, plan, prior)

    async def _adopt(
        self, job: Job, prior: LedgerRow | None, path: str, sent_at: float
    ) -> str | None:
        """The Thred id of the object Thred holds under our external_id, or None (recorded)."""
        try:
            found, reason = await find_ours(self.ledger, job, prior, path, sent_at)
        except ThredAuthError as exc:
            job.state.paused = f"auth refused ({exc.status}, {exc.error_code})"
            self.recorder.paused(job)
            return None
        except ThredError as exc:  # transient or otherwise: the object exists, look again
            found, reason = None, f"the lookup failed: {exc}"
        if found is not None:
            return found
        message = (
            f"{job.name}: Thred answered 409 duplicate_external_id for "
            f"{job.external_id!r} but {reason}; re-sent next run"
        )
        setback = Setback(
            Outcome.UNKNOWN,
            LedgerCode.DUPLICATE_UNRESOLVED,
            message,
            details={"external_id": [reason]},
            sample={"reason": message},
        )
        self.recorder.record(job, setback)
        return None

    async def _update(self, job: Job, step: Update) -> bool:
        spec, mapped = job.spec, job.mapped
        assert mapped is not None
        self.intent(job)
        if step.policy is ChangePolicy.UPSERT:
            method, template, send = "POST", spec.create_path, job.body
        else:
            assert spec.update_path is not None, f"{spec.name} has no update_path"
            method = "PUT" if step.policy is ChangePolicy.PUT else "PATCH"
            template = spec.update_path
            send = mapped.update_body if mapped.update_body is not None else job.body
        params = {**mapped.path_params, "thred_id": step.thred_id}
        path = self.requests.path(job, template, params)
        if await self.requests.call(job, method, path, send, thred_id=step.thred_id) is None:
            return False
        # A voided/archived object never gets an update (the planner flags drift instead).
        self.synced(job, step.thred_id, terminal_done=False, body=job.body)
        job.count(step.count_as)
        return True

    async def make_terminal(self, job: Job, thred_id: str) -> bool:
        """Void/archive the object; False when the call failed (its outcome recorded)."""
        assert job.spec.terminal is not None
        path = self.requests.path(job, job.spec.terminal.path, {"thred_id": thred_id})
        if await self.requests.call(job, "POST", path, {}, thred_id=thred_id) is None:
            return False
        self.synced(job, thred_id, terminal_done=True, body=None)
        job.count(Outcome.TERMINAL)
        return True

    async def _replay(self, job: Job, step: Replay) -> None:
        """Record what Thred holds after a replayed create, then bring it up to date."""
        body: dict[str, Any] | None = None if step.keep_body else {}  # kept to explain drift
        held = Confirmation(
            step.thred_id, step.confirmed_hash, step.confirmed_updated_at, step.terminal_done, body
        )
        self.recorder.confirmed(job, held)
        replayed = self.ledger.get(job.spec.name, job.source_id)
        assert replayed is not None
        plan = plan_change(
            self.facts(job, replayed),
            rule_of(job.spec),
            released_from=step.released_from,
            reasserting=step.reasserting,
        )
        await self.run_plan(job, plan, replayed)

    # --- the ledger --------------------------------------------------------------------------

    def write_ahead(self, jobs: list[Job]) -> None:
        """The intents of a chunk's records about to be sent, in one statement committed before
        any of their requests leaves; each record's first :meth:`intent` is then this one."""
        intents = [
            (Intent(**job.identity(), intended_hash=job.digest), job.version) for job in jobs
        ]
        self.ledger.record_intents(intents)
        for job in jobs:
            job.written_ahead = True

    def intent(self, job: Job) -> None:
        """Write-ahead: committed before the request leaves, so a crash leaves ``pending``."""
        if job.written_ahead:
            job.written_ahead = False
            return
        self.ledger.record_intent(
            **job.identity(), intended_hash=job.digest, source_updated_at=job.version
        )

    def synced(
        self, job: Job, thred_id: str, *, terminal_done: bool, body: dict[str, Any] | None
    ) -> None:
        """Thred confirmed this record's payload at its warehouse version."""
        held = Confirmation(thred_id, job.digest, job.version, terminal_done, body)
        self.recorder.confirmed(job, held)

    def _drift(self, job: Job, step: Drift) -> None:
        body = job.body
        confirmed = self.ledger.confirmed_body(job.spec.name, job.source_id)
        if confirmed:
            changed = sorted(
                k for k in set(body) | set(confirmed) if body.get(k) != confirmed.get(k)
            )
            what = ", ".join(changed)
        else:  # Thred holds an earlier attempt whose payload was not kept
            changed, confirmed = sorted(body), {}
            what = "content Thred holds is from an earlier attempt"
        details = {k: {"thred": confirmed.get(k), "warehouse": body.get(k)} for k in changed}
        setback = Setback(
            Outcome.DRIFT,
            LedgerCode.DRIFT,
            f"{job.name} changed after sync ({what}): {step.reason}",
            details=details,
            sample={"fields": changed, "reason": step.reason},
            thred_id=step.thred_id,
        )
        self.recorder.record(job, setback)

    def _mark_warehouse_only(self, job: Job) -> None:
        """Say on a synced row that the warehouse's state (vendor archived) is not in Thred."""
        spec, record = job.spec, job.record
        state = spec.warehouse_only
        assert state is not None
        row = self.ledger.get(spec.name, record.source_id)
        if row is None or row.status is not Status.SYNCED or not row.thred_id:
            return
        if row.confirmed_updated_at != job.version:
            return
        value = record.row.get(state.column)
        marked = row.error_code == state.code
        if value is None and marked:
            self.ledger.touch_confirmed(spec.name, record.source_id, job.version)
        if value is None or marked:
            return
        when = value.isoformat() if isinstance(value, datetime) else str(value)
        self.ledger.record_outcome(
            **job.identity(),
            status=Status.SYNCED,
            error_code=state.code,
            error_message=(
                f"{job.name}: {state.name} in the warehouse ({state.column} {when}); Thred "
                f"documents no call for it, so Thred still shows the {spec.label} as it was"
            ),
            error_details={state.column: [when]},
            thred_id=row.thred_id,
        )
