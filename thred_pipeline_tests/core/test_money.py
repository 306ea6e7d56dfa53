"""Money helpers: half-up rounding, line arithmetic, and strict cents/quantity parsing."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thred_pipeline.core.money import (
    TAX_TOLERANCE_CENTS,
    line_gross_cents,
    line_net_cents,
    round_half_up,
    tax_cents,
    tax_within_tolerance,
    to_cents,
    to_quantity,
)
from thred_pipeline.core.records import RecordInvalid


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.5", 1),
        ("1.5", 2),
        ("2.5", 3),  # not banker's rounding (which would give 2)
        ("2.4999", 2),
        ("-2.5", -3),  # half away from zero
        ("7", 7),
    ],
)
def test_round_half_up_rounds_halves_up(value: str, expected: int) -> None:
    assert round_half_up(Decimal(value)) == expected


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_round_half_up_refuses_non_finite(value: str) -> None:
    with pytest.raises(ValueError, match="cannot round"):
        round_half_up(Decimal(value))


def test_line_amounts_with_fractional_quantity() -> None:
    # 1.5 x 333 = 499.5 -> 500; minus a 20 cent discount.
    assert line_gross_cents(Decimal("1.5"), 333) == 500
    assert line_net_cents(Decimal("1.5"), 333, 20) == 480
    assert line_net_cents(Decimal("0.0001"), 4999, 0) == 0  # 0.4999 -> 0
    assert line_net_cents(Decimal("0.0001"), 5000, 0) == 1  # 0.5 -> 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((Decimal("-1"), 100, 0), "quantity must not be negative"),
        ((Decimal("1"), -100, 0), "unit price must not be negative"),
        ((Decimal("1"), 100, -1), "discount must not be negative"),
        ((Decimal("1"), 100, 101), "discount 101 exceeds the line amount 100"),
    ],
)
def test_line_net_cents_refuses_negative_results(
    args: tuple[Decimal, int, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        line_net_cents(*args)


def test_tax_cents_half_up() -> None:
    assert tax_cents(1000, Decimal("0.20")) == 200
    assert tax_cents(1, Decimal("0.5")) == 1  # 0.5 -> 1
    assert tax_cents(333, Decimal("0.175")) == 58  # 58.275 -> 58
    assert tax_cents(1234, Decimal("0")) == 0
    with pytest.raises(ValueError, match="non-negative fraction"):
        tax_cents(100, Decimal("-0.2"))
    with pytest.raises(ValueError, match="must not be negative"):
        tax_cents(-100, Decimal("0.2"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1250, 1250), (Decimal("1250.00"), 1250), (1250.0, 1250)],
)
def test_to_cents_accepts_whole_numbers(value: object, expected: int) -> None:
    assert to_cents(value, "amount_cents") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is required"),
        ("1250", "not text ('1250')"),
        (True, "not a boolean"),
        (12.5, "must be whole cents"),
        (Decimal("12.5"), "must be whole cents"),
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (Decimal("Infinity"), "finite"),
        (-1, "must not be negative, got -1"),
        (2.0**60, "too large to be exact as a float"),
        (2**64, "larger than a 64-bit amount"),
        ([12], "got list"),
    ],
)
def test_to_cents_rejects(value: object, message: str) -> None:
    with pytest.raises(RecordInvalid) as caught:
        to_cents(value, "allocations[0].amount_cents")
    assert caught.value.field_path == "allocations[0].amount_cents"
    assert message in caught.value.message


def test_to_cents_minimum_one() -> None:
    with pytest.raises(RecordInvalid, match="must be at least 1 cent, got 0"):
        to_cents(0, "amount_cents", minimum=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.5000"), Decimal("1.5")),
        (2, Decimal(2)),
        (1.5, Decimal("1.5")),
        (0.1, Decimal("0.1")),  # the float's shortest repr, not 0.1000000000000000055…
        (Decimal("0.0001"), Decimal("0.0001")),
    ],
)
def test_to_quantity_accepts(value: object, expected: Decimal) -> None:
    assert to_quantity(value, "line_items[0].quantity") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "is required"),
        ("two", "must be a number, not text ('two')"),
        ("2", "not text"),
        (False, "not a boolean"),
        (0, "greater than 0"),
        (Decimal("-1"), "greater than 0"),
        (Decimal("NaN"), "finite"),
        (float("inf"), "finite"),
        (Decimal("1.00001"), "more than 4 decimal places"),
        (Decimal("1e14"), "too large"),
        (object(), "must be a number, got object"),
    ],
)
def test_to_quantity_rejects(value: object, message: str) -> None:
    with pytest.raises(RecordInvalid) as caught:
        to_quantity(value, "line_items[2].quantity")
    assert caught.value.field_path == "line_items[2].quantity"
    assert message in caught.value.message


def test_tax_tolerance_is_measured_from_the_rounded_tax() -> None:
    """The worked example of docs/thred-contract.md: net 10 at 5 % is 0.5, rounded 1."""
    rate = Decimal("0.05")
    assert [a for a in range(5) if tax_within_tolerance(a, 10, rate)] == [0, 1, 2]
    # 20 % of 25 is exactly 5: 4, 5 and 6 pass
    assert [a for a in range(9) if tax_within_tolerance(a, 25, Decimal("0.20"))] == [4, 5, 6]
    # 9 % of 50 is 4.5, rounded 5: 6 passes although it is 1.5 from the unrounded product
    assert tax_within_tolerance(6, 50, Decimal("0.09"))
    assert not tax_within_tolerance(7, 50, Decimal("0.09"))


# --- properties ------------------------------------------------------------------------------

decimals = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=6
)
quantities = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal("100000"), allow_nan=False, places=4
)
prices = st.integers(min_value=0, max_value=10**9)


@given(decimals)
def test_round_half_up_matches_decimal_quantize(value: Decimal) -> None:
    assert round_half_up(value) == int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(decimals)
def test_round_half_up_is_within_half(value: Decimal) -> None:
    assert abs(Decimal(round_half_up(value)) - value) <= Decimal("0.5")


@given(quantities, prices, st.data())
def test_line_net_never_negative_for_valid_input(
    quantity: Decimal, price: int, data: st.DataObject
) -> None:
    gross = line_gross_cents(quantity, price)
    discount = data.draw(st.integers(min_value=0, max_value=gross))
    net = line_net_cents(quantity, price, discount)
    assert 0 <= net <= gross


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10000))
def test_tax_cents_never_exceeds_net_at_rates_up_to_100_percent(
    net: int, basis_points: int
) -> None:
    rate = Decimal(basis_points) / 10000
    assert 0 <= tax_cents(net, rate) <= net


@given(st.integers(min_value=0, max_value=2**62))
def test_to_cents_round_trips_ints_and_decimals(cents: int) -> None:
    assert to_cents(cents, "x") == cents
    assert to_cents(Decimal(cents), "x") == cents


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=10000),
    st.integers(min_value=-5, max_value=5),
)
def test_tax_tolerance_accepts_three_amounts_around_the_rounded_tax(
    net: int, basis_points: int, delta: int
) -> None:
    rate = Decimal(basis_points) / 10000
    expected = tax_cents(net, rate)
    assert tax_within_tolerance(expected + delta, net, rate) == (abs(delta) <= TAX_TOLERANCE_CENTS)
