"""Warehouse rows as plain Python values, read so that no value can make the driver raise.

One bad row costs one row: a value that cannot be converted (text in a number or date column,
a PostgreSQL timestamp outside years 1-9999) is kept as it is and named as a problem, so the
record carrying it is quarantined with the reason instead of stopping the extraction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache, partial
from typing import Any, NamedTuple

from sqlalchemy import Date, DateTime, Engine, Numeric, Table, Text, cast, type_coerce
from sqlalchemy.engine import RowMapping
from sqlalchemy.types import NullType

from thred_pipeline.core.records import RecordInvalid, utc
from thred_pipeline.warehouse.db import is_postgresql


def record_problem(found: Sequence[tuple[str, str]]) -> RecordInvalid | None:
    """One ``RecordInvalid`` for everything wrong with a record: the first named, others listed."""
    if not found:
        return None
    path, message = found[0]
    if len(found) > 1:
        others = ", ".join(p for p, _ in found[1:6]) + (", ..." if len(found) > 6 else "")
        message = f"{message} (also unreadable: {others})"
    return RecordInvalid(path, message)


_DATE_TYPES = (Date, DateTime)
_LENIENT_TYPES = (Numeric, Date, DateTime)


def lenient_columns(engine: Engine, table: Table) -> list[Any]:
    """Columns to select, read so that no value can make the driver raise.

    SQLite stores whatever it is given, and SQLAlchemy's typed result processors raise on a
    quantity of 'three' or a date of '31/12/2026'; PostgreSQL holds timestamps Python cannot
    ('-infinity', '0001-01-01 BC', year 10000), on which psycopg2's decoding raises (or, for
    'infinity', silently returns year 9999). So dates and timestamps are read as text on
    PostgreSQL and raw on SQLite, and numbers raw on SQLite; ``plain_row`` converts them and
    keeps a value it cannot convert as it is (the record then carries a ``problem``).
    """
    if is_postgresql(engine):
        return [
            cast(c, Text).label(c.name) if isinstance(c.type, _DATE_TYPES) else c for c in table.c
        ]
    return [
        type_coerce(c, NullType()).label(c.name) if isinstance(c.type, _LENIENT_TYPES) else c
        for c in table.c
    ]


_UNREADABLE_DATE = "before year 1, after year 9999, infinite, or not a date"


def _convert(column_type: Any, value: Any) -> tuple[Any, str | None]:
    """A raw value converted to its column's Python type, or kept with the reason it cannot be."""
    if value is None or isinstance(value, bool):
        return value, None
    if isinstance(column_type, _DATE_TYPES):
        day_only = isinstance(column_type, Date) and not isinstance(column_type, DateTime)
        what = "date" if day_only else "date-time"
        if isinstance(value, datetime):
            return _aware(value)
        if isinstance(value, date):
            return value, None
        if isinstance(value, str):
            text = value.strip()
            if day_only:
                try:
                    return date.fromisoformat(text), None
                except ValueError:
                    pass  # perhaps a date-time; the mapper takes its UTC day
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return value, f"cannot be read as a {what}: {_shown(value)} ({_UNREADABLE_DATE})"
            return _aware(moment)
        return value, f"cannot be read as a {what}: {type(value).__name__} {_shown(value)}"
    if isinstance(column_type, Numeric):
        if isinstance(value, Decimal):
            return value, None
        if isinstance(value, int):
            return Decimal(value), None
        if isinstance(value, float):
            return Decimal(repr(value)), None
        if isinstance(value, str):
            try:
                return Decimal(value.strip()), None
            except (InvalidOperation, ValueError):
                return value, f"cannot be read as a number: {_shown(value)}"
        return value, f"cannot be read as a number: {type(value).__name__} {_shown(value)}"
    return value, None


def _aware(moment: datetime) -> tuple[Any, str | None]:
    try:
        return utc(moment), None
    except (OverflowError, ValueError):
        return (
            moment,
            f"cannot be read as a UTC date-time: {moment.isoformat()} ({_UNREADABLE_DATE})",
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


@lru_cache(maxsize=256)
def _lenient_types(table: Table) -> dict[str, Any]:
    """Column name -> type, for the columns ``_convert`` handles (looked up once per table)."""
    return {c.name: c.type for c in table.c if isinstance(c.type, _LENIENT_TYPES)}


Converter = Callable[[Any], tuple[Any, str | None]]


def _converter(column_type: Any) -> Converter:
    """``_convert`` for one column type, with the values drivers hand back most (text dates,
    int and Decimal numbers) taken first; anything else goes through ``_convert`` itself."""
    general = partial(_convert, column_type)
    if isinstance(column_type, DateTime):

        def moment(value: Any) -> tuple[Any, str | None]:
            if type(value) is str:
                try:
                    return _aware(datetime.fromisoformat(value.strip()))
                except ValueError:
                    pass  # _convert says why
            return general(value)

        return moment
    if isinstance(column_type, Numeric):

        def number(value: Any) -> tuple[Any, str | None]:
            kind = type(value)
            if kind is Decimal or value is None:
                return value, None
            if kind is int:
                return Decimal(value), None
            return general(value)

        return number
    return general


@lru_cache(maxsize=256)
def _row_plan(table: Table) -> RowPlan:
    """The table's column names in order, a converter per lenient column, the other columns
    (built once per table)."""
    lenient = _lenient_types(table)
    return RowPlan(
        names=tuple(c.name for c in table.c),
        converters=tuple((name, _converter(t)) for name, t in lenient.items()),
        others=tuple(c.name for c in table.c if c.name not in lenient),
    )


class RowPlan(NamedTuple):
    names: tuple[str, ...]
    converters: tuple[tuple[str, Converter], ...]
    others: tuple[str, ...]


def read_row(row: RowMapping, table: Table) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``plain_row`` plus what could not be read: (column, reason), ``updated_at`` first."""
    out: dict[str, Any] = dict(row)
    plan = _row_plan(table)
    if tuple(out) != plan.names:  # not the table's columns in its order: the general path
        return _read_any_row(out, table)
    problems: list[tuple[str, str]] = []
    for name, convert in plan.converters:
        converted, why = convert(out[name])
        if why is not None:
            problems.append((name, why))
        out[name] = converted
    for name in plan.others:  # a datetime elsewhere (these drivers return none there)
        if isinstance(out[name], datetime):
            out[name] = _aware(out[name])[0]
    return out, _stamp_first(out, table, problems)


def _read_any_row(
    out: dict[str, Any], table: Table
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    lenient = _lenient_types(table)
    problems: list[tuple[str, str]] = []
    for name, value in out.items():
        column_type = lenient.get(name)
        if column_type is not None:
            converted, why = _convert(column_type, value)
            if why is not None:
                problems.append((name, why))
            out[name] = converted
        elif isinstance(value, datetime):
            out[name] = _aware(value)[0]
    return out, _stamp_first(out, table, problems)


def _stamp_first(
    out: dict[str, Any], table: Table, problems: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``updated_at``'s problem first, NULL included: it decides which windows read the row."""
    if "updated_at" not in out or "updated_at" not in _lenient_types(table):
        return problems
    if not problems and out["updated_at"] is not None:
        return problems
    stamp = [p for p in problems if p[0] == "updated_at"]
    problems = [p for p in problems if p[0] != "updated_at"]
    if out["updated_at"] is None:
        problems.insert(0, ("updated_at", "NULL: cannot tell when it changed"))
    elif stamp:
        problems.insert(0, ("updated_at", f"{stamp[0][1]}; cannot tell when it changed"))
    return problems


def plain_row(row: RowMapping, table: Table) -> dict[str, Any]:
    """A row read with ``lenient_columns`` as a plain dict of Python values.

    Datetimes are aware UTC; numbers on SQLite are Decimals; a value that cannot be converted
    (text in a number or date column, a PostgreSQL timestamp outside years 1-9999) is kept as
    it is, so whoever reads it can refuse that one row and say why.
    """
    return read_row(row, table)[0]
