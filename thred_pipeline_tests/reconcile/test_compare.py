"""Record comparison on hand-built frames: each kind of difference, its money and its cause,
without a warehouse, a ledger database or HTTP."""

from __future__ import annotations

from typing import Any

import pandas as pd

from thred_pipeline import entities
from thred_pipeline.entities.thred_values import Unreadable
from thred_pipeline.reconcile.compare import RecordComparison
from thred_pipeline.reconcile.findings import Kind

AS_OF = pd.Timestamp("2026-01-02", tz="UTC")
VERSION = pd.Timestamp("2026-01-01", tz="UTC")
BILLS = entities.get("bills")


def expected(*bills: tuple[str, int | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_id": [b for b, _ in bills],
            "business_id": ["b1"] * len(bills),
            "vendor_id": ["v1"] * len(bills),
            "total_cents": pd.array([t for _, t in bills], dtype="Int64"),
            "version": [VERSION] * len(bills),
        }
    )


def thred(*items: dict[str, Any]) -> pd.DataFrame:
    base = {"business_id": "b1", "vendor_id": "v1", "source_id": None, "external_id": None}
    rows = [{**base, "thred_id": f"t{n}", **i} for n, i in enumerate(items)]
    return pd.DataFrame(rows, columns=[*base, "thred_id", "total_cents"]).astype(object)


def compare(want: pd.DataFrame, got: pd.DataFrame, **kw: bool) -> list[dict[str, Any]]:
    return RecordComparison(BILLS, want, got, {}, AS_OF, "bills").run(**kw)


def test_equal_records_have_no_difference() -> None:
    assert compare(expected(("1", 500)), thred({"source_id": "1", "total_cents": 500})) == []


def test_a_different_total_puts_the_gap_at_stake() -> None:
    [row] = compare(expected(("1", 500)), thred({"source_id": "1", "total_cents": 450}))
    assert (row["kind"], row["field"], row["money_cents"]) == (Kind.DIFFERENT, "total_cents", 50)
    assert (row["expected"], row["thred"], row["external_id"]) == (500, 450, "bill-1")


def test_a_missing_record_puts_its_headline_at_stake_and_says_it_was_never_synced() -> None:
    [row] = compare(expected(("1", 500)), thred())
    assert (row["kind"], row["money_cents"], row["cause"]) == (Kind.MISSING, 500, "unexplained")
    assert row["explanation"].startswith("never synced")


def test_extras_and_duplicates_are_told_apart_by_external_id() -> None:
    rows = compare(
        expected(("1", 500)),
        thred(
            {"source_id": "1", "total_cents": 500},
            {"external_id": "bill-1", "total_cents": 500},
            {"external_id": "someone-else", "total_cents": 70},
        ),
    )
    assert sorted((r["kind"], r["money_cents"]) for r in rows) == [
        (Kind.DUPLICATE, 500),
        (Kind.EXTRA, 70),
    ]


def test_a_window_reports_only_duplicates_of_its_records() -> None:
    got = thred({"external_id": "bill-1"}, {"external_id": "someone-else"})
    rows = compare(expected(("1", 500)), got, all_extras=False)
    assert [r["kind"] for r in rows] == [Kind.DUPLICATE, Kind.MISSING]


def test_an_unreadable_value_cannot_compare_and_is_shown_as_such() -> None:
    [row] = compare(
        expected(("1", 500)), thred({"source_id": "1", "total_cents": Unreadable("5.00")})
    )
    assert (row["kind"], row["thred"], row["money_cents"]) == (
        Kind.UNREADABLE,
        "unreadable '5.00'",
        500,
    )


def test_a_value_thred_cannot_take_is_noted_not_a_difference() -> None:
    vendors = entities.get("vendors")
    want = pd.DataFrame(
        {"source_id": ["v1"], "business_id": ["b1"], "archived": [True], "version": [VERSION]}
    )
    got = pd.DataFrame(
        [
            {
                "business_id": "b1",
                "thred_id": "t",
                "external_id": None,
                "source_id": "v1",
                "archived": False,
            }
        ]
    )
    comparison = RecordComparison(vendors, want, got, {}, AS_OF, "vendors")
    assert comparison.run() == []
    assert comparison.warehouse_only == {"archived": ["v1"]}
