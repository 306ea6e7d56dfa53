"""The sync engine: warehouse records -> Thred, exactly once, in the registry's order.

For each entity it works through three sets, in this order: records whose last outcome is
uncertain (``pending``/``unknown``, which includes rejected records released for retry —
re-sent first with the same external_id, which Thred answers with the stored object), records
waiting for a parent (``deferred``), then the records that changed in the window. The first two
sets are ids read from the ledger (small: they are the exceptions); records of the window that
were already handled as one of them are skipped, so each record counts once per run. Records
are held one chunk at a time; across chunks only ids are kept (the retry sets, and the run's ids
to catch a source that returns one id twice, which is quarantined rather than pushed twice).

A record's version is the latest ``updated_at`` of its row and its child rows (a platform may
edit a line without bumping the invoice); the ledger confirms that version, and reconciliation
compares a record only once Thred holds it.

A record Thred already holds (the ledger has its Thred id and a confirmed payload) is never
created again: a change is applied to it (PUT/PATCH/upsert) or flagged as drift, measured
against what Thred confirmed — and an update whose outcome was uncertain is simply re-sent,
since updates are idempotent.

Orchestrator-agnostic: Dagster assets call :meth:`SyncEngine.sync_entity` and turn the
:class:`EntityRunResult` into metadata.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from thred_pipeline.entities import ChangePolicy, EntitySpec
from thred_pipeline.sync.ledger import RETRY_FIRST, LedgerRow, SyncLedger
from thred_pipeline.sync.records import (
    MapContext,
    Mapped,
    ParentNotSynced,
    RecordInvalid,
    SourceRecord,
    Status,
    TaxCode,
    TimeWindow,
)
from thred_pipeline.thred.client import ThredClient, ThredResponse
from thred_pipeline.thred.errors import (
    ThredAuthError,
    ThredError,
    ThredTransientError,
)
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.extract import Warehouse

log = logging.getLogger("thred_pipeline.sync")

SAMPLE_LIMIT = 20
LOCAL_VALIDATION = "invalid_source_data"
DUPLICATE_SOURCE_ID = "duplicate_source_id"
# Stand-ins for confirmed_hash that match no payload, so the next pass re-applies the change.
REPLAYED = "replayed"  # full refresh: re-apply the warehouse's version over Thred's
IN_DOUBT = "in-doubt"  # an update may or may not have landed


@dataclass(frozen=True)
class SyncOptions:
    lookback: timedelta = timedelta(hours=2)
    chunk_size: int = 500
    concurrency: int = 4  # in-flight requests per business
    full_refresh: bool = False  # re-send everything; safe because creates are idempotent


@dataclass
class EntityRunResult:
    """What one entity's sync did; every count is also kept per business."""

    entity: str
    window: TimeWindow
    counts: Counter[str] = field(default_factory=Counter)
    per_business: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    amount_cents: int = 0
    api_calls: int = 0
    api_writes: int = 0
    duration_s: float = 0.0
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    paused_businesses: dict[str, str] = field(default_factory=dict)

    OUTCOMES = (
        "created",
        "updated",
        "unchanged",
        "terminal",
        "released",
        "deferred",
        "rejected",
        "drift",
        "unknown",
    )

    def add(self, business_id: str, outcome: str, sample: dict[str, Any] | None = None) -> None:
        self.counts[outcome] += 1
        self.per_business[business_id][outcome] += 1
        if sample is not None and len(self.samples[outcome]) < SAMPLE_LIMIT:
            self.samples[outcome].append(sample)

    def metrics(self) -> dict[str, int | float]:
        """Stable numeric keys, so Dagster can plot every materialization the same way."""
        out: dict[str, int | float] = {k: int(self.counts[k]) for k in self.OUTCOMES}
        out.update(
            records=int(
                sum(self.counts[k] for k in self.OUTCOMES if k not in ("released", "terminal"))
            ),
            api_calls=self.api_calls,
            api_writes=self.api_writes,
            duration_s=round(self.duration_s, 3),
            amount_cents=self.amount_cents,
            businesses=len(self.per_business),
            paused_businesses=len(self.paused_businesses),
        )
        return out


def record_version(record: SourceRecord) -> datetime:
    """The record's warehouse version: its own updated_at or a child row's, if later.

    Platforms do not always bump the parent when a line or an allocation changes; the ledger
    confirms this version so reconciliation can tell "Thred holds the latest" from "pending".
    """
    version = record.updated_at
    for rows in record.children.values():
        for row in rows:
            child = row.get("updated_at")
            if isinstance(child, datetime) and child > version:
                version = child
    return version


def payload_hash(mapped: Mapped, body: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"body": body, "path": mapped.path_params},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class _BusinessState:
    """Per-business facts looked up once per run: Thred id, currency, tax codes, accounts."""

    def __init__(self, business_id: str) -> None:
        self.business_id = business_id
        self.thred_id: str | None = None
        self.base_currency = ""
        self.tax_codes: dict[str, TaxCode] | None = None
        self.account_ids: dict[str, str] | None = None
        self.paused: str | None = None
        self.semaphore: asyncio.Semaphore | None = None

    def has_reference_data(self) -> bool:
        return self.tax_codes is not None and self.account_ids is not None


class SyncEngine:
    def __init__(
        self,
        warehouse: Warehouse,
        ledger: SyncLedger,
        thred_settings: ThredSettings,
        options: SyncOptions | None = None,
        *,
        client_factory: Callable[[ThredSettings], ThredClient] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.ledger = ledger
        self.thred_settings = thred_settings
        self.options = options or SyncOptions()
        self._client_factory = client_factory or ThredClient

    def sync_entity(self, spec: EntitySpec, window: TimeWindow) -> EntityRunResult:
        """Blocking entry point (Dagster steps and the CLI are synchronous)."""
        return asyncio.run(self.sync_entity_async(spec, window))

    async def sync_entity_async(self, spec: EntitySpec, window: TimeWindow) -> EntityRunResult:
        started = time.monotonic()
        result = EntityRunResult(entity=spec.name, window=window)
        extended = TimeWindow(window.start - self.options.lookback, window.end)
        businesses: dict[str, _BusinessState] = {}
        async with self._client_factory(self.thred_settings) as client:
            calls_before = _total_requests(client)
            writes_before = _writes(client)
            seen: set[str] = set()
            for chunk in self._work(spec, extended):
                unique = self._quarantine_duplicates(spec, chunk, seen, result)
                if unique:
                    await self._process_chunk(spec, unique, client, businesses, result)
            result.api_calls = _total_requests(client) - calls_before
            result.api_writes = _writes(client) - writes_before
        result.paused_businesses = {b: s.paused for b, s in businesses.items() if s.paused}
        result.duration_s = time.monotonic() - started
        log.info(
            "%s: %s in %.1fs (%d API calls)",
            spec.name,
            dict(result.counts),
            result.duration_s,
            result.api_calls,
        )
        return result

    # --- work sets ---------------------------------------------------------------------------

    def _work(self, spec: EntitySpec, window: TimeWindow) -> Iterator[list[SourceRecord]]:
        size = self.options.chunk_size
        handled: set[str] = set()
        for statuses in (RETRY_FIRST, (Status.DEFERRED,)):
            ids = [
                i
                for i in self.ledger.source_ids_with_status(spec.name, statuses)
                if i not in handled
            ]
            handled.update(ids)
            for start in range(0, len(ids), size):
                found = self.warehouse.fetch(spec, ids[start : start + size])
                if found:
                    yield found
        for chunk in self.warehouse.iter_changed(spec, window, chunk_size=size):
            fresh = [r for r in chunk if r.source_id not in handled]
            if fresh:
                yield fresh

    def _quarantine_duplicates(
        self,
        spec: EntitySpec,
        chunk: list[SourceRecord],
        seen: set[str],
        result: EntityRunResult,
    ) -> list[SourceRecord]:
        """The chunk without source ids the warehouse returned twice, which are quarantined.

        A view without a primary key can hand back one id twice; pushing both rows would race
        under one external_id and leave Thred and the ledger holding different copies. Twice
        in a chunk: neither row is sent. Again in a later chunk (``seen`` holds the run's ids,
        small next to the records): the first copy went, this one is not sent.
        """
        counts = Counter(r.source_id for r in chunk)
        earlier = {i for i in counts if i in seen}
        duplicates = earlier | {i for i, n in counts.items() if n > 1}
        seen.update(counts)
        if not duplicates:
            return chunk
        for source_id in sorted(duplicates):
            record = next(r for r in chunk if r.source_id == source_id)
            reason = (
                f"the warehouse returned id {source_id!r} again in this run; "
                "only its first row was sent"
                if source_id in earlier
                else f"the warehouse returned {counts[source_id]} rows with id {source_id!r}; "
                "none was sent"
            )
            reason += " (a duplicate source id cannot be synced exactly once: fix the source)"
            external_id = spec.external_id(source_id)
            self.ledger.record_outcome(
                entity=spec.name,
                source_id=source_id,
                business_id=record.business_id,
                external_id=external_id,
                status=Status.REJECTED,
                error_code=DUPLICATE_SOURCE_ID,
                error_message=f"{spec.label} {source_id}: id: {reason}",
                error_details={"id": [reason]},
                source_updated_at=record_version(record),
                forget_intended=True,
            )
            result.add(
                record.business_id,
                "rejected",
                {
                    "source_id": source_id,
                    "external_id": external_id,
                    "code": DUPLICATE_SOURCE_ID,
                    "field": "id",
                    "reason": reason,
                },
            )
        return [r for r in chunk if r.source_id not in duplicates]

    async def _process_chunk(
        self,
        spec: EntitySpec,
        chunk: list[SourceRecord],
        client: ThredClient,
        businesses: dict[str, _BusinessState],
        result: EntityRunResult,
    ) -> None:
        ledger_rows = self.ledger.get_many(spec.name, (r.source_id for r in chunk))
        parent_ids = self._parent_thred_ids(spec, chunk)
        exempt = self._tax_exempt_customers(spec, chunk)
        by_business: dict[str, list[SourceRecord]] = defaultdict(list)
        for record in chunk:
            by_business[record.business_id].append(record)

        async def run_business(business_id: str, records: list[SourceRecord]) -> None:
            state = await self._business_state(spec, business_id, client, businesses)
            ctx = MapContext(
                business_id=business_id,
                base_currency=state.base_currency,
                thred_ids=parent_ids,
                tax_codes=state.tax_codes or {},
                account_ids=state.account_ids or {},
                tax_exempt_customers=exempt,
            )
            assert state.semaphore is not None

            async def one(record: SourceRecord) -> None:
                assert state.semaphore is not None
                async with state.semaphore:
                    await self._process_record(
                        spec, record, ctx, state, ledger_rows.get(record.source_id), client, result
                    )

            await asyncio.gather(*(one(r) for r in records))

        await asyncio.gather(*(run_business(b, rs) for b, rs in by_business.items()))

    def _parent_thred_ids(
        self, spec: EntitySpec, chunk: list[SourceRecord]
    ) -> dict[tuple[str, str], str]:
        wanted: dict[str, set[str]] = defaultdict(set)
        for record in chunk:
            if spec.name != "businesses":
                wanted["businesses"].add(record.business_id)
            for ref in spec.refs:
                rows = record.children.get(ref.child, []) if ref.child else [record.row]
                for row in rows:
                    value = row.get(ref.column)
                    if value not in (None, ""):
                        wanted[ref.entity].add(str(value))
        found: dict[tuple[str, str], str] = {}
        for entity, ids in wanted.items():
            for source_id, thred_id in self.ledger.thred_ids(entity, ids).items():
                found[(entity, source_id)] = thred_id
        return found

    def _tax_exempt_customers(self, spec: EntitySpec, chunk: list[SourceRecord]) -> frozenset[str]:
        if not any(ref.entity == "customers" for ref in spec.refs):
            return frozenset()
        ids = {str(r.row.get("customer_id")) for r in chunk if r.row.get("customer_id")}
        if not ids:
            return frozenset()
        t = wh.customers
        with self.warehouse.engine.connect() as conn:
            rows = conn.execute(select(t.c.id).where(t.c.id.in_(ids), t.c.tax_exempt.is_(True)))
            return frozenset(str(r.id) for r in rows)

    async def _business_state(
        self,
        spec: EntitySpec,
        business_id: str,
        client: ThredClient,
        businesses: dict[str, _BusinessState],
    ) -> _BusinessState:
        state = businesses.get(business_id)
        if state is None:
            state = _BusinessState(business_id)
            state.semaphore = asyncio.Semaphore(self.options.concurrency)
            businesses[business_id] = state
            row = self.warehouse.business(business_id)
            state.base_currency = str(row["base_currency"]) if row else ""
            if spec.name != "businesses":
                state.thred_id = self.ledger.thred_ids("businesses", [business_id]).get(business_id)
            if spec.reference_data and state.thred_id:
                try:
                    state.tax_codes = await _tax_codes(client, state.thred_id)
                    state.account_ids = await _account_ids(client, state.thred_id)
                except ThredAuthError as exc:
                    state.paused = f"auth refused: {exc}"
        return state

    # --- one record ----------------------------------------------------------------------------

    async def _process_record(
        self,
        spec: EntitySpec,
        record: SourceRecord,
        ctx: MapContext,
        state: _BusinessState,
        prior: LedgerRow | None,
        client: ThredClient,
        result: EntityRunResult,
    ) -> None:
        external_id = spec.external_id(record.source_id)
        version = record_version(record)
        job = _Job(
            spec=spec,
            record=record,
            state=state,
            client=client,
            result=result,
            version=version,
            sample={"source_id": record.source_id, "external_id": external_id},
            outcome_args={
                "entity": spec.name,
                "source_id": record.source_id,
                "business_id": record.business_id,
                "external_id": external_id,
                "source_updated_at": version,
            },
        )
        if state.paused and spec.reference_data and not state.has_reference_data():
            # Paused before Thred's tax codes and chart could be read, so no payload can be
            # built: the record's version says whether it needs Thred at all. Records that do
            # wait; the others keep their status (synced stays synced, quarantine stays).
            if not self._as_recorded(job, prior):
                self._defer_paused(job)
            return
        try:
            if spec.name != "businesses" and state.thred_id is None:
                raise ParentNotSynced("businesses", record.business_id, "business_id")
            mapped = spec.mapper(record, ctx)
        except ParentNotSynced as exc:
            self.ledger.record_outcome(
                **job.outcome_args,
                status=Status.DEFERRED,
                error_code="parent_not_synced",
                error_message=str(exc),
                error_details={"field": exc.field_path, "entity": exc.entity, "id": exc.source_id},
            )
            result.add(record.business_id, "deferred", {**job.sample, "reason": str(exc)})
            return
        except RecordInvalid as exc:
            self.ledger.record_outcome(
                **job.outcome_args,
                status=Status.REJECTED,
                error_code=LOCAL_VALIDATION,
                error_message=f"{spec.label} {record.source_id}: {exc}",
                error_details={exc.field_path: [exc.message]},
                forget_intended=True,
            )
            result.add(
                record.business_id,
                "rejected",
                {
                    **job.sample,
                    "code": LOCAL_VALIDATION,
                    "field": exc.field_path,
                    "reason": exc.message,
                },
            )
            return

        job.mapped = mapped
        job.body = {**mapped.body, "external_id": external_id}
        job.digest = payload_hash(mapped, job.body)
        job.outcome_args["intended_hash"] = job.digest
        job.wants_terminal = bool(
            spec.terminal and record.row.get(spec.terminal.column) is not None
        )
        result.amount_cents += mapped.amount_cents

        if prior is not None and not self.options.full_refresh:
            if prior.status is Status.REJECTED and prior.intended_hash == job.digest:
                # Quarantined and unchanged: sending it again would be refused again.
                result.add(
                    record.business_id,
                    "rejected",
                    {**job.sample, "code": prior.error_code, "reason": prior.error_message},
                )
                return
            if prior.thred_id and prior.confirmed_hash:
                # Thred holds it: whatever the last outcome, never create it again.
                await self._apply_change(job, prior)
                return
        await self._create(job, prior)

    def _as_recorded(self, job: _Job, prior: LedgerRow | None) -> bool:
        """Count the record with its ledger status if its warehouse version has not moved."""
        if prior is None or prior.source_updated_at != job.version:
            return False
        if prior.status is Status.SYNCED and prior.confirmed_updated_at == job.version:
            job.result.add(job.record.business_id, "unchanged")
            return True
        if prior.status in (Status.REJECTED, Status.DRIFT):
            job.result.add(
                job.record.business_id,
                prior.status.value,
                {**job.sample, "code": prior.error_code, "reason": prior.error_message},
            )
            return True
        return False

    def _defer_paused(self, job: _Job) -> None:
        """The business's credentials were refused this run: a record that needs Thred waits."""
        reason = job.state.paused or "paused"
        self.ledger.record_outcome(
            **job.outcome_args,
            status=Status.DEFERRED,
            error_code="business_paused",
            error_message=f"business {job.record.business_id} paused: {reason}",
        )
        job.result.add(job.record.business_id, "deferred", {**job.sample, "reason": reason})

    async def _create(self, job: _Job, prior: LedgerRow | None) -> None:
        spec, record, result = job.spec, job.record, job.result
        if job.state.paused:
            self._defer_paused(job)
            return
        self.ledger.record_intent(
            entity=spec.name,
            source_id=record.source_id,
            business_id=record.business_id,
            external_id=job.body["external_id"],
            intended_hash=job.digest,
            source_updated_at=job.version,
        )
        assert job.mapped is not None
        path = self._path(spec, spec.create_path, job.state, job.mapped.path_params)
        response = await self._call(
            job,
            "POST",
            path,
            job.body,
            idempotency_key=job.body["external_id"] if spec.idempotency_header else None,
        )
        if response is None:
            return
        thred_id = _thred_id(spec, response)
        if not response.created:
            # A replay: Thred holds whatever the first successful attempt sent. If that may
            # differ from this payload, bring it up to date now (or flag it as drift).
            held = _held_by_thred(prior)
            stale = held is not None and held.digest != job.digest
            updatable = spec.change_policy is not ChangePolicy.DRIFT
            if prior is not None and (stale or (self.options.full_refresh and updatable)):
                self.ledger.record_synced(
                    entity=spec.name,
                    source_id=record.source_id,
                    thred_id=thred_id,
                    confirmed_hash=held.digest if stale and held else REPLAYED,
                    confirmed_updated_at=(held.updated_at if held else None) or job.version,
                    terminal_done=prior.terminal_done,
                    # Keep the confirmed payload to explain drift; an attempt's was not kept.
                    confirmed_body=None if prior.confirmed_hash else {},
                )
                replayed = self.ledger.get(spec.name, record.source_id)
                assert replayed is not None
                await self._apply_change(job, replayed, released_from=prior.status)
                return
        # Confirm the object before any lifecycle call, so a failed void/archive keeps it.
        terminal_done = prior is not None and prior.thred_id == thred_id and prior.terminal_done
        self._synced(job, thred_id, terminal_done)
        result.add(record.business_id, "created" if response.created else "unchanged")
        if job.wants_terminal and not terminal_done:
            if job.state.paused:
                self._defer_paused(job)
                return
            if not await self._terminal(job, thred_id):
                return
            self._synced(job, thred_id, True)
            result.add(record.business_id, "terminal")
        if prior is not None and prior.status is Status.DEFERRED:
            result.add(record.business_id, "released")

    async def _apply_change(
        self, job: _Job, prior: LedgerRow, *, released_from: Status | None = None
    ) -> None:
        """Bring a record Thred already holds up to date, or flag what cannot be applied."""
        spec, record, result = job.spec, job.record, job.result
        assert prior.thred_id is not None and job.mapped is not None
        thred_id = prior.thred_id
        released = (released_from or prior.status) is Status.DEFERRED
        content_changed = job.digest != prior.confirmed_hash or _update_in_doubt(prior)
        terminal_pending = job.wants_terminal and not prior.terminal_done
        if not content_changed and not terminal_pending:
            if not job.wants_terminal and prior.terminal_done:
                await self._drift(
                    job,
                    prior,
                    f"{spec.label} was {spec.terminal.name if spec.terminal else ''}"
                    "ed in Thred and cannot be reopened",
                )
                return
            if prior.status is not Status.SYNCED or prior.confirmed_updated_at != job.version:
                self.ledger.touch_confirmed(spec.name, record.source_id, job.version)
            result.add(record.business_id, "unchanged")
            if released:
                result.add(record.business_id, "released")
            return

        if content_changed:
            policy = spec.change_policy
            if prior.terminal_done or policy is ChangePolicy.DRIFT:
                reason = (
                    f"{spec.label} is {spec.terminal.name}ed in Thred; it cannot change"
                    if prior.terminal_done and spec.terminal
                    else f"Thred has no update for a created {spec.label}"
                )
                await self._drift(job, prior, reason)
                return
            if job.state.paused:
                self._defer_paused(job)
                return
            self.ledger.record_intent(
                entity=spec.name,
                source_id=record.source_id,
                business_id=record.business_id,
                external_id=job.body["external_id"],
                intended_hash=job.digest,
                source_updated_at=job.version,
            )
            mapped = job.mapped
            update_body = mapped.update_body if mapped.update_body is not None else job.body
            if policy is ChangePolicy.UPSERT:
                method, template, send = "POST", spec.create_path, job.body
            else:
                assert spec.update_path is not None, f"{spec.name} has no update_path"
                method = "PUT" if policy is ChangePolicy.PUT else "PATCH"
                template, send = spec.update_path, update_body
            path = self._path(
                spec, template, job.state, {**mapped.path_params, "thred_id": thred_id}
            )
            if await self._call(job, method, path, send, thred_id=thred_id) is None:
                return
            self._synced(job, thred_id, prior.terminal_done)
            result.add(record.business_id, "updated")
        if terminal_pending:
            if job.state.paused:
                self._defer_paused(job)
                return
            if not await self._terminal(job, thred_id):
                return
            self._synced(job, thred_id, True)
            result.add(record.business_id, "terminal")
        if released:
            result.add(record.business_id, "released")

    def _synced(self, job: _Job, thred_id: str, terminal_done: bool) -> None:
        self.ledger.record_synced(
            entity=job.spec.name,
            source_id=job.record.source_id,
            thred_id=thred_id,
            confirmed_hash=job.digest,
            confirmed_updated_at=job.version,
            terminal_done=terminal_done,
            confirmed_body=job.body,
        )

    async def _terminal(self, job: _Job, thred_id: str) -> bool:
        assert job.spec.terminal is not None
        path = self._path(job.spec, job.spec.terminal.path, job.state, {"thred_id": thred_id})
        response = await self._call(job, "POST", path, {}, thred_id=thred_id)
        return response is not None

    async def _drift(self, job: _Job, prior: LedgerRow, reason: str) -> None:
        spec, record, body = job.spec, job.record, job.body
        confirmed = self.ledger.confirmed_body(spec.name, record.source_id)
        if confirmed:
            changed = sorted(
                k for k in set(body) | set(confirmed) if body.get(k) != confirmed.get(k)
            )
            what = ", ".join(changed)
        else:  # Thred holds an earlier attempt whose payload was not kept
            changed = sorted(body)
            confirmed = {}
            what = "content Thred holds is from an earlier attempt"
        message = f"{spec.label} {record.source_id} changed after sync ({what}): {reason}"
        self.ledger.record_outcome(
            **job.outcome_args,
            status=Status.DRIFT,
            error_code="drift",
            error_message=message,
            error_details={
                k: {"thred": confirmed.get(k), "warehouse": body.get(k)} for k in changed
            },
            thred_id=prior.thred_id,
        )
        job.result.add(
            record.business_id, "drift", {**job.sample, "fields": changed, "reason": reason}
        )

    async def _call(
        self,
        job: _Job,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        thred_id: str | None = None,
    ) -> ThredResponse | None:
        """One request; any failure is written to the ledger and ``None`` returned."""
        spec, state, result, sample = job.spec, job.state, job.result, job.sample
        business = None if spec.partner_scoped else state.thred_id
        business_id = job.record.business_id
        try:
            return await job.client.request(
                method, path, business_id=business, json=body, idempotency_key=idempotency_key
            )
        except ThredAuthError as exc:
            state.paused = f"auth refused ({exc.status}, {exc.error_code})"
            self.ledger.record_outcome(
                **job.outcome_args,
                status=Status.DEFERRED,
                error_code="business_paused",
                error_message=str(exc),
                thred_id=thred_id,
            )
            result.add(business_id, "deferred", {**sample, "reason": state.paused})
        except ThredTransientError as exc:
            self.ledger.record_outcome(
                **job.outcome_args,
                status=Status.UNKNOWN,
                error_code=exc.error_code
                or ("uncertain" if exc.outcome_uncertain else "transient"),
                error_message=str(exc),
                thred_id=thred_id,
            )
            result.add(business_id, "unknown", {**sample, "reason": str(exc)})
        except ThredError as exc:
            self.ledger.record_outcome(
                **job.outcome_args,
                status=Status.REJECTED,
                error_code=exc.error_code or "rejected",
                error_message=f"{spec.label} {job.record.source_id}: {exc}",
                error_details=exc.details,
                thred_id=thred_id,
            )
            result.add(
                business_id,
                "rejected",
                {**sample, "code": exc.error_code, "reason": exc.message, "details": exc.details},
            )
        return None

    def _path(
        self, spec: EntitySpec, template: str, state: _BusinessState, params: dict[str, str]
    ) -> str:
        relative = template.format(**params)
        if spec.partner_scoped:
            return relative
        return f"businesses/{state.thred_id}/{relative}"


def _thred_id(spec: EntitySpec, response: ThredResponse) -> str:
    body = _body_of(spec, response)
    value = body.get("id")
    if not value:
        raise ThredError(f"{spec.label} response has no id", status=response.status_code)
    return str(value)


def _body_of(spec: EntitySpec, response: ThredResponse) -> dict[str, Any]:
    body = response.body if isinstance(response.body, dict) else {}
    if spec.response_key and isinstance(body.get(spec.response_key), dict):
        inner: dict[str, Any] = body[spec.response_key]
        return inner
    return body


@dataclass
class _Job:
    """One record on its way through plan and push, with everything its steps share."""

    spec: EntitySpec
    record: SourceRecord
    state: _BusinessState
    client: ThredClient
    result: EntityRunResult
    version: datetime
    sample: dict[str, Any]
    outcome_args: dict[str, Any]
    mapped: Mapped | None = None
    body: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    wants_terminal: bool = False


@dataclass(frozen=True)
class _Held:
    """The payload version Thred holds after an earlier attempt, as far as the ledger knows."""

    digest: str  # or IN_DOUBT
    updated_at: datetime | None  # the warehouse version of that payload


def _update_in_doubt(prior: LedgerRow) -> bool:
    """An update was attempted after the last confirmation and its outcome is unknown."""
    return (
        prior.status in RETRY_FIRST
        and prior.intended_hash is not None
        and prior.intended_hash != prior.confirmed_hash
    )


def _held_by_thred(prior: LedgerRow | None) -> _Held | None:
    """What a replayed create tells us Thred holds, or None when there is nothing to go on."""
    if prior is None:
        return None
    if prior.confirmed_hash:
        if _update_in_doubt(prior):  # the confirmed version, or the update: re-send it
            return _Held(IN_DOUBT, prior.confirmed_updated_at)
        return _Held(prior.confirmed_hash, prior.confirmed_updated_at)
    if prior.intended_hash:  # a create whose outcome was not heard: that payload landed
        return _Held(prior.intended_hash, prior.source_updated_at)
    return None


async def _tax_codes(client: ThredClient, thred_business_id: str) -> dict[str, TaxCode]:
    response = await client.request(
        "GET", f"businesses/{thred_business_id}/tax-codes/", business_id=thred_business_id
    )
    codes = response.body.get("tax_codes", []) if isinstance(response.body, dict) else []
    return {
        str(c["code"]): TaxCode(str(c["code"]), Decimal(str(c["rate"])), bool(c["is_active"]))
        for c in codes
    }


async def _account_ids(client: ThredClient, thred_business_id: str) -> dict[str, str]:
    accounts: dict[str, str] = {}
    async for account in client.iter_pages(
        f"businesses/{thred_business_id}/general-ledger/chart-of-accounts/",
        business_id=thred_business_id,
    ):
        accounts[str(account["code"])] = str(account["id"])
    return accounts


def _total_requests(client: ThredClient) -> int:
    return int(client.stats.requests)


def _writes(client: ThredClient) -> int:
    return int(client.stats.writes)


def iter_specs(names: Iterable[str] | None = None) -> list[EntitySpec]:
    from thred_pipeline import entities

    specs = entities.sync_order()
    if names is None:
        return specs
    wanted = set(names)
    return [s for s in specs if s.name in wanted]
