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

A record's version is the latest ``updated_at`` of its row and its child rows (a platform may
edit a line without bumping the invoice); the ledger confirms that version, and reconciliation
compares a record only once Thred holds it.

A record Thred already holds (the ledger has its Thred id and a confirmed payload) is never
created again: a change is applied to it (PUT/PATCH/upsert) or flagged as drift, measured
against what Thred confirmed — and an update whose outcome was uncertain is simply re-sent,
since updates are idempotent.

**One bad row costs one row.** A record the warehouse could not read (``record.problem``) is
quarantined as ``unreadable_source_row`` without being mapped or sent; a record whose mapping,
keying or sending raises anything unexpected is quarantined as ``internal_error`` with the
exception's type — never left ``pending``, never stopping the entity. What concerns the whole
run is not swallowed: ``ThredConfigError`` (credentials, base URL, Thred unreachable) and
``asyncio.CancelledError`` propagate out of :meth:`SyncEngine.sync_entity`.

**Both readings of a repeated external_id.** Thred's create pages answer a repeated
external_id with 200 and the stored object; its error guide documents 409
``duplicate_external_id``. On a 409 the engine looks the object up in the create path's list
(by external_id: with the documented filter where the list has one, otherwise the list is read
once per run and kept), or — where the documented list shape carries no external_id (refunds) —
by the entity's ``adopt_match`` among listed objects no other ledger row owns; it then adopts
the object exactly as a 200 replay. None or several candidates: ``unknown`` with the reason
(re-sent next run), never a rejection and never a second object.

**Nothing stuck.** A record Thred refused (status ``rejected`` with Thred's error code, not a
local one) of an entity with references is re-sent once in a run where a record of an upstream
entity of the same business (``entities.upstream``: refs and ``retry_after``, transitively) was
created, updated or resolved after that refusal: a refund refused because its invoice's
payment had not landed yet goes through once the payment does, with no operator step. It costs
at most one request per such record per such run (the refusal's ``status_since`` moves with
each attempt).

**Terminal actions after the documents they would block.** A void or archive is made only once
no dependant of the record (records whose ``refs`` point at it) is still waiting to be sent
(never seen, ``pending``/``unknown``/``deferred``, or changed since Thred confirmed it);
quarantined dependants (``rejected``, ``drift``) wait for a human and do not hold it back. Until
then the ledger row is ``synced`` with ``error_code`` ``terminal_waiting`` and the dependants
named; waiting terminals are made at the start of their entity's sync and at the end of the
sync of the entity itself and of each dependant entity, so a customer created, invoiced, paid
and archived on one day is archived at the end of the payments step.

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
import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select

from thred_pipeline import entities
from thred_pipeline.core.records import (
    MapContext,
    Mapped,
    ParentNotSynced,
    RecordInvalid,
    SourceRecord,
    Status,
    TaxCode,
    TimeWindow,
)
from thred_pipeline.entities import ChangePolicy, EntitySpec, Ref
from thred_pipeline.ledger import RETRY_FIRST, LedgerRow, SyncLedger, ledger_table
from thred_pipeline.thred.client import ThredClient, ThredResponse
from thred_pipeline.thred.errors import (
    ThredAuthError,
    ThredConfigError,
    ThredDuplicateExternalId,
    ThredError,
    ThredTransientError,
)
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.extract import Warehouse

log = logging.getLogger("thred_pipeline.sync")

SAMPLE_LIMIT = 20
# error_code values the engine writes (reconciliation and the runbook read them).
LOCAL_VALIDATION = "invalid_source_data"  # the mapper refused a value (field named)
DUPLICATE_SOURCE_ID = "duplicate_source_id"  # the warehouse returned one id twice
UNREADABLE_SOURCE_ROW = "unreadable_source_row"  # the warehouse row could not be read
INTERNAL_ERROR = "internal_error"  # mapping, keying or sending raised unexpectedly
UNSENDABLE_REQUEST = "unsendable_request"  # the client could not put the request on the wire
TERMINAL_WAITING = "terminal_waiting"  # synced; void/archive waits for dependants (named)
DUPLICATE_UNRESOLVED = "duplicate_external_id_unresolved"  # 409, object not found: unknown
# Quarantines caused by the warehouse row or by this process: re-sent on change or release,
# never because an upstream record changed.
LOCAL_CODES = frozenset(
    {
        LOCAL_VALIDATION,
        DUPLICATE_SOURCE_ID,
        UNREADABLE_SOURCE_ROW,
        INTERNAL_ERROR,
        UNSENDABLE_REQUEST,
    }
)
# Stand-ins for confirmed_hash that match no payload, so the next pass re-applies the change.
REPLAYED = "replayed"  # full refresh: re-apply the warehouse's version over Thred's
IN_DOUBT = "in-doubt"  # an update may or may not have landed
_WAITING_NAMED = 20  # dependants named in a terminal_waiting message
_IN_BATCH = 500


@dataclass(frozen=True)
class SyncOptions:
    lookback: timedelta = timedelta(hours=2)
    chunk_size: int = 500
    concurrency: int = 4  # in-flight requests per business
    full_refresh: bool = False  # re-send everything; safe because creates are idempotent


@dataclass
class EntityRunResult:
    """What one entity's sync did; every count is also kept per business.

    ``late`` counts, per other entity, what happened to that entity's waiting terminal actions
    during this sync (a customer archived at the end of the payments step).
    """

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
    late: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    OUTCOMES = (
        "created",
        "updated",
        "unchanged",
        "terminal",
        "terminal_waiting",
        "released",
        "deferred",
        "rejected",
        "drift",
        "unknown",
    )
    # Extra marks on a record already counted once (not records of their own).
    MARKS = ("released", "terminal", "terminal_waiting")

    def add(self, business_id: str, outcome: str, sample: dict[str, Any] | None = None) -> None:
        self.counts[outcome] += 1
        self.per_business[business_id][outcome] += 1
        if sample is not None and len(self.samples[outcome]) < SAMPLE_LIMIT:
            self.samples[outcome].append(sample)

    def metrics(self) -> dict[str, int | float]:
        """Stable numeric keys, so Dagster can plot every materialization the same way."""
        out: dict[str, int | float] = {k: int(self.counts[k]) for k in self.OUTCOMES}
        out.update(
            records=int(sum(self.counts[k] for k in self.OUTCOMES if k not in self.MARKS)),
            api_calls=self.api_calls,
            api_writes=self.api_writes,
            duration_s=round(self.duration_s, 3),
            amount_cents=self.amount_cents,
            businesses=len(self.per_business),
            paused_businesses=len(self.paused_businesses),
            late_terminals=int(sum(c["terminal"] for c in self.late.values())),
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


@dataclass
class _Listing:
    """One list of Thred objects, read once per run to adopt objects after 409s."""

    items: list[dict[str, Any]]
    by_external_id: dict[str, dict[str, Any]]
    built_at: float  # time.monotonic()

    @property
    def carries_external_ids(self) -> bool:
        return any("external_id" in item for item in self.items)


@dataclass
class _Run:
    """One ``sync_entity`` call: what its records share."""

    spec: EntitySpec
    client: ThredClient
    result: EntityRunResult
    businesses: dict[str, _BusinessState] = field(default_factory=dict)
    resend: frozenset[str] = frozenset()  # refused records re-sent: upstream changed since
    listings: dict[str, _Listing] = field(default_factory=dict)
    listing_locks: dict[str, asyncio.Lock] = field(default_factory=dict)


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
        """Blocking entry point (Dagster steps and the CLI are synchronous).

        Raises ``ThredConfigError`` when Thred cannot be used at all (wrong partner
        credentials, a base URL that is not Thred, Thred unreachable); every record-level
        failure is written to the ledger instead.
        """
        return asyncio.run(self.sync_entity_async(spec, window))

    async def sync_entity_async(self, spec: EntitySpec, window: TimeWindow) -> EntityRunResult:
        started = time.monotonic()
        result = EntityRunResult(entity=spec.name, window=window)
        extended = TimeWindow(window.start - self.options.lookback, window.end)
        async with self._client_factory(self.thred_settings) as client:
            run = _Run(spec=spec, client=client, result=result)
            calls_before = _total_requests(client)
            writes_before = _writes(client)
            # Terminals left waiting by an earlier run, whose dependants may have landed since.
            await self._apply_waiting_terminals(run, [spec] if spec.terminal else [])
            seen: set[str] = set()
            for chunk in self._work(spec, extended, run):
                unique = self._quarantine_duplicates(spec, chunk, seen, result)
                if unique:
                    await self._process_chunk(run, unique)
            # This entity's records may be the ones a void/archive of a parent waited for.
            await self._apply_waiting_terminals(run, _terminal_owners(spec))
            result.api_calls = _total_requests(client) - calls_before
            result.api_writes = _writes(client) - writes_before
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

    # --- work sets ---------------------------------------------------------------------------

    def _work(
        self, spec: EntitySpec, window: TimeWindow, run: _Run
    ) -> Iterator[list[SourceRecord]]:
        size = self.options.chunk_size
        handled: set[str] = set()
        resend = self._refused_to_resend(spec)
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
                found = self.warehouse.fetch(spec, ids[start : start + size])
                if found:
                    yield found
        for chunk in self.warehouse.iter_changed(spec, window, chunk_size=size):
            fresh = [r for r in chunk if r.source_id not in handled]
            if fresh:
                yield fresh

    def _refused_to_resend(self, spec: EntitySpec) -> list[str]:
        """Records Thred refused whose business had an upstream record change since.

        "Refused" excludes local quarantines (``LOCAL_CODES``): those wait for the row to
        change or for a release. "Changed" is a record of an upstream entity that was created,
        updated or resolved (``synced_at`` / ``status_since`` of a synced row) after the
        refusal (``status_since``, which every new attempt moves).
        """
        if not spec.retry_on_upstream:
            return []
        t = ledger_table
        with self.ledger.engine.connect() as conn:
            refused = conn.execute(
                select(t.c.source_id, t.c.business_id, t.c.status_since).where(
                    t.c.entity == spec.name,
                    t.c.status == Status.REJECTED.value,
                    or_(t.c.error_code.is_(None), t.c.error_code.not_in(sorted(LOCAL_CODES))),
                )
            ).all()
            if not refused:
                return []
            upstream = sorted(entities.upstream(spec.name))
            latest: dict[str, datetime] = {}
            owners = sorted({r.business_id for r in refused})
            for start in range(0, len(owners), _IN_BATCH):
                rows = conn.execute(
                    select(
                        t.c.business_id,
                        func.max(t.c.synced_at).label("synced_at"),
                        func.max(t.c.status_since).label("status_since"),
                    )
                    .where(
                        t.c.entity.in_(upstream),
                        t.c.status == Status.SYNCED.value,
                        t.c.business_id.in_(owners[start : start + _IN_BATCH]),
                    )
                    .group_by(t.c.business_id)
                )
                for row in rows:
                    times = [_aware(row.synced_at), _aware(row.status_since)]
                    known = [x for x in times if x is not None]
                    if known:
                        latest[row.business_id] = max(known)
        out = []
        for row in refused:
            changed = latest.get(row.business_id)
            since = _aware(row.status_since)
            if changed is not None and since is not None and changed > since:
                out.append(str(row.source_id))
        return sorted(out)

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
            sample = {
                "source_id": source_id,
                "external_id": external_id,
                "code": DUPLICATE_SOURCE_ID,
                "field": "id",
                "reason": reason,
            }
            self._write_safely(
                spec.label,
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
            result.add(record.business_id, "rejected", sample)
        return [r for r in chunk if r.source_id not in duplicates]

    # --- a chunk -------------------------------------------------------------------------------

    async def _process_chunk(self, run: _Run, chunk: list[SourceRecord]) -> None:
        spec = run.spec
        ledger_rows = self.ledger.get_many(spec.name, (r.source_id for r in chunk))
        readable = [r for r in chunk if r.problem is None]
        parent_ids = self._parent_thred_ids(spec, readable)
        exempt = self._tax_exempt_customers(spec, readable)
        blockers = self._terminal_blockers(
            spec,
            [
                r
                for r in readable
                if _wants_terminal(spec, r)
                and not (
                    (prior := ledger_rows.get(r.source_id)) is not None and prior.terminal_done
                )
            ],
        )
        by_business: dict[str, list[SourceRecord]] = defaultdict(list)
        for record in chunk:
            by_business[record.business_id].append(record)

        async def run_business(business_id: str, records: list[SourceRecord]) -> None:
            state = await self._business_state(spec, business_id, run)
            ctx = MapContext(
                business_id=business_id,
                base_currency=state.base_currency,
                thred_ids=parent_ids,
                tax_codes=state.tax_codes or {},
                account_ids=state.account_ids or {},
                tax_exempt_customers=exempt,
            )
            semaphore = state.semaphore
            assert semaphore is not None

            async def one(record: SourceRecord) -> None:
                async with semaphore:
                    job = self._job(run, spec, record, state)
                    job.resend = record.source_id in run.resend
                    job.blockers = tuple(blockers.get(record.source_id, ()))
                    await self._guarded(job, ctx, ledger_rows.get(record.source_id))

            await _all(one(r) for r in records)

        await _all(run_business(b, rs) for b, rs in by_business.items())

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
        ids = sorted({str(r.row.get("customer_id")) for r in chunk if r.row.get("customer_id")})
        if not ids:
            return frozenset()
        t = wh.customers
        found: set[str] = set()
        with self.warehouse.engine.connect() as conn:
            for start in range(0, len(ids), _IN_BATCH):
                rows = conn.execute(
                    select(t.c.id).where(
                        t.c.id.in_(ids[start : start + _IN_BATCH]), t.c.tax_exempt.is_(True)
                    )
                )
                found.update(str(r.id) for r in rows)
        return frozenset(found)

    async def _business_state(
        self, spec: EntitySpec, business_id: str, run: _Run
    ) -> _BusinessState:
        state = run.businesses.get(business_id)
        if state is None:
            state = _BusinessState(business_id)
            state.semaphore = asyncio.Semaphore(self.options.concurrency)
            run.businesses[business_id] = state
            row = self.warehouse.business(business_id)
            currency = row.get("base_currency") if row else None
            state.base_currency = currency if isinstance(currency, str) else ""
            if spec.name != "businesses":
                state.thred_id = self.ledger.thred_ids("businesses", [business_id]).get(business_id)
        if spec.reference_data and state.thred_id and state.tax_codes is None and not state.paused:
            try:
                state.tax_codes = await _tax_codes(run.client, state.thred_id)
                state.account_ids = await _account_ids(run.client, state.thred_id)
            except ThredAuthError as exc:
                state.paused = f"auth refused: {exc}"
        return state

    # --- one record ----------------------------------------------------------------------------

    def _job(
        self, run: _Run, spec: EntitySpec, record: SourceRecord, state: _BusinessState
    ) -> _Job:
        external_id = spec.external_id(record.source_id)
        version = record_version(record)
        return _Job(
            spec=spec,
            record=record,
            state=state,
            client=run.client,
            result=run.result,
            run=run,
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

    async def _guarded(self, job: _Job, ctx: MapContext, prior: LedgerRow | None) -> None:
        """One record; whatever goes wrong with it stays with it (see the module docstring)."""
        try:
            await self._process_record(job, ctx, prior)
            if job.spec.warehouse_only is not None:
                self._mark_warehouse_only(job)
        except ThredConfigError:
            raise  # the run cannot talk to Thred: not this record's problem
        except ThredTransientError as exc:  # outside ``_call`` (a lookup): retry next run
            self._write_safely(
                job.spec.label,
                **job.outcome_args,
                status=Status.UNKNOWN,
                error_code="transient",
                error_message=f"{job.spec.label} {job.record.source_id}: {exc}",
            )
            job.result.add(job.record.business_id, "unknown", {**job.sample, "reason": str(exc)})
        except Exception as exc:
            self._internal_error(job, exc)

    def _internal_error(self, job: _Job, exc: Exception) -> None:
        """Quarantine the record with the exception's type: no record stays ``pending``."""
        spec, record = job.spec, job.record
        kind = type(exc).__name__
        text = self._redact(str(exc))[:500]
        reason = f"{kind}: {text}" if text else kind
        log.warning("%s %s: quarantined after %s", spec.label, record.source_id, kind)
        self._write_safely(
            spec.label,
            **job.outcome_args,
            status=Status.REJECTED,
            error_code=INTERNAL_ERROR,
            error_message=f"{spec.label} {record.source_id}: {reason}",
            error_details={"exception": [reason]},
        )
        job.result.add(
            record.business_id,
            "rejected",
            {**job.sample, "code": INTERNAL_ERROR, "reason": reason},
        )

    def _write_safely(self, label: str, **outcome: Any) -> None:
        """``record_outcome`` on an error path; if even that fails, the record is only logged."""
        try:
            self.ledger.record_outcome(**outcome)
        except Exception as exc:  # pragma: no cover - the ledger stores any value (ledger.py)
            log.error(
                "%s %s: the ledger could not record the outcome (%s)",
                label,
                outcome.get("source_id"),
                type(exc).__name__,
            )

    def _redact(self, text: str) -> str:
        secret = self.thred_settings.api_key.get_secret_value()
        return text.replace(secret, "***") if secret else text

    async def _process_record(self, job: _Job, ctx: MapContext, prior: LedgerRow | None) -> None:
        spec, record, state, result = job.spec, job.record, job.state, job.result
        if record.problem is not None:
            self._quarantine_unreadable(job, record.problem)
            return
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
            self._quarantine_local(job, LOCAL_VALIDATION, exc)
            return

        job.mapped = mapped
        job.body = {**mapped.body, "external_id": job.sample["external_id"]}
        job.digest = payload_hash(mapped, job.body)
        job.outcome_args["intended_hash"] = job.digest
        job.wants_terminal = _wants_terminal(spec, record)
        result.amount_cents += mapped.amount_cents

        if job.resend and prior is not None and prior.status is Status.REJECTED:
            # Written ahead like any attempt: whatever the outcome, the refusal's time moves,
            # so the record is re-sent again only after a later upstream change.
            self.ledger.record_intent(
                entity=spec.name,
                source_id=record.source_id,
                business_id=record.business_id,
                external_id=job.body["external_id"],
                intended_hash=job.digest,
                source_updated_at=job.version,
            )
        if prior is not None and not self.options.full_refresh:
            if (
                prior.status is Status.REJECTED
                and prior.intended_hash == job.digest
                and not job.resend
            ):
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

    def _quarantine_unreadable(self, job: _Job, problem: RecordInvalid) -> None:
        self._quarantine_local(job, UNREADABLE_SOURCE_ROW, problem)

    def _quarantine_local(self, job: _Job, code: str, exc: RecordInvalid) -> None:
        """Rejected before any request: the message names record and field."""
        spec, record = job.spec, job.record
        self.ledger.record_outcome(
            **job.outcome_args,
            status=Status.REJECTED,
            error_code=code,
            error_message=f"{spec.label} {record.source_id}: {exc.field_path}: {exc.message}",
            error_details={exc.field_path: [exc.message]},
            forget_intended=True,
        )
        job.result.add(
            record.business_id,
            "rejected",
            {**job.sample, "code": code, "field": exc.field_path, "reason": exc.message},
        )

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

    # --- create ----------------------------------------------------------------------------

    async def _create(self, job: _Job, prior: LedgerRow | None) -> None:
        spec, record = job.spec, job.record
        if job.state.paused:
            self._defer_paused(job)
            return
        # Thred already confirmed exactly this payload (a full refresh re-sends it anyway).
        held_same = (
            prior is not None
            and prior.thred_id is not None
            and prior.confirmed_hash == job.digest
            and not _update_in_doubt(prior)
        )
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
        sent_at = time.monotonic()
        try:
            response = await self._call(
                job,
                "POST",
                path,
                job.body,
                idempotency_key=job.body["external_id"] if spec.idempotency_header else None,
                duplicates_raise=True,
                keep_if_refused=prior if held_same else None,
            )
        except ThredDuplicateExternalId:
            adopted = await self._adopt(job, prior, path, sent_at)
            if adopted is None:
                return
            await self._confirm_create(job, prior, adopted, created=False, applied=False)
            return
        if response is None:
            return
        thred_id = _thred_id(spec, response)
        created = bool(response.created)
        await self._confirm_create(job, prior, thred_id, created=created, applied=True)

    async def _confirm_create(
        self,
        job: _Job,
        prior: LedgerRow | None,
        thred_id: str,
        *,
        created: bool,
        applied: bool,
    ) -> None:
        """Record what a create answered: a new object, or one Thred already held.

        ``applied`` is False when the object was adopted after a 409 (Thred applied nothing);
        a payout's 200 is an upsert that applied this payload.
        """
        spec, record, result = job.spec, job.record, job.result
        if not created:
            # A replay: Thred holds whatever the first successful attempt sent. If that may
            # differ from this payload, bring it up to date now (or flag it as drift).
            held = _held_by_thred(prior)
            stale = held is not None and held.digest != job.digest
            if spec.change_policy is ChangePolicy.UPSERT and applied:
                # The 200 of an upsert: Thred now holds this very payload.
                kept = prior is not None and prior.thred_id == thred_id and prior.terminal_done
                self._synced(job, thred_id, kept)
                result.add(record.business_id, "updated" if stale else "unchanged")
                self._released(job, prior)
                return
            reapply = (
                self.options.full_refresh
                and spec.change_policy in (ChangePolicy.PUT, ChangePolicy.PATCH)
                and prior is not None
                and not prior.terminal_done
            )
            if prior is not None and (stale or reapply):
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
                await self._apply_change(
                    job,
                    replayed,
                    released_from=prior.status,
                    reasserting=None if stale else prior.confirmed_hash,
                )
                return
        # Confirm the object before any lifecycle call, so a failed void/archive keeps it.
        terminal_done = prior is not None and prior.thred_id == thred_id and prior.terminal_done
        self._synced(job, thred_id, terminal_done)
        result.add(record.business_id, "created" if created else "unchanged")
        if (
            job.wants_terminal
            and not terminal_done
            and not await self._terminal_or_wait(job, thred_id)
        ):
            return
        self._released(job, prior)

    def _released(self, job: _Job, prior: LedgerRow | None) -> None:
        if prior is not None and prior.status is Status.DEFERRED:
            job.result.add(job.record.business_id, "released")

    # --- 409 duplicate_external_id ---------------------------------------------------------

    async def _adopt(
        self, job: _Job, prior: LedgerRow | None, create_path: str, sent_at: float
    ) -> str | None:
        """The Thred id of the object Thred holds under our external_id, or None (recorded)."""
        spec, record = job.spec, job.record
        business = None if spec.partner_scoped else job.state.thred_id
        try:
            found, reason = await self._lookup(job, prior, create_path, business, sent_at)
        except ThredAuthError as exc:
            job.state.paused = f"auth refused ({exc.status}, {exc.error_code})"
            self._defer_paused(job)
            return None
        except ThredError as exc:  # transient or otherwise: the object exists, look again
            found, reason = None, f"the lookup failed: {exc}"
        if found is not None:
            return found
        message = (
            f"{spec.label} {record.source_id}: Thred answered 409 duplicate_external_id for "
            f"{job.body['external_id']!r} but {reason}; re-sent next run"
        )
        self.ledger.record_outcome(
            **job.outcome_args,
            status=Status.UNKNOWN,
            error_code=DUPLICATE_UNRESOLVED,
            error_message=message,
            error_details={"external_id": [reason]},
        )
        job.result.add(record.business_id, "unknown", {**job.sample, "reason": message})
        return None

    async def _lookup(
        self,
        job: _Job,
        prior: LedgerRow | None,
        path: str,
        business: str | None,
        sent_at: float,
    ) -> tuple[str | None, str]:
        spec, external_id = job.spec, job.body["external_id"]
        if spec.external_id_filter:
            params = {**dict(spec.lookup_params), "external_id": external_id}
            item = await job.client.find_by_external_id(
                path, external_id, business_id=business, params=params
            )
            if item is not None and item.get("id"):
                return str(item["id"]), ""
            return None, "no object with that external_id is listed"
        listing = await self._listing(job.run, path, business, spec, None)
        for attempt in (1, 2):
            item = listing.by_external_id.get(external_id)
            if item is not None and item.get("id"):
                return str(item["id"]), ""
            adopted, reason = self._match(job, prior, listing)
            if adopted is not None:
                return adopted, ""
            if attempt == 1 and listing.built_at < sent_at:
                # The object may be younger than the list we hold: read it again, once.
                listing = await self._listing(job.run, path, business, spec, sent_at)
        return None, reason

    def _match(
        self, job: _Job, prior: LedgerRow | None, listing: _Listing
    ) -> tuple[str | None, str]:
        spec = job.spec
        if listing.carries_external_ids or spec.adopt_match is None:
            return None, "no object with that external_id is listed"
        candidates = [
            str(item["id"])
            for item in listing.items
            if item.get("id") and spec.adopt_match(job.body, item)
        ]
        own = prior.thred_id if prior is not None else None
        if own is not None and own in candidates:
            return own, ""
        taken = self._known_thred_ids(spec, job.record.business_id)
        free = [c for c in candidates if c not in taken]
        if len(free) == 1:
            return free[0], ""
        if not free:
            return None, f"no listed {spec.label} without a ledger record matches its content"
        return None, (
            f"{len(free)} listed {spec.label}s match its content "
            f"({', '.join(free[:5])}); cannot tell which is ours"
        )

    async def _listing(
        self,
        run: _Run,
        path: str,
        business: str | None,
        spec: EntitySpec,
        fresh_after: float | None,
    ) -> _Listing:
        lock = run.listing_locks.setdefault(path, asyncio.Lock())
        async with lock:
            listing = run.listings.get(path)
            if listing is not None and (fresh_after is None or listing.built_at >= fresh_after):
                return listing
            built_at = time.monotonic()
            items: list[dict[str, Any]] = []
            params = dict(spec.lookup_params) or None
            async for item in run.client.iter_pages(path, business_id=business, params=params):
                if isinstance(item, dict):
                    items.append(item)
            by_external_id = {
                str(i["external_id"]): i for i in items if isinstance(i.get("external_id"), str)
            }
            listing = _Listing(items, by_external_id, built_at)
            run.listings[path] = listing
            return listing

    def _known_thred_ids(self, spec: EntitySpec, business_id: str) -> set[str]:
        """Thred ids the ledger holds for the entity in the business (objects already ours)."""
        rows = self.ledger.iter_rows(spec.name, business_id=business_id)
        return {r.thred_id for r in rows if r.thred_id}

    # --- change to a record Thred holds ----------------------------------------------------

    async def _apply_change(
        self,
        job: _Job,
        prior: LedgerRow,
        *,
        released_from: Status | None = None,
        reasserting: str | None = None,
    ) -> None:
        """Bring a record Thred already holds up to date, or flag what cannot be applied.

        ``reasserting`` (full refresh): the hash Thred confirmed before the replay; a re-sent
        update of that same payload counts as ``unchanged``.
        """
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
            same = reasserting is not None and reasserting == job.digest
            result.add(record.business_id, "unchanged" if same else "updated")
        if terminal_pending and not await self._terminal_or_wait(job, thred_id):
            return
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

    # --- terminal actions ------------------------------------------------------------------

    async def _terminal_or_wait(self, job: _Job, thred_id: str) -> bool:
        """Void/archive now, or leave it waiting for the dependants it would block.

        True when the record is done with (terminal made or waiting), False when the call
        failed and its outcome is already recorded.
        """
        spec, record = job.spec, job.record
        assert spec.terminal is not None
        if job.blockers:
            self._mark_waiting(spec, record.source_id, record.business_id, thred_id, job.blockers)
            job.result.add(
                record.business_id,
                "terminal_waiting",
                {**job.sample, "waiting_for": list(job.blockers[:_WAITING_NAMED])},
            )
            return True
        if job.state.paused:
            self._defer_paused(job)
            return False
        if not await self._terminal(job, thred_id):
            return False
        self.ledger.record_synced(
            entity=spec.name,
            source_id=record.source_id,
            thred_id=thred_id,
            confirmed_hash=job.digest,
            confirmed_updated_at=job.version,
            terminal_done=True,
            confirmed_body=None,
        )
        job.result.add(record.business_id, "terminal")
        return True

    async def _terminal(self, job: _Job, thred_id: str) -> bool:
        assert job.spec.terminal is not None
        path = self._path(job.spec, job.spec.terminal.path, job.state, {"thred_id": thred_id})
        response = await self._call(job, "POST", path, {}, thred_id=thred_id)
        return response is not None

    def _mark_waiting(
        self,
        spec: EntitySpec,
        source_id: str,
        business_id: str,
        thred_id: str,
        blockers: Sequence[str],
    ) -> None:
        assert spec.terminal is not None
        named = ", ".join(blockers[:_WAITING_NAMED])
        more = (
            f" and {len(blockers) - _WAITING_NAMED} more" if len(blockers) > _WAITING_NAMED else ""
        )
        self.ledger.record_outcome(
            entity=spec.name,
            source_id=source_id,
            business_id=business_id,
            external_id=spec.external_id(source_id),
            status=Status.SYNCED,
            error_code=TERMINAL_WAITING,
            error_message=(
                f"{spec.label} {source_id}: {spec.terminal.name} waits until its dependants "
                f"are in Thred: {named}{more}"
            ),
            error_details={"waiting_for": list(blockers[:100])},
            thred_id=thred_id,
        )

    def _terminal_blockers(
        self, spec: EntitySpec, records: Sequence[SourceRecord]
    ) -> dict[str, list[str]]:
        """Per record, its dependants still waiting to be sent ("invoice inv-1", ...)."""
        if spec.terminal is None or not records:
            return {}
        ids = sorted({r.source_id for r in records})
        out: dict[str, list[str]] = defaultdict(list)
        for dependant, ref in entities.dependants(spec.name):
            pairs = self._dependant_ids(dependant, ref, ids)
            if not pairs:
                continue
            dependant_ids = sorted({d for _, d in pairs})
            versions: dict[str, datetime | None] = {}
            for start in range(0, len(dependant_ids), _IN_BATCH):
                batch = dependant_ids[start : start + _IN_BATCH]
                for found in self.warehouse.fetch(dependant, batch):
                    versions[found.source_id] = (
                        record_version(found) if found.problem is None else None
                    )
            rows = self.ledger.get_many(dependant.name, dependant_ids)
            for parent, child in sorted(set(pairs)):
                if child not in versions:
                    continue  # not extracted (inactive business, deleted): it will not be sent
                if _waiting_to_be_sent(rows.get(child), versions[child]):
                    out[parent].append(f"{dependant.label} {child}")
        return out

    def _dependant_ids(
        self, dependant: EntitySpec, ref: Ref, parent_ids: Sequence[str]
    ) -> list[tuple[str, str]]:
        """(parent id, dependant id) for every warehouse row of ``dependant`` naming a parent."""
        if ref.child is None:
            table, column, owner = dependant.table, ref.column, "id"
        else:
            child = next(c for c in dependant.children if c.key == ref.child)
            table, column, owner = child.table, ref.column, child.parent_column
        pairs: list[tuple[str, str]] = []
        with self.warehouse.engine.connect() as conn:
            for start in range(0, len(parent_ids), _IN_BATCH):
                rows = conn.execute(
                    select(table.c[column], table.c[owner]).where(
                        table.c[column].in_(parent_ids[start : start + _IN_BATCH])
                    )
                )
                pairs.extend((str(a), str(b)) for a, b in rows if a is not None and b is not None)
        return pairs

    async def _apply_waiting_terminals(self, run: _Run, owners: Sequence[EntitySpec]) -> None:
        """Make the void/archive of records left ``terminal_waiting`` whose dependants landed."""
        for owner in owners:
            if owner.terminal is None:
                continue
            waiting = self._waiting_terminal_rows(owner)
            if not waiting:
                continue
            own = owner.name == run.spec.name
            counts = (
                run.result if own else EntityRunResult(entity=owner.name, window=run.result.window)
            )
            for start in range(0, len(waiting), _IN_BATCH):
                rows = {r.source_id: r for r in waiting[start : start + _IN_BATCH]}
                records = [
                    r
                    for r in self.warehouse.fetch(owner, sorted(rows))
                    if r.problem is None
                    and _wants_terminal(owner, r)
                    and rows[r.source_id].confirmed_updated_at == record_version(r)
                ]
                blockers = self._terminal_blockers(owner, records)
                for record in records:
                    row = rows[record.source_id]
                    assert row.thred_id is not None
                    if blockers.get(record.source_id):
                        self._mark_waiting(
                            owner,
                            record.source_id,
                            record.business_id,
                            row.thred_id,
                            blockers[record.source_id],
                        )
                        continue
                    await self._late_terminal(run, owner, record, row, counts)
            if not own:
                run.result.late[owner.name].update(counts.counts)

    async def _late_terminal(
        self,
        run: _Run,
        owner: EntitySpec,
        record: SourceRecord,
        row: LedgerRow,
        counts: EntityRunResult,
    ) -> None:
        known = run.businesses.get(record.business_id)
        if known is not None and known.paused:
            return  # credentials refused this run: it stays waiting
        state = _BusinessState(record.business_id)
        state.thred_id = self.ledger.thred_ids("businesses", [record.business_id]).get(
            record.business_id
        )
        if state.thred_id is None:
            return
        job = self._job(run, owner, record, state)
        job.result = counts
        assert row.confirmed_hash is not None
        job.digest = row.confirmed_hash
        job.outcome_args["intended_hash"] = row.confirmed_hash
        try:
            assert row.thred_id is not None
            if await self._terminal(job, row.thred_id):
                self.ledger.record_synced(
                    entity=owner.name,
                    source_id=record.source_id,
                    thred_id=row.thred_id,
                    confirmed_hash=row.confirmed_hash,
                    confirmed_updated_at=job.version,
                    terminal_done=True,
                    confirmed_body=None,
                )
                counts.add(record.business_id, "terminal")
        except ThredConfigError:
            raise
        except Exception as exc:
            self._internal_error(job, exc)

    def _waiting_terminal_rows(self, spec: EntitySpec) -> list[LedgerRow]:
        t = ledger_table
        with self.ledger.engine.connect() as conn:
            ids = [
                str(r.source_id)
                for r in conn.execute(
                    select(t.c.source_id).where(
                        t.c.entity == spec.name,
                        t.c.status == Status.SYNCED.value,
                        t.c.error_code == TERMINAL_WAITING,
                        t.c.thred_id.is_not(None),
                    )
                )
            ]
        if not ids:
            return []
        rows = self.ledger.get_many(spec.name, ids)
        return [
            rows[i]
            for i in sorted(rows)
            if not rows[i].terminal_done and rows[i].confirmed_hash is not None
        ]

    # --- lifecycle states Thred has no call for ---------------------------------------------

    def _mark_warehouse_only(self, job: _Job) -> None:
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
        if value is not None and not marked:
            when = value.isoformat() if isinstance(value, datetime) else str(value)
            self.ledger.record_outcome(
                entity=spec.name,
                source_id=record.source_id,
                business_id=record.business_id,
                external_id=row.external_id,
                status=Status.SYNCED,
                error_code=state.code,
                error_message=(
                    f"{spec.label} {record.source_id}: {state.name} in the warehouse "
                    f"({state.column} {when}); Thred documents no call for it, so Thred still "
                    f"shows the {spec.label} as it was"
                ),
                error_details={state.column: [when]},
                thred_id=row.thred_id,
            )
        elif value is None and marked:
            self.ledger.touch_confirmed(spec.name, record.source_id, job.version)

    # --- drift -----------------------------------------------------------------------------

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

    # --- requests --------------------------------------------------------------------------

    async def _call(
        self,
        job: _Job,
        method: str,
        path: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        thred_id: str | None = None,
        duplicates_raise: bool = False,
        keep_if_refused: LedgerRow | None = None,
    ) -> ThredResponse | None:
        """One request; any failure is written to the ledger and ``None`` returned.

        ``duplicates_raise``: a 409 ``duplicate_external_id`` is raised for the caller to
        adopt the object. ``keep_if_refused``: the ledger row of a record Thred already holds
        at exactly this payload; a refusal (not transient, not auth) leaves it synced.
        """
        spec, state, result, sample = job.spec, job.state, job.result, job.sample
        business = None if spec.partner_scoped else state.thred_id
        business_id = job.record.business_id
        try:
            return await job.client.request(
                method, path, business_id=business, json=body, idempotency_key=idempotency_key
            )
        except ThredDuplicateExternalId as exc:
            if duplicates_raise:
                raise
            self._refused(job, thred_id, exc)
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
            if keep_if_refused is not None and keep_if_refused.thred_id is not None:
                # Thred holds this very payload (the ledger confirmed it) and refuses to take
                # it again (a payout reconciled in Thred): nothing to change, nothing invented.
                self._restore(job, keep_if_refused)
                result.add(
                    business_id, "unchanged", {**sample, "reason": f"re-send refused: {exc}"}
                )
                return None
            self._refused(job, thred_id, exc)
        return None

    def _refused(self, job: _Job, thred_id: str | None, exc: ThredError) -> None:
        self.ledger.record_outcome(
            **job.outcome_args,
            status=Status.REJECTED,
            error_code=exc.error_code or "rejected",
            error_message=f"{job.spec.label} {job.record.source_id}: {exc}",
            error_details=exc.details,
            thred_id=thred_id,
        )
        job.result.add(
            job.record.business_id,
            "rejected",
            {**job.sample, "code": exc.error_code, "reason": exc.message, "details": exc.details},
        )

    def _restore(self, job: _Job, prior: LedgerRow) -> None:
        assert prior.thred_id is not None and prior.confirmed_hash is not None
        self.ledger.record_synced(
            entity=job.spec.name,
            source_id=job.record.source_id,
            thred_id=prior.thred_id,
            confirmed_hash=prior.confirmed_hash,
            confirmed_updated_at=job.version,
            terminal_done=prior.terminal_done,
            confirmed_body=None,
        )

    def _path(
        self, spec: EntitySpec, template: str, state: _BusinessState, params: dict[str, str]
    ) -> str:
        relative = template.format(**params)
        if spec.partner_scoped:
            return relative
        return f"businesses/{state.thred_id}/{relative}"


def _wants_terminal(spec: EntitySpec, record: SourceRecord) -> bool:
    return bool(spec.terminal and record.row.get(spec.terminal.column) is not None)


def _waiting_to_be_sent(row: LedgerRow | None, version: datetime | None) -> bool:
    """A dependant Thred does not hold at its warehouse version yet, and that will be sent.

    Quarantined ones (rejected, drift) wait for a human, not for a send.
    """
    if row is None:
        return True
    if row.status in (Status.PENDING, Status.UNKNOWN, Status.DEFERRED):
        return True
    if row.status is Status.SYNCED:
        return version is None or row.confirmed_updated_at != version
    return False


def _terminal_owners(spec: EntitySpec) -> list[EntitySpec]:
    """Entities whose waiting terminals syncing ``spec`` may unblock (``spec`` is a dependant)."""
    return [
        owner
        for owner in entities.sync_order()
        if owner.terminal is not None
        and any(dependant.name == spec.name for dependant, _ in entities.dependants(owner.name))
    ]


async def _all(coros: Iterable[Awaitable[None]]) -> None:
    """Run concurrently; on the first failure cancel the others, then raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _aware(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    run: _Run
    version: datetime
    sample: dict[str, Any]
    outcome_args: dict[str, Any]
    mapped: Mapped | None = None
    body: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    wants_terminal: bool = False
    resend: bool = False  # refused earlier; re-sent because an upstream record changed
    blockers: tuple[str, ...] = ()  # dependants a terminal action waits for


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
    specs = entities.sync_order()
    if names is None:
        return specs
    wanted = set(names)
    return [s for s in specs if s.name in wanted]
