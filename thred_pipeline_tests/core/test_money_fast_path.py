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
