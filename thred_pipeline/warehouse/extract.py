"""Streaming extraction of changed warehouse rows, in chunks, with their child rows attached.

Memory is bounded by the chunk size, not by the window: the parent query is streamed (a
server-side cursor on PostgreSQL, incremental ``fetchmany`` on SQLite), and children are loaded
per chunk with one ``IN`` query per child table. A record is "changed" in a window when its own
``updated_at`` is in it *or* any child row's is: platforms do not always bump the parent when a
line item or an allocation changes, and a missed child change would silently leave Thred stale.

One extraction runs in one read-only transaction (REPEATABLE READ on PostgreSQL, a WAL snapshot
on SQLite), so a chunk's children are from the same snapshot as its parents. Nothing here
writes: a role with SELECT on the contract tables is enough.

Timestamps: SQLite stores the naive UTC text SQLAlchemy writes and compares it as text, so bind
values must be naive UTC there; PostgreSQL ``timestamptz`` needs aware values. Every datetime
that leaves this module is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from pydantic import SecretStr
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Engine,
    Numeric,
    Select,
    Table,
    and_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.types import NullType

from thred_pipeline.sync.records import SourceRecord, TimeWindow, utc
from thred_pipeline.warehouse.db import create_warehouse_engine, is_postgresql, safe_url
from thred_pipeline.warehouse.schema import businesses

__all__ = ["DEFAULT_CHUNK_SIZE", "IN_BATCH_SIZE", "ChildLike", "EntityLike", "Warehouse"]

DEFAULT_CHUNK_SIZE = 500
# Ids per IN (...) list: well under SQLite's historical 999-parameter limit.
IN_BATCH_SIZE = 500


class ChildLike(Protocol):
    """What extraction needs from ``entities.Child``."""

    @property
    def key(self) -> str: ...
    @property
    def table(self) -> Table: ...
    @property
    def parent_column(self) -> str: ...
    @property
    def order_by(self) -> str: ...


class EntityLike(Protocol):
    """What extraction needs from ``entities.EntitySpec`` (kept structural: no import cycle)."""

    @property
    def name(self) -> str: ...
    @property
    def table(self) -> Table: ...
    @property
    def children(self) -> Sequence[ChildLike]: ...


class Warehouse:
    """Read access to a warehouse that follows the contract in ``warehouse/schema.py``."""

    def __init__(self, engine: Engine | str | URL | SecretStr) -> None:
        self._owns_engine = not isinstance(engine, Engine)
        self.engine: Engine = (
            engine if isinstance(engine, Engine) else create_warehouse_engine(engine)
        )

    def __repr__(self) -> str:
        return f"Warehouse({safe_url(self.engine)})"

    def close(self) -> None:
        """Release pooled connections if this object created the engine."""
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- extraction ---------------------------------------------------------------------------

    def iter_changed(
        self,
        spec: EntityLike,
        window: TimeWindow,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Generator[list[SourceRecord], None, None]:
        """Records of ``spec`` changed in ``[window.start, window.end)``, streamed in chunks.

        Ordered by business_id, updated_at, id. The transaction stays open while the caller
        consumes the iterator; closing the iterator early releases it.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        table = spec.table
        start, end = self._bind_time(window.start), self._bind_time(window.end)
        changed: list[ColumnElement[bool]] = [
            and_(table.c.updated_at >= start, table.c.updated_at < end)
        ]
        for child in spec.children:
            child_table = child.table
            changed.append(
                table.c.id.in_(
                    select(child_table.c[child.parent_column]).where(
                        child_table.c.updated_at >= start, child_table.c.updated_at < end
                    )
                )
            )
        stmt = self._ordered(
            select(*lenient_columns(self.engine, table)).where(or_(*changed)), table
        )
        with self._read() as conn:
            # Per statement, not per connection: the child queries stay plain buffered reads.
            streaming = {"stream_results": True, "yield_per": chunk_size}
            with conn.execute(stmt, execution_options=streaming) as result:
                for partition in result.mappings().partitions(chunk_size):
                    rows = [_plain(row, table) for row in partition]
                    yield self._records(conn, spec, rows)

    def fetch(self, spec: EntityLike, source_ids: Sequence[str]) -> list[SourceRecord]:
        """Records of ``spec`` by id, whatever their updated_at (to retry deferred records).

        Ids not in the warehouse are simply absent from the result; duplicates are ignored.
        """
        wanted = list(dict.fromkeys(str(source_id) for source_id in source_ids))
        table = spec.table
        found: list[SourceRecord] = []
        with self._read() as conn:
            for batch in _batches(wanted, IN_BATCH_SIZE):
                query = select(*lenient_columns(self.engine, table)).where(table.c.id.in_(batch))
                stmt = self._ordered(query, table)
                rows = [_plain(row, table) for row in conn.execute(stmt).mappings()]
                found.extend(self._records(conn, spec, rows))
        found.sort(key=lambda r: (r.business_id, r.updated_at, r.source_id))
        return found

    def business_ids(self, *, active_only: bool = True) -> list[str]:
        """Ids of the businesses (tenants) in the warehouse, sorted."""
        stmt = select(businesses.c.id).order_by(businesses.c.id)
        if active_only:
            stmt = stmt.where(businesses.c.is_active.is_(True))
        with self._read() as conn:
            return [str(value) for value in conn.execute(stmt).scalars()]

    def business(self, business_id: str) -> dict[str, Any] | None:
        """One business row (timestamps as aware UTC), or None if unknown."""
        stmt = select(businesses).where(businesses.c.id == business_id)
        with self._read() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else _plain(row, businesses)

    # -- internals ----------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if is_postgresql(self.engine):
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn

    def _bind_time(self, value: datetime) -> datetime:
        aware = utc(value)
        return aware if is_postgresql(self.engine) else aware.replace(tzinfo=None)

    @staticmethod
    def _ordered(stmt: Select[Any], table: Table) -> Select[Any]:
        if "business_id" in table.c:
            return stmt.order_by(table.c.business_id, table.c.updated_at, table.c.id)
        return stmt.order_by(table.c.id)

    def _records(
        self, conn: Connection, spec: EntityLike, rows: list[dict[str, Any]]
    ) -> list[SourceRecord]:
        ids = [row["id"] for row in rows]
        children: dict[str, dict[Any, list[dict[str, Any]]]] = {}
        for child in spec.children:
            children[child.key] = self._children(conn, child, ids, self.engine)
        owner_column = "business_id" if "business_id" in spec.table.c else "id"
        return [
            SourceRecord(
                entity=spec.name,
                source_id=str(row["id"]),
                business_id=str(row[owner_column]),
                updated_at=row["updated_at"],
                row=row,
                children={key: by_parent.get(row["id"], []) for key, by_parent in children.items()},
            )
            for row in rows
        ]

    @staticmethod
    def _children(
        conn: Connection, child: ChildLike, parent_ids: Sequence[Any], engine: Engine
    ) -> dict[Any, list[dict[str, Any]]]:
        table = child.table
        parent = table.c[child.parent_column]
        grouped: dict[Any, list[dict[str, Any]]] = {}
        for batch in _batches(parent_ids, IN_BATCH_SIZE):
            stmt = (
                select(*lenient_columns(engine, table))
                .where(parent.in_(batch))
                .order_by(parent, table.c[child.order_by], table.c.id)
            )
            for row in conn.execute(stmt).mappings():
                plain = _plain(row, table)
                grouped.setdefault(plain[child.parent_column], []).append(plain)
        return grouped


_LENIENT_TYPES = (Numeric, Date, DateTime)


def lenient_columns(engine: Engine, table: Table) -> list[Any]:
    """Columns to select, read raw where SQLite could hold text of the wrong shape.

    SQLite stores whatever it is given, and SQLAlchemy's typed result processors raise on a
    quantity of 'three' or a date of '31/12/2026', which would fail a whole chunk. Reading those
    columns raw and converting in ``_plain`` keeps the bad value, so the mapper rejects that one
    record and names the field. PostgreSQL enforces the types itself.
    """
    if is_postgresql(engine):
        return list(table.c)
    return [
        type_coerce(c, NullType()).label(c.name) if isinstance(c.type, _LENIENT_TYPES) else c
        for c in table.c
    ]


def _lenient(column_type: Any, value: Any) -> Any:
    """Best-effort conversion of a raw SQLite value; what cannot be converted is kept as is."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(column_type, DateTime) and isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(column_type, Date) and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(column_type, Numeric) and isinstance(value, int | float | str):
        try:
            return Decimal(repr(value) if isinstance(value, float) else value)
        except (InvalidOperation, ValueError):
            return value
    return value


def _plain(row: RowMapping, table: Table) -> dict[str, Any]:
    """A result row as a plain dict; datetimes made aware UTC whatever the engine returned."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        name = str(key)
        if name in table.c and isinstance(table.c[name].type, _LENIENT_TYPES):
            value = _lenient(table.c[name].type, value)
        out[name] = utc(value) if isinstance(value, datetime) else value
    return out


def _batches(values: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for offset in range(0, len(values), size):
        yield list(values[offset : offset + size])
