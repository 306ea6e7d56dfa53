"""``to_cents``' plain-int fast path against the implementation it short-cuts, verbatim."""

from __future__ import annotations

import numbers
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from thred_pipeline.core import money
from thred_pipeline.core.money import MAX_CENTS, to_cents
from thred_pipeline.core.records import RecordInvalid


def reference_to_cents(value: Any, field_path: str, *, minimum: int = 0) -> int:
    """``to_cents`` before the fast path (the specification)."""
    money._refuse_non_numbers(
        value, field_path, "integer cents", missing="is required (integer cents)"
    )
    cents: int
    if isinstance(value, numbers.Integral):
        cents = int(value)
    elif isinstance(value, float | Decimal):
        exact = Decimal(value)
        if not exact.is_finite():
            raise RecordInvalid(field_path, f"must be a finite number of cents, got {value}")
        if isinstance(value, float) and abs(value) >= 2**53:
            raise RecordInvalid(field_path, f"{value!r} is too large to be exact as a float")
        if exact != exact.to_integral_value():
            raise RecordInvalid(
                field_path, f"must be whole cents (integer minor units), got {value}"
            )
        cents = int(exact)
    else:
        raise RecordInvalid(
            field_path, f"must be integer cents, got {type(value).__name__} ({value!r})"
        )
    if cents < minimum:
        if minimum == 1:
            raise RecordInvalid(field_path, f"must be at least 1 cent, got {cents}")
        raise RecordInvalid(field_path, f"must not be negative, got {cents}")
    if cents > MAX_CENTS:
        raise RecordInvalid(field_path, f"{cents} is larger than a 64-bit amount allows")
    return cents


def outcome(function: Any, value: Any, minimum: int) -> tuple[str, Any]:
    try:
        result = function(value, "amount", minimum=minimum)
        return "ok", (type(result), result)
    except RecordInvalid as exc:
        return "invalid", str(exc)


_EDGES = st.sampled_from([0, 1, -1, MAX_CENTS, MAX_CENTS + 1, -MAX_CENTS, 2**53, True, False])
_VALUES = st.one_of(
    _EDGES,
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.none(),
    st.text(max_size=5),
    st.just(b"1"),
)


@settings(max_examples=3000, deadline=None)
@given(value=_VALUES, minimum=st.sampled_from([0, 1, -5, 10]))
def test_to_cents_outcomes_are_those_of_the_full_checks(value: Any, minimum: int) -> None:
    assert outcome(to_cents, value, minimum) == outcome(reference_to_cents, value, minimum)


def reference_to_quantity(value: Any, field_path: str) -> Decimal:
    """``to_quantity`` before the plain-Decimal fast path (the specification)."""
    money._refuse_non_numbers(value, field_path, "a number", missing="is required")
    quantity: Decimal
    if isinstance(value, Decimal):
        quantity = value
    elif isinstance(value, numbers.Integral):
        quantity = Decimal(int(value))
    elif isinstance(value, float):
        quantity = Decimal(repr(value))
    else:
        raise RecordInvalid(field_path, f"must be a number, got {type(value).__name__} ({value!r})")
    if not quantity.is_finite():
        raise RecordInvalid(field_path, f"must be a finite number, got {value}")
    if quantity <= 0:
        raise RecordInvalid(field_path, f"must be greater than 0, got {quantity}")
    if quantity >= money.MAX_QUANTITY:
        raise RecordInvalid(field_path, f"{quantity} is too large (limit {money.MAX_QUANTITY})")
    exponent = quantity.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > money.QUANTITY_DECIMALS:
        raise RecordInvalid(
            field_path, f"has more than {money.QUANTITY_DECIMALS} decimal places ({quantity})"
        )
    return quantity


def quantity_outcome(function: Any, value: Any) -> tuple[str, Any]:
    try:
        result = function(value, "quantity")
        return "ok", (type(result), str(result), result.as_tuple())
    except RecordInvalid as exc:
        return "invalid", str(exc)


# Decimals as the warehouse holds them (places 0-8, trailing zeros), and any Decimal at all.
_PLACED = st.builds(
    lambda digits, places: Decimal(digits).scaleb(-places),
    st.integers(-(10**20), 10**20),
    st.integers(-6, 10),
)
_QUANTITIES = st.one_of(
    _PLACED,
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("sNaN"), Decimal("1.50000"), Decimal("1E+13"), Decimal("0E-9")]),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
)


@settings(max_examples=3000, deadline=None)
@given(value=_QUANTITIES)
def test_to_quantity_outcomes_are_those_of_the_full_checks(value: Any) -> None:
    assert quantity_outcome(money.to_quantity, value) == quantity_outcome(
        reference_to_quantity, value
    )
