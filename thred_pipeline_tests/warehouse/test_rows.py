"""``read_row``'s per-table fast path gives exactly what the general conversion gives.

The reference below is ``read_row`` as it was before the fast path (one type lookup and
``_convert`` per value); Hypothesis draws rows of the contract's tables with what SQLite and
PostgreSQL drivers hand back, and with what they never do, in the table's column order or not.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Table

from thred_pipeline.warehouse import schema
from thred_pipeline.warehouse.rows import _aware, _convert, _lenient_types, read_row

TABLES = [t for t in schema.metadata.sorted_tables]


def reference_read_row(row: dict[str, Any], table: Table) -> tuple[dict[str, Any], list[Any]]:
    lenient = _lenient_types(table)
    out: dict[str, Any] = dict(row)
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
    if "updated_at" in lenient and "updated_at" in out:
        stamp = [p for p in problems if p[0] == "updated_at"]
        problems = [p for p in problems if p[0] != "updated_at"]
        if out["updated_at"] is None:
            problems.insert(0, ("updated_at", "NULL: cannot tell when it changed"))
        elif stamp:
            problems.insert(0, ("updated_at", f"{stamp[0][1]}; cannot tell when it changed"))
    return out, problems


moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    moments.map(lambda m: m.isoformat(sep=" ")),
    moments.map(lambda m: f"  {m.isoformat()}Z "),
    moments.map(lambda m: m.replace(tzinfo=timezone(timedelta(hours=2))).isoformat()),
    st.dates().map(date.isoformat),
    st.sampled_from(["infinity", "-infinity", "0001-01-01 00:00:00 BC", "31/12/2026", "three"]),
    moments,
    moments.map(lambda m: m.replace(tzinfo=UTC)),
    st.dates(),
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[Table, dict[str, Any]]:
    table = draw(st.sampled_from(TABLES))
    names = [c.name for c in table.c]
    if draw(st.integers(0, 9)) == 0:  # not the table's own columns in its order
        names = draw(st.permutations(names))[: draw(st.integers(0, len(names)))]
        names += draw(st.lists(st.sampled_from(["extra", "other"]), max_size=2, unique=True))
    return table, {name: draw(values) for name in names}


@settings(max_examples=400, deadline=None)
@given(rows())
def test_read_row_is_the_general_conversion(drawn: tuple[Table, dict[str, Any]]) -> None:
    table, row = drawn
    assert read_row(row, table) == reference_read_row(row, table)  # type: ignore[arg-type]


def test_a_contract_row_read_both_ways() -> None:
    row = {c.name: None for c in schema.invoice_line_items.c}
    row |= {"id": "L1", "quantity": 3, "updated_at": "2026-09-01 10:00:00", "position": 1}
    out, problems = read_row(row, schema.invoice_line_items)  # type: ignore[arg-type]
    assert out["quantity"] == Decimal(3)
    assert out["updated_at"] == datetime(2026, 9, 1, 10, tzinfo=UTC)
    assert problems == []
    assert (out, problems) == reference_read_row(row, schema.invoice_line_items)
