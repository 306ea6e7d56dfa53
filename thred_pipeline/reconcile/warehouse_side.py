"""The expected side of reconciliation: each entity's records as its declaration reads them
from the warehouse (``spec.reconcile.warehouse``), never from the ledger or the payloads sent.

Scope (documented in docs/reliability.md): every record of every entity that belongs to an
*active* business; inactive businesses are reported once, at the business level. A record's
version is its own ``updated_at`` or a child row's, whichever is later.

A window check reads only the records that may have changed in its window (``window_frame``),
not the entity's whole history: the database picks the candidates, a superset of the records
whose version is in the window or unreadable, and the same version test as before
(``reconciler._in_window``) keeps exactly those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    func,
    not_,
    or_,
    select,
    type_coerce,
)

from thred_pipeline import entities
from thred_pipeline.core.records import TimeWindow
from thred_pipeline.entities import EntitySpec
from thred_pipeline.warehouse.db import is_postgresql
from thred_pipeline.warehouse.extract import IN_BATCH_SIZE
from thred_pipeline.warehouse.source import ChildTable
from thred_pipeline.warehouse.text_reads import TextReads, cents, timestamps


class WarehouseBooks:
    """Reads the warehouse once per reconciliation and hands out one frame per entity."""

    def __init__(self, engine: Engine, reads: TextReads | None = None) -> None:
        self.reads = reads or TextReads(engine)
        self._frames: dict[str, pd.DataFrame] = {}

    def businesses(self) -> pd.DataFrame:
        """Every business, active or not (``active`` column), with its version."""
        return self._records(entities.business_root())

    def active_businesses(self) -> set[str]:
        frame = self.businesses()
        return set(frame.loc[frame["active"], "source_id"])

    def frame(self, spec: EntitySpec) -> pd.DataFrame:
        """Expected values of every record of the entity that belongs to an active business."""
        frame = self._records(spec)
        in_scope = frame["business_id"].isin(self.active_businesses())
        return frame[in_scope].reset_index(drop=True)

    def window_frame(self, spec: EntitySpec, window: TimeWindow) -> pd.DataFrame:
        """``frame(spec)``'s rows that may have changed in the window, in source id order.

        Read only for the candidate records (``window_candidates``) and their child rows, so
        every candidate's values and version are those ``frame`` gives it; businesses are read
        whole (one small table) for the active-business scope.
        """
        engine = self.reads.engine
        ids = window_candidates(engine, spec, window)
        scope = {spec.table.name: "id", **{c.table.name: c.parent_column for c in spec.children}}
        narrow = WarehouseBooks(engine, _WindowReads(engine, scope, ids))
        frame = narrow._records(spec)
        frame = frame[frame["business_id"].isin(self.active_businesses())]
        return frame.sort_values("source_id", kind="stable").reset_index(drop=True)

    def allocations(self, table: Table, parent: str, document: str) -> pd.DataFrame:
        """Settlement allocations: settlement source id, document source id, amount."""
        rows = self.reads.read(table, (parent, document, "amount_cents"))
        return pd.DataFrame(
            {
                "settlement_id": rows[parent].astype(str),
                "document_id": rows[document].astype(str),
                "amount_cents": cents(rows["amount_cents"]),
            }
        )

    def _records(self, spec: EntitySpec) -> pd.DataFrame:
        if spec.name not in self._frames:
            frame = spec.reconcile.warehouse(self.reads)
            frame["version"] = self._versions(spec.children, frame)
            self._frames[spec.name] = frame.drop(columns=["updated_at"])
        return self._frames[spec.name]

    def _versions(self, children: Iterable[ChildTable], base: pd.DataFrame) -> pd.Series:
        """A record's version: its own updated_at or a child row's, whichever is later."""
        version = timestamps(base["updated_at"])
        version.index = base["source_id"]
        for child in children:
            rows = self.reads.read(child.table, (child.parent_column, "updated_at"))
            if rows.empty:
                continue
            latest = timestamps(rows["updated_at"]).groupby(rows[child.parent_column]).max()
            version = pd.concat([version, latest.reindex(version.index)], axis=1).max(axis=1)
        return version.reset_index(drop=True)


# Text dates pandas reads (nanosecond timestamps: 1677-09-21..2262-04-11), with room to spare.
# Outside them a version is unreadable (NaT), and unreadable versions belong to every window.
_FIRST_PLAIN, _AFTER_PLAIN = date(1678, 1, 1), date(2262, 1, 1)


def window_candidates(engine: Engine, spec: EntitySpec, window: TimeWindow) -> list[str]:
    """Ids of the records whose version may be in the window, sorted.

    A superset of the records ``_in_window`` keeps (version in the window, or unreadable): a
    record is left out only when its own ``updated_at`` and every child row's are plainly
    outside the window (``_maybe_in``), as a version is one of those values. Inactive
    businesses are not excluded here; ``window_frame`` scopes to active ones as ``frame`` does.
    """
    postgres = is_postgresql(engine)
    with engine.connect() as conn:
        query = _candidates(spec.name, postgres)
        found = conn.execute(query, window_bounds(window, postgres))
        return sorted({str(value) for value in found.scalars()})


@cache
def _candidates(entity: str, postgres: bool) -> Select[Any]:
    """The candidates' query, built once per entity and dialect (the window is bound)."""
    spec = entities.get(entity)
    table = spec.table
    changed = [_maybe_in(table.c.updated_at, postgres)]
    for child in spec.children:
        parents = select(child.table.c[child.parent_column]).where(
            _maybe_in(child.table.c.updated_at, postgres)
        )
        changed.append(table.c.id.in_(parents))
    return select(cast(table.c.id, String)).where(or_(*changed))


def window_bounds(window: TimeWindow, postgres: bool) -> dict[str, Any]:
    """``_maybe_in``'s bounds: the day before the window's first, the day after its last."""
    first = window.start.astimezone(UTC).date() - timedelta(days=1)
    after = window.end.astimezone(UTC).date() + timedelta(days=1)
    if postgres:
        return {"first": datetime.combine(first, time(0), UTC), "after": _midnight(after)}
    return {"first": first.isoformat(), "after": after.isoformat()}


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def _maybe_in(column: Any, postgres: bool) -> ColumnElement[bool]:
    """Not plainly outside the window (``window_bounds``): NULL, unreadable or odd values are.

    Plainly outside: a date-time pandas reads as exactly what the database holds, on a day at
    least a day before the window's first or after its last (a margin for any time zone).
    """
    if postgres:  # timestamptz, read as text in UTC (the engine's session zone)
        plain = and_(
            column.is_not(None),
            column >= _midnight(_FIRST_PLAIN),
            column < _midnight(_AFTER_PLAIN),
        )
        outside = or_(column < bindparam("first"), column >= bindparam("after"))
    else:  # SQLite: text compares as text, so only a plain date-time text sorts like its time
        text = type_coerce(column, String)
        plain = _plain_sqlite_text(column, text)
        outside = or_(
            text < bindparam("first", type_=String), text >= bindparam("after", type_=String)
        )
    return case((and_(outside, plain), 0), else_=1) == 1


_DAY = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
_TIMED = _DAY + "[ T][0-2][0-9]:[0-5][0-9]:[0-5][0-9]"


def _plain_sqlite_text(column: Any, text: Any) -> ColumnElement[bool]:
    """'YYYY-MM-DD', optionally ' HH:MM:SS' or 'THH:MM:SS' and '.' plus 1-6 digits: a real
    date in pandas' range and a real time, no offset — read by pandas as that UTC time.

    Cheapest tests first (every row outside the window is tested): SQLAlchemy's own format is
    one GLOB, and only days 29-31 or odd months need SQLite's calendar.
    """
    day, length = func.substr(text, 1, 10), func.length(text)
    month_day = func.substr(text, 6, 5)
    return and_(
        func.typeof(column) == "text",
        text >= _FIRST_PLAIN.isoformat(),
        text < _AFTER_PLAIN.isoformat(),
        or_(
            text.op("GLOB")(_TIMED + "." + "[0-9]" * 6),
            text.op("GLOB")(_TIMED),
            text.op("GLOB")(_DAY),
            and_(
                length.between(21, 25),
                text.op("GLOB")(_TIMED + ".[0-9]*"),
                not_(func.substr(text, 21).op("GLOB")("*[^0-9]*")),
            ),
        ),
        func.substr(text, 12, 2) < "24",  # '' for a bare date
        or_(
            and_(
                month_day >= "01-01",
                month_day < "12-29",
                func.substr(text, 9, 2).between("01", "28"),  # a day every month has
            ),
            func.date(func.julianday(day)) == day,  # a real calendar date ('2026-02-30' is not)
        ),
    )


class _WindowReads(TextReads):
    """One window check's reads: the entity's table and its child tables only for the candidate
    records (``scope``: table name -> the column holding the record's id, read ``IN`` batches);
    any other table whole, as a lookup (a payout's payments) needs it."""

    def __init__(self, engine: Engine, scope: Mapping[str, str], ids: Sequence[str]) -> None:
        super().__init__(engine)
        self.scope = dict(scope)
        self.ids = list(ids)

    def _fetch(self, table: Table, columns: tuple[str, ...]) -> Sequence[Any]:
        column = self.scope.get(table.name)
        if column is None:
            return super()._fetch(table, columns)
        query = select(*(cast(table.c[c], String).label(c) for c in columns))
        rows: list[Any] = []
        with self.engine.connect() as conn:
            for at in range(0, len(self.ids), IN_BATCH_SIZE):
                batch = self.ids[at : at + IN_BATCH_SIZE]
                rows += conn.execute(query.where(table.c[column].in_(batch))).all()
        return rows
