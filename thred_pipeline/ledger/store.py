"""Writing the ledger: intent before the request, outcome after it.

It is the heart of "exactly once": the intent (``pending`` + the hash about to be sent) is
committed before the request and the outcome after it, so a crash or a dropped connection
leaves evidence that the next run resolves by re-sending with the same external_id. A sync
writes a chunk's intents in one statement and holds outcomes back to write them in batches
(:meth:`SyncLedger.batched`): an outcome lost to a crash leaves ``pending``, resolved the same
way. No value can make a write fail (see :mod:`thred_pipeline.ledger.keys`), so one bad
warehouse row never stops a run.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Executable, inspect, text, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from thred_pipeline.core.records import Status
from thred_pipeline.ledger import statements
from thred_pipeline.ledger.codes import LedgerCode
from thred_pipeline.ledger.connect import create_ledger_engine
from thred_pipeline.ledger.keys import bounded_code, bounded_message, ledger_key, now, storable
from thred_pipeline.ledger.reads import LedgerReader
from thred_pipeline.ledger.schema import (
    ADD_SQL,
    ID_COLUMNS,
    LEDGER_ID_LENGTH,
    WIDEN_SQL,
    ledger_table,
    metadata,
)

log = logging.getLogger("thred_pipeline.ledger")

FLUSH_EVERY = 200  # outcomes held back at most, inside SyncLedger.batched()


@dataclass(frozen=True)
class Intent:
    """A request about to leave for one record: the hash of the payload it carries."""

    entity: str
    source_id: str
    business_id: str
    external_id: str
    intended_hash: str


class SyncLedger(LedgerReader):
    """Durable per-record sync state. Intents commit before their requests leave; outcomes
    commit at once, or in batches inside :meth:`batched` (a sync's chunks)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._held = threading.local()  # each thread's outcomes held back (batched())

    @classmethod
    def from_url(cls, url: str | URL) -> SyncLedger:
        """A ledger at ``url`` (``sqlite:///…``, ``postgresql://…``, ``postgresql+psycopg2://…``),
        its table created or widened as needed."""
        ledger = cls(create_ledger_engine(url))
        ledger.create_schema()
        return ledger

    def create_schema(self) -> None:
        """Create the table if missing, add the columns an older ledger lacks; on PostgreSQL,
        widen its id columns."""
        metadata.create_all(self.engine)
        self._add_columns()
        if self.engine.dialect.name == "postgresql":
            self._widen_ids()

    def _add_columns(self) -> None:
        missing = [name for name in ADD_SQL if name not in self._columns()]
        for name in missing:
            try:
                with self.engine.begin() as conn:
                    conn.execute(text(ADD_SQL[name]))
            except DBAPIError:
                if name not in self._columns():  # not another process adding it first
                    raise
        if missing:
            log.info("ledger: added %s", ", ".join(missing))

    def _columns(self) -> set[str]:
        return {c["name"] for c in inspect(self.engine).get_columns(ledger_table.name)}

    def _widen_ids(self) -> None:
        columns = {
            c["name"]: c["type"] for c in inspect(self.engine).get_columns(ledger_table.name)
        }
        narrow = [
            name
            for name in ID_COLUMNS
            if (getattr(columns.get(name), "length", None) or LEDGER_ID_LENGTH) < LEDGER_ID_LENGTH
        ]
        if not narrow:
            return
        with self.engine.begin() as conn:
            for name in narrow:
                conn.execute(text(WIDEN_SQL[name]))
        log.info("ledger: widened %s to varchar(%d)", ", ".join(narrow), LEDGER_ID_LENGTH)

    def record_intent(
        self,
        *,
        entity: str,
        source_id: str,
        business_id: str,
        external_id: str,
        intended_hash: str,
        source_updated_at: datetime,
    ) -> None:
        """Write-ahead: committed before the request leaves, so a crash leaves ``pending``."""
        intent = Intent(entity, source_id, business_id, external_id, intended_hash)
        self.record_intents([(intent, source_updated_at)])

    def record_intents(self, intents: Sequence[tuple[Intent, datetime]]) -> None:
        """Write-ahead for many records in one statement, committed before it returns (so
        before any of their requests leaves); outcomes held back are written first."""
        if not intents:
            return
        self.flush()
        at = now()
        rows = []
        for intent, version in intents:
            row = _new_row(
                intent.entity, intent.source_id, intent.business_id, intent.external_id, at
            )
            row.update(
                status=Status.PENDING.value,
                intended_hash=intent.intended_hash,
                source_updated_at=version,
            )
            rows.append(row)
        copied = ("intended_hash", "source_updated_at")
        stmt = statements.upsert(self._dialect, copied, attempt=True, keep_since=False)
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def record_synced(
        self,
        *,
        entity: str,
        source_id: str,
        thred_id: str,
        confirmed_hash: str,
        confirmed_updated_at: datetime,
        terminal_done: bool,
        confirmed_body: Mapping[str, Any] | None,
        inputs: tuple[str, int] | None = None,
    ) -> None:
        """Thred confirmed ``confirmed_hash``; ``confirmed_body=None`` keeps the stored body;
        ``inputs``: the bound inputs hash and the amount of the mapping that made the payload.

        Held back in a :meth:`batched` block: a crash before it is written leaves the intent's
        ``pending``, which the next run re-sends with the same external_id (Thred answers with
        the object it holds). A void/archive is written at once: it is not re-sent safely.
        """
        values: dict[str, Any] = {
            "status": Status.SYNCED.value,
            "thred_id": ledger_key(thred_id),
            "confirmed_hash": confirmed_hash,
            "confirmed_updated_at": confirmed_updated_at,
            "terminal_done": terminal_done,
            "attempts": 0,
            "error_code": None,
            "error_message": None,
            "error_details": None,
            "synced_at": now(),
        }
        if confirmed_body is not None:
            values["confirmed_body"] = json.dumps(dict(confirmed_body), sort_keys=True, default=str)
        if inputs is not None:
            values["inputs_hash"], values["mapped_amount_cents"] = inputs
        self._update(entity, source_id, values, at_once=terminal_done)

    def note_inputs(self, entity: str, source_id: str, inputs: tuple[str, int]) -> None:
        """A record mapped to the payload Thred holds: keep what it was mapped from (the row
        stays as it is otherwise), so the next run need not map it to know."""
        values = {"inputs_hash": inputs[0], "mapped_amount_cents": inputs[1]}
        self._update(entity, source_id, values)

    def record_outcome(
        self,
        *,
        entity: str,
        source_id: str,
        business_id: str,
        external_id: str,
        status: Status,
        error_code: str | None,
        error_message: str,
        error_details: Mapping[str, Any] | None = None,
        intended_hash: str | None = None,
        source_updated_at: datetime | None = None,
        thred_id: str | None = None,
        forget_intended: bool = False,
    ) -> None:
        """Unknown, deferred, rejected or drift, with the reason a human needs to act on it.

        ``None`` arguments keep what the row holds; ``forget_intended`` clears the intended
        hash instead (a payload that never reached Thred must not look like one it refused).
        """
        row = _new_row(entity, source_id, business_id, external_id, now())
        row.update(
            status=status.value,
            intended_hash=intended_hash,
            source_updated_at=source_updated_at,
            thred_id=None if thred_id is None else ledger_key(thred_id),
            **_stored_error(source_id, error_code, error_message, error_details),
        )
        copied = [*statements.ERROR_COLUMNS]
        if intended_hash is not None or forget_intended:
            copied.append("intended_hash")
        if source_updated_at is not None:
            copied.append("source_updated_at")
        if thred_id is not None:
            copied.append("thred_id")
        stmt = statements.upsert(self._dialect, tuple(copied), attempt=False, keep_since=True)
        self._write((entity, row["source_id"]), stmt, row, checked=False)

    def touch_confirmed(self, entity: str, source_id: str, source_updated_at: datetime) -> None:
        """The warehouse row was re-saved without a change Thred would see: note the version.

        Thred holds exactly what the row says, so the row is ``synced`` again whatever it was
        (a drift that was reverted, a deferral resolved) and the old error is cleared.
        """
        values = {
            "status": Status.SYNCED.value,
            "source_updated_at": source_updated_at,
            "confirmed_updated_at": source_updated_at,
            "error_code": None,
            "error_message": None,
            "error_details": None,
        }
        self._update(entity, source_id, values)

    def release_for_retry(
        self, entity: str | None = None, source_ids: Sequence[str] | None = None
    ) -> int:
        """On-demand quarantine retry: the next run re-sends these rejected records.

        They become ``unknown`` (re-sent first, whatever the run's window: a rejected row has
        usually not changed, so no window would pick it up) with the rejected hash forgotten;
        Thred's error is kept in the message until the outcome of the retry replaces it.
        """
        self.flush()
        t = ledger_table
        at = now()
        query = update(t).where(t.c.status == Status.REJECTED.value)
        if entity is not None:
            query = query.where(t.c.entity == entity)
        if source_ids is not None:
            query = query.where(t.c.source_id.in_([ledger_key(i) for i in source_ids]))
        with self.engine.begin() as conn:
            result = conn.execute(
                query.values(
                    status=Status.UNKNOWN.value,
                    error_code=LedgerCode.RETRY_REQUESTED,
                    intended_hash=None,
                    status_since=at,
                    updated_at=at,
                )
            )
            return int(result.rowcount or 0)

    # --- internals -------------------------------------------------------------------------

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Hold outcomes back and write them many at a time (every ``FLUSH_EVERY``, before any
        read or intent, and when the block ends, even by an exception)."""
        if getattr(self._held, "pending", None) is not None:
            yield
            return
        self._held.pending = _Pending()
        try:
            yield
        finally:
            try:
                self.flush()
            finally:
                self._held.pending = None

    def flush(self) -> None:
        """Write the outcomes held back, in one transaction."""
        pending = getattr(self._held, "pending", None)
        if pending is None or not pending.keys:
            return
        groups, checked = pending.take()
        self._execute(groups, checked)

    def _before_read(self) -> None:
        self.flush()

    def _update(
        self, entity: str, source_id: str, values: dict[str, Any], *, at_once: bool = False
    ) -> None:
        params = {f"v_{name}": value for name, value in values.items()}
        params.update(k_entity=entity, k_source_id=ledger_key(source_id), v_at=now())
        stmt = statements.update_row(tuple(values))
        key = (entity, params["k_source_id"])
        if at_once:
            self.flush()
            self._execute({stmt: [params]}, {stmt})
        else:
            self._write(key, stmt, params, checked=True)

    def _write(
        self, key: tuple[str, str], stmt: Executable, params: dict[str, Any], *, checked: bool
    ) -> None:
        """Write now, or hold back inside :meth:`batched` (a row held twice is written first)."""
        pending = getattr(self._held, "pending", None)
        if pending is None:
            self._execute({stmt: [params]}, {stmt} if checked else set())
            return
        if key in pending.keys:
            self.flush()
        pending.add(key, stmt, params, checked=checked)
        if len(pending.keys) >= FLUSH_EVERY:
            self.flush()

    def _execute(
        self, groups: dict[Executable, list[dict[str, Any]]], checked: set[Executable]
    ) -> None:
        """Each statement once over its rows; an UPDATE that met no row names what is missing."""
        with self.engine.begin() as conn:
            for stmt, rows in groups.items():
                result = conn.execute(stmt, rows)
                if stmt in checked and _missed(conn, result.rowcount, len(rows)):
                    names = ", ".join(f"{r['k_entity']} {r['k_source_id']!r}" for r in rows[:5])
                    raise KeyError(f"no ledger row for {names}")

    @property
    def _dialect(self) -> str:
        return str(self.engine.dialect.name)


class _Pending:
    """Outcomes held back, grouped by statement; each row at most once."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, str]] = set()
        self.groups: dict[Executable, list[dict[str, Any]]] = {}
        self.checked: set[Executable] = set()

    def add(
        self, key: tuple[str, str], stmt: Executable, params: dict[str, Any], *, checked: bool
    ) -> None:
        self.keys.add(key)
        self.groups.setdefault(stmt, []).append(params)
        if checked:
            self.checked.add(stmt)

    def take(self) -> tuple[dict[Executable, list[dict[str, Any]]], set[Executable]]:
        groups, checked = self.groups, self.checked
        self.keys, self.groups, self.checked = set(), {}, set()
        return groups, checked


def _missed(conn: Connection, rowcount: int | None, rows: int) -> bool:
    """Fewer rows updated than asked (where the driver counts an executemany's rows)."""
    if rows > 1 and not conn.dialect.supports_sane_multi_rowcount:
        return False
    return (rowcount or 0) < rows


def _new_row(
    entity: str, source_id: str, business_id: str, external_id: str, at: datetime
) -> dict[str, Any]:
    """The columns of a row met for the first time (stored ids, first attempt)."""
    return {
        "entity": entity,
        "source_id": ledger_key(source_id),
        "business_id": ledger_key(business_id),
        "external_id": ledger_key(external_id),
        "terminal_done": False,
        "attempts": 1,
        "first_seen_at": at,
        "status_since": at,
        "updated_at": at,
    }


def _stored_error(
    source_id: str,
    error_code: str | None,
    error_message: str,
    error_details: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The error columns as stored: code bounded, message bounded but naming a long id."""
    details = (
        storable(json.dumps(dict(error_details), sort_keys=True, default=str))
        if error_details
        else None
    )
    code, full_code = bounded_code(None if error_code is None else str(error_code))
    if full_code is not None:
        error_message = f"{error_message} (error_code {full_code!r})"
    long_id = ledger_key(source_id) != source_id
    if long_id and source_id not in error_message:
        error_message = f"id {source_id}: {error_message}"
    message = bounded_message(error_message, keep=source_id if long_id else "")
    return {"error_code": code, "error_message": message, "error_details": details}
