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

One bad row costs one row. Extraction never raises because of a value: dates and timestamps are
read as text and parsed here (PostgreSQL holds values Python cannot: '-infinity', year 1 BC,
year 10000, which crash the driver's own decoding), numbers are read raw on SQLite (which stores
text anywhere). A row with a value that cannot be read, a NULL or unreadable ``updated_at``, or
an id that cannot become a Thred external_id is still yielded, as a ``SourceRecord`` whose
``problem`` names the field; the engine quarantines it. Rows whose ``updated_at`` is NULL or
unreadable cannot be placed in any window, so every window picks them up: they are never
silently skipped.

Inactive businesses are not synced: a business whose ``is_active`` is not true (false or NULL)
is not extracted, nor is any record of it. Records whose business is missing from the
warehouse are still extracted (they wait for it in the engine, visibly).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Select,
    String,
    Table,
    and_,
    cast,
    func,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.engine import RowMapping

from thred_pipeline.core.external_ids import check_external_id
from thred_pipeline.core.records import (
    UNKNOWN_UPDATED_AT,
    RecordInvalid,
    SourceRecord,
    TimeWindow,
    utc,
)
from thred_pipeline.warehouse.db import create_warehouse_engine, is_postgresql, safe_url
from thred_pipeline.warehouse.rows import lenient_columns, plain_row, read_row, record_problem
from thred_pipeline.warehouse.schema import businesses
from thred_pipeline.warehouse.source import ChildTable, SourceTable

__all__ = [
    "ACTIVE_TEXT",
    "DEFAULT_CHUNK_SIZE",
    "IN_BATCH_SIZE",
    "Warehouse",
]

DEFAULT_CHUNK_SIZE = 500
# Ids per IN (...) list: well under SQLite's historical 999-parameter limit.
IN_BATCH_SIZE = 500
# ``is_active`` values (as lower-case text) that make a business active; anything else,
# NULL included, makes it inactive. Text too, for SQLite warehouses that store 'true'.
ACTIVE_TEXT = ("1", "true", "t", "yes", "y")
# PostgreSQL timestamps outside what Python's datetime holds (years 1-9999) sort outside these.
_PG_FIRST = "'0001-01-01 00:00:00+00'::timestamptz"
_PG_AFTER_LAST = "'10000-01-01 00:00:00+00'::timestamptz"


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
        source: SourceTable,
        window: TimeWindow,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> Generator[list[SourceRecord], None, None]:
        """Records of ``source`` changed in ``[window.start, window.end)``, streamed in chunks.

        Also every record whose (or whose child row's) ``updated_at`` is NULL or unreadable,
        whatever the window, with a ``problem``. Records of inactive businesses are left out.
        Businesses interleaved (each one's n-th record before any one's n+1-th), each business's
        records by updated_at, id. The transaction stays open while the caller
        consumes the iterator; closing the iterator early releases it.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        table = source.table
        query = select(*lenient_columns(self.engine, table)).where(
            self._changed_in(source, window), self._of_active_business(table)
        )
        stmt = self._interleaved(query, table)
        with self._read() as conn:
            # Per statement, not per connection: the child queries stay plain buffered reads.
            streaming = {"stream_results": True, "yield_per": chunk_size}
            with conn.execute(stmt, execution_options=streaming) as result:
                for partition in result.mappings().partitions(chunk_size):
                    yield self._records(conn, source, list(partition))

    def changed_ids(self, source: SourceTable, window: TimeWindow) -> set[str]:
        """The ids of the records ``iter_changed`` yields for ``window``, without their rows.

        The same predicate (own or a child row's ``updated_at`` in the window, or unreadable;
        active businesses only), for a reader that needs only a window's records of a table
        whose history is long (a window check).
        """
        table = source.table
        stmt = select(table.c.id).where(
            self._changed_in(source, window), self._of_active_business(table)
        )
        with self._read() as conn:
            return {str(value) for value in conn.execute(stmt).scalars()}

    def changed_business_ids(self, source: SourceTable, window: TimeWindow) -> list[str]:
        """The businesses of the records ``iter_changed`` yields for ``window``: whose Thred
        reference data a sync reads up front, all at once."""
        table = source.table
        owner = table.c.business_id if "business_id" in table.c else table.c.id
        stmt = (
            select(owner)
            .distinct()
            .where(self._changed_in(source, window), self._of_active_business(table))
        )
        with self._read() as conn:
            return sorted(str(value) for value in conn.execute(stmt).scalars())

    def fetch(self, source: SourceTable, source_ids: Sequence[str]) -> list[SourceRecord]:
        """Records of ``source`` by id, whatever their updated_at (to retry deferred records).

        Ids not in the warehouse, or of an inactive business, are absent from the result;
        duplicates are ignored.
        """
        wanted = list(dict.fromkeys(str(source_id) for source_id in source_ids))
        table = source.table
        found: list[SourceRecord] = []
        with self._read() as conn:
            for batch in _batches(wanted, IN_BATCH_SIZE):
                query = select(*lenient_columns(self.engine, table)).where(
                    table.c.id.in_(batch), self._of_active_business(table)
                )
                stmt = self._ordered(query, table)
                found.extend(self._records(conn, source, list(conn.execute(stmt).mappings())))
        found.sort(key=lambda r: (r.business_id, r.updated_at, r.source_id))
        return found

    # -- businesses ---------------------------------------------------------------------------

    def business_ids(self, *, active_only: bool = True) -> list[str]:
        """Ids of the businesses (tenants) in the warehouse, sorted; by default the active ones."""
        stmt = select(businesses.c.id).order_by(businesses.c.id)
        if active_only:
            stmt = stmt.where(_is_active())
        with self._read() as conn:
            return [str(value) for value in conn.execute(stmt).scalars()]

    def active_business_ids(self) -> list[str]:
        """Businesses that are synced: ``is_active`` true. Sorted."""
        return self.business_ids(active_only=True)

    def inactive_business_ids(self) -> list[str]:
        """Businesses that are not synced: ``is_active`` false or NULL. Sorted.

        Nothing of theirs is extracted any more; what Thred already holds for them stays there.
        """
        stmt = select(businesses.c.id).where(not_(_is_active())).order_by(businesses.c.id)
        with self._read() as conn:
            return [str(value) for value in conn.execute(stmt).scalars()]

    def business(self, business_id: str) -> dict[str, Any] | None:
        """One business row (timestamps as aware UTC), or None if unknown.

        Any business, active or not; an unreadable value is kept raw (see ``plain_row``).
        """
        stmt = select(*lenient_columns(self.engine, businesses)).where(
            businesses.c.id == business_id
        )
        with self._read() as conn:
            row = conn.execute(stmt).mappings().first()
        return None if row is None else plain_row(row, businesses)

    # -- internals ----------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if is_postgresql(self.engine):
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                if is_postgresql(self.engine):
                    # Dates are read as text and parsed here: pin the text format, whatever
                    # engine (and session settings) the caller handed us.
                    conn.exec_driver_sql("SET LOCAL datestyle = 'ISO, YMD'")
                    conn.exec_driver_sql("SET LOCAL timezone = 'UTC'")
                yield conn

    def _bind_time(self, value: datetime) -> datetime:
        aware = utc(value)
        return aware if is_postgresql(self.engine) else aware.replace(tzinfo=None)

    def _changed_in(self, source: SourceTable, window: TimeWindow) -> ColumnElement[bool]:
        """A record of ``source`` changed in the window: its own row or any child row."""
        table = source.table
        start, end = self._bind_time(window.start), self._bind_time(window.end)
        changed: list[ColumnElement[bool]] = [self._changed(table, start, end)]
        for child in source.children:
            child_table = child.table
            changed.append(
                table.c.id.in_(
                    select(child_table.c[child.parent_column]).where(
                        self._changed(child_table, start, end)
                    )
                )
            )
        return or_(*changed)

    def _changed(self, table: Table, start: datetime, end: datetime) -> ColumnElement[bool]:
        """``updated_at`` in the window, or NULL/unreadable (such rows belong to every window)."""
        column = table.c.updated_at
        if is_postgresql(self.engine):
            unreadable = or_(
                column.is_(None),
                column < literal_column(_PG_FIRST),
                column >= literal_column(_PG_AFTER_LAST),
            )
        else:
            # Not text, or text SQLite cannot read as a date-time at all. Text that reads as one
            # ('2026-09-31 10:00', a 'T' form) sorts into exactly one window like any other row,
            # and is flagged when that window reads it.
            unreadable = or_(
                column.is_(None),
                func.typeof(column) != "text",
                func.datetime(column).is_(None),
            )
        return or_(and_(column >= start, column < end), unreadable)

    @staticmethod
    def _of_active_business(table: Table) -> ColumnElement[bool]:
        owner = table.c.business_id if "business_id" in table.c else table.c.id
        return owner.not_in(select(businesses.c.id).where(not_(_is_active())))

    @classmethod
    def _interleaved(cls, stmt: Select[Any], table: Table) -> Select[Any]:
        """Every business's first record, then every business's second, ...: a chunk feeds
        every business, so the chunks in flight keep all of them sending (ordered by
        business, the chunks in flight held one or two businesses of a large window while the
        others' request slots sat idle). Within a business: updated_at, id."""
        if "business_id" not in table.c:
            return cls._ordered(stmt, table)
        turn = func.row_number().over(
            partition_by=table.c.business_id, order_by=(table.c.updated_at, table.c.id)
        )
        return stmt.order_by(turn, table.c.business_id, table.c.updated_at, table.c.id)

    @staticmethod
    def _ordered(stmt: Select[Any], table: Table) -> Select[Any]:
        if "business_id" in table.c:
            return stmt.order_by(table.c.business_id, table.c.updated_at, table.c.id)
        return stmt.order_by(table.c.id)

    def _records(
        self, conn: Connection, source: SourceTable, raw_rows: Sequence[RowMapping]
    ) -> list[SourceRecord]:
        table = source.table
        rows: list[dict[str, Any]] = []
        unreadable: list[list[tuple[str, str]]] = []
        for raw in raw_rows:
            row, problems = read_row(raw, table)
            rows.append(row)
            unreadable.append(problems)
        ids = [row["id"] for row in rows]
        children: dict[str, dict[Any, list[tuple[dict[str, Any], list[tuple[str, str]]]]]] = {}
        for child in source.children:
            children[child.key] = self._children(conn, child, ids, self.engine)
        owner_column = "business_id" if "business_id" in table.c else "id"
        records: list[SourceRecord] = []
        for row, problems in zip(rows, unreadable, strict=True):
            source_id = str(row["id"])
            found: list[tuple[str, str]] = []
            try:
                check_external_id(source.external_id(source_id), "id", source_id=source_id)
            except RecordInvalid as exc:
                found.append((exc.field_path, exc.message))
            found.extend(problems)
            attached: dict[str, list[dict[str, Any]]] = {}
            for key, by_parent in children.items():
                entries = by_parent.get(row["id"], [])
                attached[key] = [child_row for child_row, _ in entries]
                for index, (_, child_problems) in enumerate(entries):
                    found.extend((f"{key}[{index}].{path}", why) for path, why in child_problems)
            updated_at = row.get("updated_at")
            records.append(
                SourceRecord(
                    entity=source.name,
                    source_id=source_id,
                    business_id=str(row[owner_column]),
                    updated_at=updated_at
                    if isinstance(updated_at, datetime)
                    else UNKNOWN_UPDATED_AT,
                    row=row,
                    children=attached,
                    problem=record_problem(found),
                )
            )
        return records

    @staticmethod
    def _children(
        conn: Connection, child: ChildTable, parent_ids: Sequence[Any], engine: Engine
    ) -> dict[Any, list[tuple[dict[str, Any], list[tuple[str, str]]]]]:
        table = child.table
        parent = table.c[child.parent_column]
        grouped: dict[Any, list[tuple[dict[str, Any], list[tuple[str, str]]]]] = {}
        for batch in _batches(parent_ids, IN_BATCH_SIZE):
            stmt = (
                select(*lenient_columns(engine, table))
                .where(parent.in_(batch))
                .order_by(parent, table.c[child.order_by], table.c.id)
            )
            for raw in conn.execute(stmt).mappings():
                plain, problems = read_row(raw, table)
                grouped.setdefault(plain[child.parent_column], []).append((plain, problems))
        return grouped


def _is_active() -> ColumnElement[bool]:
    """``businesses.is_active`` is true (bool, 1, or true-like text); NULL is not."""
    text_value = func.lower(func.coalesce(cast(businesses.c.is_active, String), ""))
    return text_value.in_(ACTIVE_TEXT)


def _batches(values: Sequence[Any], size: int) -> Iterable[list[Any]]:
    for offset in range(0, len(values), size):
        yield list(values[offset : offset + size])
