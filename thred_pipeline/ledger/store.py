"""Writing the ledger: intent before the request, outcome after it.

It is the heart of "exactly once": the intent (``pending`` + the hash about to be sent) is
committed before the request and the outcome after it, so a crash or a dropped connection
leaves evidence that the next run resolves by re-sending with the same external_id. No value
can make a write fail (see :mod:`thred_pipeline.ledger.keys`), so one bad warehouse row never
stops a run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL

from thred_pipeline.core.records import Status
from thred_pipeline.ledger.codes import LedgerCode
from thred_pipeline.ledger.connect import create_ledger_engine
from thred_pipeline.ledger.keys import bounded_code, bounded_message, ledger_key, now, storable
from thred_pipeline.ledger.reads import LedgerReader
from thred_pipeline.ledger.schema import (
    ID_COLUMNS,
    LEDGER_ID_LENGTH,
    WIDEN_SQL,
    ledger_table,
    metadata,
)

log = logging.getLogger("thred_pipeline.ledger")

RETRY_REQUESTED = LedgerCode.RETRY_REQUESTED.value  # error_code of rejected rows released


class SyncLedger(LedgerReader):
    """Durable per-record sync state. Every write commits on its own: write-ahead matters more
    than throughput, and a commit per record is cheap next to an HTTP round trip."""

    @classmethod
    def from_url(cls, url: str | URL) -> SyncLedger:
        """A ledger at ``url`` (``sqlite:///…``, ``postgresql://…``, ``postgresql+psycopg2://…``),
        its table created or widened as needed."""
        ledger = cls(create_ledger_engine(url))
        ledger.create_schema()
        return ledger

    def create_schema(self) -> None:
        """Create the table if missing; on PostgreSQL, widen id columns of an older ledger."""
        metadata.create_all(self.engine)
        if self.engine.dialect.name == "postgresql":
            self._widen_ids()

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
        at = now()
        values = _new_row(entity, source_id, business_id, external_id, at)
        values.update(
            status=Status.PENDING.value,
            intended_hash=intended_hash,
            source_updated_at=source_updated_at,
        )
        on_conflict = {
            "status": Status.PENDING.value,
            "intended_hash": intended_hash,
            "source_updated_at": source_updated_at,
            "attempts": ledger_table.c.attempts + 1,
            "status_since": at,
            "updated_at": at,
        }
        self._upsert(values, on_conflict)

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
    ) -> None:
        """Thred confirmed ``confirmed_hash``; ``confirmed_body=None`` keeps the stored body."""
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
        self._update(entity, source_id, **values)

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
        error = _stored_error(source_id, error_code, error_message, error_details)
        at = now()
        values = _new_row(entity, source_id, business_id, external_id, at)
        values.update(
            status=status.value,
            intended_hash=intended_hash,
            source_updated_at=source_updated_at,
            **error,
        )
        on_conflict: dict[str, Any] = {"status": status.value, **error, "updated_at": at}
        if intended_hash is not None or forget_intended:
            on_conflict["intended_hash"] = intended_hash
        if source_updated_at is not None:
            on_conflict["source_updated_at"] = source_updated_at
        if thred_id is not None:
            values["thred_id"] = on_conflict["thred_id"] = ledger_key(thred_id)
        self._upsert(values, on_conflict, keep_status_since_for=status)

    def touch_confirmed(self, entity: str, source_id: str, source_updated_at: datetime) -> None:
        """The warehouse row was re-saved without a change Thred would see: note the version.

        Thred holds exactly what the row says, so the row is ``synced`` again whatever it was
        (a drift that was reverted, a deferral resolved) and the old error is cleared.
        """
        self._update(
            entity,
            source_id,
            status=Status.SYNCED.value,
            source_updated_at=source_updated_at,
            confirmed_updated_at=source_updated_at,
            error_code=None,
            error_message=None,
            error_details=None,
        )

    def release_for_retry(
        self, entity: str | None = None, source_ids: Sequence[str] | None = None
    ) -> int:
        """On-demand quarantine retry: the next run re-sends these rejected records.

        They become ``unknown`` (re-sent first, whatever the run's window: a rejected row has
        usually not changed, so no window would pick it up) with the rejected hash forgotten;
        Thred's error is kept in the message until the outcome of the retry replaces it.
        """
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
                    error_code=RETRY_REQUESTED,
                    intended_hash=None,
                    status_since=at,
                    updated_at=at,
                )
            )
            return int(result.rowcount or 0)

    # --- internals -------------------------------------------------------------------------

    def _update(self, entity: str, source_id: str, **values: Any) -> None:
        """One UPDATE; ``status_since`` moves only if the status does (SET sees the old row)."""
        t = ledger_table
        at = now()
        status = values.get("status")
        if status is not None:
            values["status_since"] = case((t.c.status == status, t.c.status_since), else_=at)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(and_(t.c.entity == entity, t.c.source_id == ledger_key(source_id)))
                .values(updated_at=at, **values)
            )
            if not result.rowcount:
                raise KeyError(f"no ledger row for {entity} {source_id!r}")

    def _upsert(
        self,
        values: dict[str, Any],
        on_conflict: dict[str, Any],
        keep_status_since_for: Status | None = None,
    ) -> None:
        t = ledger_table
        if keep_status_since_for is not None:
            # status_since only moves when the status actually changes, so "deferred for 3 days"
            # stays true across runs that defer the same record again.
            on_conflict["status_since"] = case(
                (t.c.status == keep_status_since_for.value, t.c.status_since),
                else_=values["status_since"],
            )
        with self.engine.begin() as conn:
            _upsert_row(conn, values, on_conflict)


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


def _upsert_row(conn: Connection, values: dict[str, Any], on_conflict: dict[str, Any]) -> None:
    t = ledger_table
    key = [t.c.entity, t.c.source_id]
    dialect = conn.dialect.name
    if dialect == "postgresql":
        pg_stmt = pg_insert(t).values(**values)
        conn.execute(pg_stmt.on_conflict_do_update(index_elements=key, set_=on_conflict))
    elif dialect == "sqlite":
        lite_stmt = sqlite_insert(t).values(**values)
        conn.execute(lite_stmt.on_conflict_do_update(index_elements=key, set_=on_conflict))
    else:  # portable fallback: read then write inside one transaction
        where = (t.c.entity == values["entity"], t.c.source_id == values["source_id"])
        if conn.execute(select(t.c.status).where(*where)).first() is None:
            conn.execute(t.insert().values(**values))
        else:
            conn.execute(update(t).where(*where).values(**on_conflict))
