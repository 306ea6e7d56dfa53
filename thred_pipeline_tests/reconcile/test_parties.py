"""Party balances on hand-built frames: what is open, what Thred says, and what explains it."""

from __future__ import annotations

from typing import Any

import pandas as pd

from thred_pipeline import entities
from thred_pipeline.reconcile.findings import Kind, differences_frame
from thred_pipeline.reconcile.parties import PartyComparison, expected_open, with_parties

AR = next(side for side in entities.BALANCES if side.party == "customers")


def test_open_balance_is_unvoided_documents_minus_allocations() -> None:
    invoices = pd.DataFrame(
        {
            "source_id": ["i1", "i2", "i3"],
            "business_id": ["b1"] * 3,
            "customer_id": ["c1", "c1", "c2"],
            "total_cents": pd.array([100, 40, 70], dtype="Int64"),
            "voided": [False, True, False],
        }
    )
    allocations = pd.DataFrame(
        {"settlement_id": ["p1"], "document_id": ["i1"], "amount_cents": [30]}
    )
    frame = expected_open(invoices, allocations, AR)
    assert dict(zip(frame["party_id"], frame["expected"], strict=True)) == {"c1": 70, "c2": 70}


def compare(
    thred_values: dict[tuple[str, str], dict[str, Any]],
    totals: dict[str, Any],
    differences: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    expected = pd.DataFrame({"business_id": ["b1"], "party_id": ["c1"], "expected": [100]})
    parties = pd.DataFrame({"business_id": ["b1", "b1"], "source_id": ["c1", "c2"]})
    if differences is None:
        differences = with_parties(differences_frame([]), [])
    comparison = PartyComparison(AR, expected, parties, differences, "ar_balances")
    return comparison.run(thred_values, totals)


def test_equal_balances_and_totals_have_no_difference() -> None:
    values = {("b1", "c1"): {"aging": 100, "outstanding_balance": 100}, ("b1", "c2"): {"aging": 0}}
    assert compare(values, {"b1": 100}) == []


def test_two_measures_of_one_balance_put_its_money_at_stake_once_and_the_total_adds_none() -> None:
    values = {("b1", "c1"): {"aging": 60, "outstanding_balance": 60}}
    rows = compare(values, {"b1": 60})
    assert [(r["source_id"], r["field"], r["money_cents"]) for r in rows] == [
        ("c1", "aging", 40),
        ("c1", "outstanding_balance", 0),
        (None, "aging total", 0),
    ]
    assert {r["kind"] for r in rows} == {Kind.DIFFERENT}
    assert rows[0]["external_id"] == "customer-c1"


def test_a_record_difference_of_the_party_explains_its_balance() -> None:
    record = differences_frame(
        [
            {
                "check": "invoices",
                "entity": "invoices",
                "business_id": "b1",
                "source_id": "i9",
                "kind": Kind.MISSING.value,
                "money_cents": 40,
                "cause": "waiting",
                "explanation": "deferred: parent_not_synced",
            }
        ]
    )
    differences = with_parties(record, [{("invoices", "i9"): "c1"}])
    [party, total] = compare({("b1", "c1"): {"aging": 60}}, {"b1": 60}, differences)
    assert (party["cause"], total["cause"]) == ("waiting", "waiting")
    assert "invoices i9" in party["explanation"]


def test_an_unexplained_balance_says_thred_moved_it() -> None:
    [row, _total] = compare({("b1", "c2"): {"aging": 5}}, {"b1": 105})
    assert (row["source_id"], row["cause"], row["money_cents"]) == ("c2", "unexplained", 5)
    assert "Thred's balance moved" in row["explanation"]
