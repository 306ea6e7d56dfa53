"""The sync ledger: one row per (entity, source id) recording what Thred has confirmed.

It is the heart of "exactly once": the intent (``pending`` + the hash about to be sent) is
committed before the request and the outcome after it, so a crash or a dropped connection
leaves evidence that the next run resolves by re-sending with the same external_id. Works on
PostgreSQL (production) and SQLite (embedded default) through SQLAlchemy Core.

No value can make a ledger write fail, so one bad warehouse row never stops a run:

- ids (``source_id``, ``business_id``, ``external_id``, ``thred_id``) are stored as they are up
  to ``LEDGER_ID_LENGTH`` characters — far more than any id that can become a Thred
  external_id (255). A longer id (only ever a record quarantined for it) is stored as
  :func:`ledger_key`: its start plus a SHA-256 digest, bounded and unique; every method takes
  and returns the caller's full ids, and the full id stays in the error message.
- ``error_code`` is bounded to ``ERROR_CODE_LENGTH`` (a longer code from Thred is shortened
  with a digest, and quoted in full in the message).
- Text PostgreSQL cannot store (NUL characters, lone surrogates) is escaped.

Ledgers created before the ids were widened (VARCHAR 128/255) are widened by
:meth:`SyncLedger.create_schema` on PostgreSQL (``ALTER TABLE thred_sync_ledger ALTER COLUMN
source_id TYPE varchar(512)``, and the same for business_id, external_id, thred_id); SQLite does
not enforce lengths.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from thred_pipeline.core.records import Status

log = logging.getLogger(__name__)

metadata = MetaData()

# Longest id stored as it is. Thred's external_id is at most 255 characters, prefix included, so
# every id that can be synced fits, with room; (entity, source_id) stays well inside
# PostgreSQL's btree entry limit even in 4-byte UTF-8.
LEDGER_ID_LENGTH = 512
ERROR_CODE_LENGTH = 64
ERROR_MESSAGE_LENGTH = 4000  # longer messages are cut (never cutting the record's full id)
_DIGEST_MARK = "...sha256:"
ID_COLUMNS = ("source_id", "business_id", "external_id", "thred_id")
# Widening an older PostgreSQL ledger: one literal statement per column, so no SQL text is
# ever assembled at run time (test_security checks the package for that).
WIDEN_SQL = {
    "source_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN source_id TYPE varchar(512)",
    "business_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN business_id TYPE varchar(512)",
    "external_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN external_id TYPE varchar(512)",
    "thred_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN thred_id TYPE varchar(512)",
}

ledger_table = Table(
    "thred_sync_ledger",
    metadata,
    Column("entity", String(64), primary_key=True),
    Column("source_id", String(LEDGER_ID_LENGTH), primary_key=True),
    Column("business_id", String(LEDGER_ID_LENGTH), nullable=False),
    Column("external_id", String(LEDGER_ID_LENGTH), nullable=False),
    Column("thred_id", String(LEDGER_ID_LENGTH)),
    Column("status", String(16), nullable=False),
    Column("intended_hash", String(64)),  # hash of the payload last attempted
    Column("confirmed_hash", String(64)),  # hash of the payload Thred confirmed
    Column("terminal_done", Boolean, nullable=False, default=False),  # voided / archived
    Column("source_updated_at", DateTime(timezone=True)),  # warehouse version last seen
    Column("confirmed_updated_at", DateTime(timezone=True)),  # warehouse version Thred holds
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_code", String(ERROR_CODE_LENGTH)),
    Column("error_message", Text),
    Column("error_details", Text),  # JSON
    Column("confirmed_body", Text),  # JSON of the payload Thred confirmed, to explain drift
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("status_since", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("synced_at", DateTime(timezone=True)),
)
Index("ix_ledger_entity_status", ledger_table.c.entity, ledger_table.c.status)
Index("ix_ledger_entity_business", ledger_table.c.entity, ledger_table.c.business_id)

RETRY_FIRST = (Status.PENDING, Status.UNKNOWN)  # uncertain outcomes: resolve before new work
RETRY_EVERY_RUN = (Status.PENDING, Status.UNKNOWN, Status.DEFERRED)
RETRY_REQUESTED = "retry_requested"  # error_code of rejected rows released for retry


@dataclass(frozen=True)
class LedgerRow:
    entity: str
    source_id: str
    business_id: str
    external_id: str
    thred_id: str | None
    status: Status
    intended_hash: str | None
    confirmed_hash: str | None
    terminal_done: bool
    source_updated_at: datetime | None
    confirmed_updated_at: datetime | None
    attempts: int
    error_code: str | None
    error_message: str | None
    error_details: dict[str, Any] | None
    first_seen_at: datetime
    status_since: datetime
    synced_at: datetime | None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> LedgerRow:
        details = row["error_details"]
        return cls(
            entity=row["entity"],
            source_id=row["source_id"],
            business_id=row["business_id"],
            external_id=row["external_id"],
            thred_id=row["thred_id"],
            status=Status(row["status"]),
            intended_hash=row["intended_hash"],
            confirmed_hash=row["confirmed_hash"],
            terminal_done=bool(row["terminal_done"]),
            source_updated_at=_aware(row["source_updated_at"]),
            confirmed_updated_at=_aware(row["confirmed_updated_at"]),
            attempts=int(row["attempts"]),
            error_code=row["error_code"],
            error_message=row["error_message"],
            error_details=json.loads(details) if details else None,
            first_seen_at=_aware(row["first_seen_at"]) or _now(),
            status_since=_aware(row["status_since"]) or _now(),
            synced_at=_aware(row["synced_at"]),
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _storable(text: str) -> str:
    """``text`` with what PostgreSQL cannot store escaped: NUL characters, lone surrogates."""
    if text.isascii() and "\x00" not in text:
        return text
    clean = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return clean.replace("\x00", "\\x00")


def ledger_key(value: str) -> str:
    """How an id is stored: as it is when it fits ``LEDGER_ID_LENGTH`` and is storable, else
    its (escaped) start plus the SHA-256 of the full id — bounded, unique and stable."""
    clean = _storable(value)
    if clean == value and len(value) <= LEDGER_ID_LENGTH:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    keep = LEDGER_ID_LENGTH - len(_DIGEST_MARK) - len(digest) - 8
    return f"{clean[:keep]}{_DIGEST_MARK}{digest}"


def _bounded_code(code: str | None) -> tuple[str | None, str | None]:
    """(error_code as stored, the full code when it had to be shortened)."""
    if code is None:
        return None, None
    clean = _storable(code)
    if clean == code and len(code) <= ERROR_CODE_LENGTH:
        return code, None
    digest = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{clean[: ERROR_CODE_LENGTH - 9]}~{digest}", code


def _message(message: str, keep: str = "") -> str:
    """A storable message, cut to ``ERROR_MESSAGE_LENGTH`` unless that would cut ``keep``."""
    limit = max(ERROR_MESSAGE_LENGTH, len(keep) + 200)
    return _storable(message[:limit])


def ledger_url(url: str | URL) -> URL:
    """The ledger URL, parsed without echoing it (it may hold a password); ``postgresql://``
    and ``postgres://`` are pinned to psycopg2, the driver that is installed."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):  # a bad port is a ValueError
        raise ValueError(
            "THRED_LEDGER_URL is not a valid SQLAlchemy URL (value hidden); expected e.g. "
            "sqlite:///path/ledger.db or postgresql://user:***@host:5432/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def create_ledger_engine(url: str | URL) -> Engine:
    """An engine for the ledger; SQLite gets WAL and a busy timeout so readers never block."""
    parsed = ledger_url(url)
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(parsed, pool_pre_ping=True)


class SyncLedger:
    """Durable per-record sync state. Every write commits on its own: write-ahead matters more
    than throughput, and a commit per record is cheap next to an HTTP round trip."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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

    # --- reads -----------------------------------------------------------------------------

    def get_many(self, entity: str, source_ids: Iterable[str]) -> dict[str, LedgerRow]:
        """Rows by the caller's source ids (an over-long id's row says its full id too)."""
        keys = {ledger_key(i): i for i in dict.fromkeys(source_ids)}
        ids = list(keys)
        found: dict[str, LedgerRow] = {}
        t = ledger_table
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    select(t).where(t.c.entity == entity, t.c.source_id.in_(chunk))
                ).mappings()
                for row in rows:
                    full = keys[row["source_id"]]
                    found[full] = replace(LedgerRow.from_mapping(row), source_id=full)
        return found

    def get(self, entity: str, source_id: str) -> LedgerRow | None:
        return self.get_many(entity, [source_id]).get(source_id)

    def thred_ids(self, entity: str, source_ids: Iterable[str]) -> dict[str, str]:
        """Thred ids of records that exist in Thred (synced, drift, or created then rejected)."""
        keys = {ledger_key(i): i for i in dict.fromkeys(source_ids) if i}
        ids = list(keys)
        out: dict[str, str] = {}
        t = ledger_table
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    select(t.c.source_id, t.c.thred_id).where(
                        t.c.entity == entity, t.c.source_id.in_(chunk), t.c.thred_id.is_not(None)
                    )
                )
                out.update({keys[r.source_id]: r.thred_id for r in rows})
        return out

    def source_ids_with_status(
        self, entity: str, statuses: Sequence[Status], business_id: str | None = None
    ) -> list[str]:
        """Stored source ids (an id longer than ``LEDGER_ID_LENGTH`` comes back as its key)."""
        t = ledger_table
        query = select(t.c.source_id).where(
            t.c.entity == entity, t.c.status.in_([s.value for s in statuses])
        )
        if business_id is not None:
            query = query.where(t.c.business_id == ledger_key(business_id))
        with self.engine.connect() as conn:
            return [r.source_id for r in conn.execute(query.order_by(t.c.source_id))]

    def iter_rows(
        self,
        entity: str | None = None,
        *,
        statuses: Sequence[Status] | None = None,
        business_id: str | None = None,
    ) -> Iterator[LedgerRow]:
        t = ledger_table
        query = select(t)
        if entity is not None:
            query = query.where(t.c.entity == entity)
        if statuses is not None:
            query = query.where(t.c.status.in_([s.value for s in statuses]))
        if business_id is not None:
            query = query.where(t.c.business_id == ledger_key(business_id))
        with self.engine.connect() as conn:
            for row in conn.execute(query.order_by(t.c.entity, t.c.source_id)).mappings():
                yield LedgerRow.from_mapping(row)

    def status_counts(
        self, entity: str | None = None, business_id: str | None = None
    ) -> dict[str, int]:
        t = ledger_table
        query = select(t.c.status, func.count()).group_by(t.c.status)
        if entity is not None:
            query = query.where(t.c.entity == entity)
        if business_id is not None:
            query = query.where(t.c.business_id == ledger_key(business_id))
        counts = {s.value: 0 for s in Status}
        with self.engine.connect() as conn:
            for status, n in conn.execute(query):
                counts[status] = int(n)
        return counts

    def created_counts(self, entity: str) -> dict[str, int]:
        """Per business, how many records of the entity exist in Thred by our account."""
        t = ledger_table
        query = (
            select(t.c.business_id, func.count())
            .where(t.c.entity == entity, t.c.thred_id.is_not(None))
            .group_by(t.c.business_id)
        )
        with self.engine.connect() as conn:
            return {b: int(n) for b, n in conn.execute(query)}

    # --- writes ----------------------------------------------------------------------------

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
        now = _now()
        t = ledger_table
        values = {
            "entity": entity,
            "source_id": ledger_key(source_id),
            "business_id": ledger_key(business_id),
            "external_id": ledger_key(external_id),
            "status": Status.PENDING.value,
            "intended_hash": intended_hash,
            "terminal_done": False,
            "source_updated_at": source_updated_at,
            "attempts": 1,
            "first_seen_at": now,
            "status_since": now,
            "updated_at": now,
        }
        on_conflict = {
            "status": Status.PENDING.value,
            "intended_hash": intended_hash,
            "source_updated_at": source_updated_at,
            "attempts": t.c.attempts + 1,
            "status_since": now,
            "updated_at": now,
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
            "synced_at": _now(),
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
        now = _now()
        details = (
            _storable(json.dumps(dict(error_details), sort_keys=True, default=str))
            if error_details
            else None
        )
        code, full_code = _bounded_code(error_code)
        if full_code is not None:
            error_message = f"{error_message} (error_code {full_code!r})"
        key = ledger_key(source_id)
        if key != source_id and source_id not in error_message:
            error_message = f"id {source_id}: {error_message}"
        message = _message(error_message, keep=source_id if key != source_id else "")
        values: dict[str, Any] = {
            "entity": entity,
            "source_id": key,
            "business_id": ledger_key(business_id),
            "external_id": ledger_key(external_id),
            "status": status.value,
            "intended_hash": intended_hash,
            "terminal_done": False,
            "source_updated_at": source_updated_at,
            "attempts": 1,
            "error_code": code,
            "error_message": message,
            "error_details": details,
            "first_seen_at": now,
            "status_since": now,
            "updated_at": now,
        }
        on_conflict: dict[str, Any] = {
            "status": status.value,
            "error_code": code,
            "error_message": message,
            "error_details": details,
            "updated_at": now,
        }
        if intended_hash is not None or forget_intended:
            on_conflict["intended_hash"] = intended_hash
        if source_updated_at is not None:
            on_conflict["source_updated_at"] = source_updated_at
        if thred_id is not None:
            values["thred_id"] = ledger_key(thred_id)
            on_conflict["thred_id"] = ledger_key(thred_id)
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

    def confirmed_body(self, entity: str, source_id: str) -> dict[str, Any] | None:
        t = ledger_table
        with self.engine.connect() as conn:
            raw = conn.execute(
                select(t.c.confirmed_body).where(
                    t.c.entity == entity, t.c.source_id == ledger_key(source_id)
                )
            ).scalar_one_or_none()
        return json.loads(raw) if raw else None

    def release_for_retry(
        self, entity: str | None = None, source_ids: Sequence[str] | None = None
    ) -> int:
        """On-demand quarantine retry: the next run re-sends these rejected records.

        They become ``unknown`` (re-sent first, whatever the run's window: a rejected row has
        usually not changed, so no window would pick it up) with the rejected hash forgotten;
        Thred's error is kept in the message until the outcome of the retry replaces it.
        """
        t = ledger_table
        now = _now()
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
                    status_since=now,
                    updated_at=now,
                )
            )
            return int(result.rowcount or 0)

    # --- internals -------------------------------------------------------------------------

    def _update(self, entity: str, source_id: str, **values: Any) -> None:
        """One UPDATE; ``status_since`` moves only if the status does (SET sees the old row)."""
        t = ledger_table
        now = _now()
        status = values.get("status")
        if status is not None:
            values["status_since"] = case((t.c.status == status, t.c.status_since), else_=now)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(and_(t.c.entity == entity, t.c.source_id == ledger_key(source_id)))
                .values(updated_at=now, **values)
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
        dialect = self.engine.dialect.name
        with self.engine.begin() as conn:
            if dialect == "postgresql":
                pg_stmt = pg_insert(t).values(**values)
                conn.execute(
                    pg_stmt.on_conflict_do_update(
                        index_elements=[t.c.entity, t.c.source_id], set_=on_conflict
                    )
                )
            elif dialect == "sqlite":
                lite_stmt = sqlite_insert(t).values(**values)
                conn.execute(
                    lite_stmt.on_conflict_do_update(
                        index_elements=[t.c.entity, t.c.source_id], set_=on_conflict
                    )
                )
            else:  # portable fallback: read then write inside one transaction
                exists = conn.execute(
                    select(t.c.status).where(
                        t.c.entity == values["entity"], t.c.source_id == values["source_id"]
                    )
                ).first()
                if exists is None:
                    conn.execute(t.insert().values(**values))
                else:
                    conn.execute(
                        update(t)
                        .where(t.c.entity == values["entity"], t.c.source_id == values["source_id"])
                        .values(**on_conflict)
                    )
