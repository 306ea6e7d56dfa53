"""The warehouse read as text for reconciliation: one unreadable value makes one sum unknown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import insert

from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.db import create_schema, create_warehouse_engine
from thred_pipeline.warehouse.text_reads import TextReads, cents, is_true, lookup

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def test_cents_keeps_whole_numbers_and_marks_the_rest_unknown():
    got = cents(pd.Series(["100", "12.5", "abc", None, "7.0"], dtype=object))
    assert got.tolist()[0] == 100 and got.tolist()[4] == 7
    assert got.isna().tolist() == [False, True, True, True, False]


def test_lookup_is_zero_without_rows_and_unknown_when_they_cannot_be_read():
    per_record = pd.Series([5, pd.NA], index=["a", "b"], dtype="Int64")
    got = lookup(pd.Series(["a", "b", "c"]), per_record)
    assert got[0] == 5 and got.isna()[1] and got[2] == 0


def test_true_like_text_counts_as_true():
    assert [is_true(v) for v in ("1", " Yes ", "t", True, "false", "0", None, "")] == [
        True,
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]


def test_a_sum_with_an_unreadable_amount_is_unknown_and_each_read_happens_once(tmp_path: Path):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'text.db'}")
    create_schema(engine)
    rows = [
        ("a1", "p1", 300),
        ("a2", "p1", 200),
        ("a3", "p2", 50),
        ("a4", "p3", "12,00"),  # SQLite keeps text in a number column; PostgreSQL could not
        ("a5", "p3", 100),
    ]
    with engine.begin() as conn:
        for row_id, payment, amount in rows:
            conn.execute(
                insert(wh.payment_allocations).values(
                    id=row_id,
                    payment_id=payment,
                    invoice_id="i1",
                    amount_cents=amount,
                    updated_at=NOW,
                )
            )
    reads = TextReads(engine)
    sums = reads.sum_by(wh.payment_allocations, "payment_id")
    assert sums["p1"] == 500 and sums["p2"] == 50 and pd.isna(sums["p3"])
    first = reads.read(wh.payment_allocations, ("id",))
    assert reads.read(wh.payment_allocations, ("id",)) is first
    engine.dispose()
