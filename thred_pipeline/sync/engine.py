"""The sync engine: warehouse records -> Thred, exactly once, in the registry's order.

For each entity it works through four sets, in this order: records whose last outcome is
uncertain (``pending``/``unknown``, which includes rejected records released for retry —
re-sent first with the same external_id, which Thred answers with the stored object), records
waiting for a parent (``deferred``), records Thred refused that may now be accepted (see
"Nothing stuck" below), then the records that changed in the window. The first three sets are
ids read from the ledger (small: they are the exceptions); records of the window that were
already handled as one of them are skipped, so each record counts once per run. Records are
held one chunk at a time; across chunks only ids are kept (the retry sets, and the run's ids
to catch a source that returns one id twice, which is quarantined rather than pushed twice).

Each record is planned (:mod:`~thred_pipeline.sync.planner`: pure) and the plan carried out
(:mod:`~thred_pipeline.sync.executor`), which records typed outcomes
(:mod:`~thred_pipeline.sync.outcomes`). A record's version is the latest ``updated_at`` of its
row and its child rows; the ledger confirms that version, and reconciliation compares a record
only once Thred holds it. 409 adoption: :mod:`~thred_pipeline.sync.adopt`; voids and archives
after their dependants: :mod:`~thred_pipeline.sync.terminals`. The engine names no entity:
what differs between entities is declared on their ``EntitySpec``.

**Nothing stuck.** A record Thred refused (status ``rejected`` with Thred's error code, not a
local one) of an entity with references is re-sent once in a run where a record of an upstream
entity of the same business (``entities.upstream``: refs and ``retry_after``, transitively) was
created, updated or resolved after that refusal: a refund refused because its invoice's
payment had not landed yet goes through once the payment does, with no operator step.

**Lifecycle states Thred documents no call for** (``EntitySpec.warehouse_only``: archiving a
vendor) are recorded on the synced ledger row as ``error_code`` = the spec's code
(``archived_in_warehouse_only``), never sent through an undocumented endpoint.

**Full refresh** (``SyncOptions.full_refresh``) re-sends every create of the window. A record
Thred already holds at the content the ledger confirmed stays ``synced`` and counts as
``unchanged`` (terminal state kept: a voided invoice stays voided, no drift invented); updatable
records (PUT/PATCH) are re-asserted with one update; a refusal of a record whose confirmed
content equals the warehouse's (a payout reconciled in Thred) keeps it ``synced``.

Orchestrator-agnostic: Dagster assets call :meth:`SyncEngine.sync_entity` and turn the
:class:`EntityRunResult` into metadata.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from thred_pipeline import entities
from thred_pipeline.core.records import MapContext, RecordInvalid, SourceRecord, Status, TimeWindow
from thred_pipeline.entities import EntitySpec
from thred_pipeline.ledger import LOCAL_CODES, RETRY_FIRST, LedgerCode, LedgerRow, SyncLedger
from thred_pipeline.sync.context import ContextReader
from thred_pipeline.sync.executor import Executor
from thred_pipeline.sync.flow import InFlight
from thred_pipeline.sync.outcomes import EntityRunResult
from thred_pipeline.sync.planner import Plan, sends, writes_ahead
from thred_pipeline.sync.run import BusinessState, Job, Run
from thred_pipeline.sync.terminals import Terminals, terminal_owners
from thred_pipeline.sync.versions import (
    business_inputs,
    record_inputs,
    record_version,
    wants_terminal,
)
from thred_pipeline.thred import loop as event_loop
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse.extract import Warehouse

__all__ = ["EntityRunResult", "SyncEngine", "SyncOptions", "iter_specs"]

log = logging.getLogger("thred_pipeline.sync")
T = TypeVar("T")


@dataclass(frozen=True)
class SyncOptions:
    lookback: timedelta = timedelta(hours=2)
    chunk_size: int = 500
    concurrency: int = 10  # in-flight requests per business: what QuickBooks and Codat allow
    full_refresh: bool = False  # re-send everything; safe because creates are idempotent


_CHUNKS_IN_FLIGHT = 8  # chunks' worth of records held while being sent


@dataclass(frozen=True)
class _Prepared:
    """A record mapped and planned (``plan`` None: settled already), its ledger row as read."""

    job: Job
    plan: Plan | None
    prior: LedgerRow | None


@dataclass(frozen=True)
class _Chunk:
    """What a chunk's records share: their ledger rows and what their mappers look up."""

    rows: dict[str, LedgerRow]
    parent_ids: dict[tuple[str, str], str]
    flagged_parents: frozenset[str]  # the spec's ParentFlag, set in the warehouse
    blockers: dict[str, list[str]]


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
        self.executor = Executor(ledger, thred_settings.api_key.get_secret_value())
        self.context = ContextReader(warehouse, ledger, self.options.concurrency)
        self.terminals = Terminals(warehouse, ledger, self.context, self.executor)

    def sync_entity(self, spec: EntitySpec, window: TimeWindow) -> EntityRunResult:
        """Blocking entry point (Dagster steps and the CLI are synchronous).

        Raises ``ThredConfigError`` when Thred cannot be used at all (wrong partner
        credentials, a base URL that is not Thred, Thred unreachable); every record-level
        failure is written to the ledger instead.
        """
        return event_loop.run(self.sync_entity_async(spec, window))

    async def sync_entity_async(self, spec: EntitySpec, window: TimeWindow) -> EntityRunResult:
        started = time.monotonic()
        result = EntityRunResult(entity=spec.name, window=window)
        extended = TimeWindow(window.start - self.options.lookback, window.end)
        async with self._client_factory(self.thred_settings) as client:
            run = Run(spec, client, result, full_refresh=self.options.full_refresh)
            calls_before, writes_before = client.stats.requests, client.stats.writes
            # Terminals left waiting by an earlier run, whose dependants may have landed since.
            await self.terminals.apply_waiting(run, [spec] if spec.terminal else [])
            with self.ledger.batched():
                await self._chunks(run, extended)
            # This entity's records may be the ones a void/archive of a parent waited for.
            await self.terminals.apply_waiting(run, terminal_owners(spec))
            result.api_calls = int(client.stats.requests - calls_before)
            result.api_writes = int(client.stats.writes - writes_before)
        result.paused_businesses = {b: s.paused for b, s in run.businesses.items() if s.paused}
        result.duration_s = time.monotonic() - started
        log.info(
            "%s: %s in %.1fs (%d API calls)",
            spec.name,
            dict(result.counts),
            result.duration_s,
            result.api_calls,
        )
        return result

    async def _chunks(self, run: Run, window: TimeWindow) -> None:
        """Each chunk planned and written ahead in turn, sent while the next ones are read."""
        flow = InFlight(_CHUNKS_IN_FLIGHT * self.options.chunk_size)
        seen: set[str] = set()
        duplicates: list[Job] = []
        try:
            if run.spec.reference_data:  # every business's at once, not one chunk's at a time
                changed = self.warehouse.changed_business_ids(run.spec.source, window)
                await _gathered([self.context.business_state(run, b) for b in changed])
            for chunk in self._work(run, window):
                unique = self._split_duplicates(run, chunk, seen, duplicates)
                if unique:
                    sending = await self._prepare_chunk(run, unique)
                    await flow.add(self._send(sending), len(sending))
            await flow.drain()
        finally:
            await flow.cancel()
        for job in duplicates:  # after the first copy's outcome, which they replace
            why = RecordInvalid("id", job.why_duplicate)
            self.executor.recorder.invalid(job, LedgerCode.DUPLICATE_SOURCE_ID, why, safely=True)

    def _work(self, run: Run, window: TimeWindow) -> Iterator[list[SourceRecord]]:
        """Chunks of the four work sets, each record once (see the module docstring)."""
        spec, size = run.spec, self.options.chunk_size
        handled: set[str] = set()
        resend = (
            self.ledger.refused_since_upstream(spec.name, entities.upstream(spec.name), LOCAL_CODES)
            if spec.retry_on_upstream
            else []
        )
        run.resend = frozenset(resend)
        sets: list[Callable[[], list[str]]] = [
            lambda: self.ledger.source_ids_with_status(spec.name, RETRY_FIRST),
            lambda: self.ledger.source_ids_with_status(spec.name, (Status.DEFERRED,)),
            lambda: resend,
        ]
        for ids_of_set in sets:  # read one after the other: each set is read when it is due
            ids = [i for i in ids_of_set() if i not in handled]
            handled.update(ids)
            for start in range(0, len(ids), size):
                found = self.warehouse.fetch(spec.source, ids[start : start + size])
                if found:
                    yield found
        for chunk in self.warehouse.iter_changed(spec.source, window, chunk_size=size):
            fresh = [r for r in chunk if r.source_id not in handled]
            if fresh:
                yield fresh

    def _split_duplicates(
        self, run: Run, chunk: list[SourceRecord], seen: set[str], duplicates: list[Job]
    ) -> list[SourceRecord]:
        """The chunk without source ids the warehouse returned twice, which join ``duplicates``
        (quarantined once every chunk was sent).

        A view without a primary key can hand back one id twice; pushing both rows would race
        under one external_id and leave Thred and the ledger holding different copies. Twice
        in a chunk: neither row is sent. Again in a later chunk (``seen`` holds the run's ids,
        small next to the records): the first copy went, this one is not sent.
        """
        found = duplicate_ids(chunk, seen)
        for source_id, reason in sorted(found.items()):
            record = next(r for r in chunk if r.source_id == source_id)
            job = Job(
                run,
                run.spec,
                record,
                BusinessState(record.business_id),
                run.result,
                version=record_version(record),
            )
            job.why_duplicate = (
                f"{reason} (a duplicate source id cannot be synced exactly once: fix the source)"
            )
            duplicates.append(job)
        return [r for r in chunk if r.source_id not in found]

    async def _prepare_chunk(self, run: Run, chunk: list[SourceRecord]) -> list[_Prepared]:
        """Map and plan the chunk's records, settle those that need no request, and write the
        intents of the others in one statement: what is left to send."""
        rows = self.ledger.get_many(run.spec.name, (r.source_id for r in chunk))
        shared = self._shared(run.spec, chunk, rows)
        by_business: dict[str, list[SourceRecord]] = defaultdict(list)
        for record in chunk:
            by_business[record.business_id].append(record)
        # Each business's state (Thred's reference data the first time) read side by side.
        states = await _gathered(
            [self.context.business_state(run, business_id) for business_id in by_business]
        )
        prepared: list[_Prepared] = []
        for state, records in zip(states, by_business.values(), strict=True):
            ctx = self._map_context(state, shared)
            business = business_inputs(ctx, state.thred_id)
            for record in records:
                job = self._job(run, record, state, shared)
                job.inputs = record_inputs(run.spec, record, job.external_id, business, ctx)
                prior = rows.get(record.source_id)
                prepared.append(_Prepared(job, self.executor.prepare(job, ctx, prior), prior))
        self.executor.write_ahead([p.job for p in prepared if p.plan and writes_ahead(p.plan)])
        sending = []
        for item in prepared:
            if item.plan is not None and sends(item.plan):
                sending.append(item)
            else:  # no request: carried out now, without a task
                await self.executor.process(item.job, item.plan, item.prior)
        return sending

    def _shared(
        self, spec: EntitySpec, chunk: list[SourceRecord], rows: dict[str, LedgerRow]
    ) -> _Chunk:
        readable = [r for r in chunk if r.problem is None]
        terminal_due = [
            r
            for r in readable
            if wants_terminal(spec, r)
            and not ((prior := rows.get(r.source_id)) is not None and prior.terminal_done)
        ]
        return _Chunk(
            rows=rows,
            parent_ids=self.context.parent_thred_ids(spec, readable),
            flagged_parents=self.context.flagged_parents(spec, readable),
            blockers=self.terminals.blockers(spec, terminal_due),
        )

    @staticmethod
    def _map_context(state: BusinessState, shared: _Chunk) -> MapContext:
        return MapContext(
            business_id=state.business_id,
            base_currency=state.base_currency,
            thred_ids=shared.parent_ids,
            tax_codes=state.tax_codes or {},
            account_ids=state.account_ids or {},
            tax_exempt_customers=shared.flagged_parents,
        )

    @staticmethod
    def _job(run: Run, record: SourceRecord, state: BusinessState, shared: _Chunk) -> Job:
        return Job(
            run,
            run.spec,
            record,
            state,
            run.result,
            version=record_version(record),
            resend=record.source_id in run.resend,
            blockers=tuple(shared.blockers.get(record.source_id, ())),
        )

    async def _send(self, prepared: list[_Prepared]) -> None:
        """The chunk's requests, each business ``concurrency`` at a time; then its outcomes
        are written (and any held back by other chunks with them)."""

        async def one(item: _Prepared) -> None:
            semaphore = item.job.state.semaphore
            assert semaphore is not None
            async with semaphore:
                await self.executor.process(item.job, item.plan, item.prior)

        await _gathered(one(item) for item in prepared)
        self.ledger.flush()


def duplicate_ids(chunk: list[SourceRecord], seen: set[str]) -> dict[str, str]:
    """Ids of the chunk not to send, with why: repeated in the chunk, or met earlier in the
    run (``seen``, updated with the chunk's ids)."""
    counts = Counter(r.source_id for r in chunk)
    earlier = {i for i in counts if i in seen}
    seen.update(counts)
    out = {
        i: f"the warehouse returned id {i!r} again in this run; only its first row was sent"
        for i in earlier
    }
    for source_id, n in counts.items():
        if n > 1 and source_id not in earlier:
            out[source_id] = f"the warehouse returned {n} rows with id {source_id!r}; none was sent"
    return out


async def _gathered(coros: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the others, then raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def iter_specs(names: Iterable[str] | None = None) -> list[EntitySpec]:
    specs = entities.sync_order()
    if names is None:
        return specs
    wanted = set(names)
    return [s for s in specs if s.name in wanted]
