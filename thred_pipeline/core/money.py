"""Money and quantity arithmetic, mirroring how Thred is inferred to compute line amounts.

This is the one place that encodes Thred's rounding. The contract (docs/thred-api.md, 2.5 and
4.3) documents integer minor units but not the rounding mode; we *infer* ROUND_HALF_UP (half
away from zero, ``Decimal`` semantics) for

- a line's gross amount: ``quantity * unit_price`` rounded to whole cents,
- a line's tax: ``net * rate`` rounded to whole cents (``tax_cents``); an explicit tax amount is
  accepted when it is within ±1 cent (``TAX_TOLERANCE_CENTS``) of that *rounded* tax
  (``tax_within_tolerance``).

The tax-tolerance rule is shared: the client's mapper checks a row with ``tax_cents`` and
``TAX_TOLERANCE_CENTS`` and the sandbox calls ``tax_within_tolerance``, so a row one accepts
the other accepts too (docs/thred-contract.md has a worked example). If Thred documents a
different rule, change it here and nowhere else.

Cents are never negative in anything thred-pipeline sends (credits are their own documents), so
the helpers refuse negative input instead of silently producing a negative total.
"""

from __future__ import annotations

import numbers
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from thred_pipeline.core.records import RecordInvalid

__all__ = [
    "MAX_CENTS",
    "MAX_QUANTITY",
    "QUANTITY_DECIMALS",
    "TAX_TOLERANCE_CENTS",
    "line_gross_cents",
    "line_net_cents",
    "round_half_up",
    "tax_cents",
    "tax_within_tolerance",
    "to_cents",
    "to_quantity",
]

ROUNDING = ROUND_HALF_UP
TAX_TOLERANCE_CENTS = 1  # [inferred] contract 4.3: "rounding tolerance", value not documented
QUANTITY_DECIMALS = 4  # warehouse Numeric(18, 4); Thred's own precision is not documented
MAX_QUANTITY = Decimal(10) ** 14  # Numeric(18, 4) leaves 14 integer digits
MAX_CENTS = 2**63 - 1  # a signed 64-bit column on both sides (warehouse BigInteger)
_FLOAT_EXACT = 2**53  # above this a float no longer holds every whole number exactly


def round_half_up(value: Decimal) -> int:
    """Round to a whole number, halves away from zero (2.5 → 3, -2.5 → -3)."""
    if not value.is_finite():
        raise ValueError(f"cannot round {value} to whole cents")
    return int(value.to_integral_value(rounding=ROUNDING))


def line_gross_cents(quantity: Decimal, unit_price_cents: int) -> int:
    """``quantity * unit_price`` in whole cents, before any discount."""
    if quantity < 0:
        raise ValueError(f"quantity must not be negative (got {quantity})")
    if unit_price_cents < 0:
        raise ValueError(f"unit price must not be negative (got {unit_price_cents})")
    return round_half_up(quantity * Decimal(unit_price_cents))


def line_net_cents(quantity: Decimal, unit_price_cents: int, discount_cents: int) -> int:
    """A line's taxable amount: rounded gross minus the line discount; never negative."""
    gross = line_gross_cents(quantity, unit_price_cents)
    if discount_cents < 0:
        raise ValueError(f"discount must not be negative (got {discount_cents})")
    if discount_cents > gross:
        raise ValueError(f"discount {discount_cents} exceeds the line amount {gross}")
    return gross - discount_cents


def tax_cents(net: int, rate: Decimal) -> int:
    """Tax Thred computes for a line: ``net * rate`` (rate is a fraction, 0.20 = 20%)."""
    if net < 0:
        raise ValueError(f"net amount must not be negative (got {net})")
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"tax rate must be a non-negative fraction (got {rate})")
    return round_half_up(Decimal(net) * rate)


def tax_within_tolerance(amount: int, net: int, rate: Decimal) -> bool:
    """Whether an explicit tax ``amount`` agrees with ``net`` at ``rate`` (contract 4.3).

    The one tolerance rule: at most ``TAX_TOLERANCE_CENTS`` away from the *rounded* tax
    ``tax_cents(net, rate)``. Net 5 at 10 % is 0.5, which rounds to 1, so 0, 1 and 2 are
    accepted and 3 is not.
    """
    return abs(amount - tax_cents(net, rate)) <= TAX_TOLERANCE_CENTS


def _refuse_non_numbers(value: Any, field_path: str, what: str, *, missing: str) -> None:
    """Nothing, a boolean or text is never a number here, whatever it would parse as."""
    if value is None:
        raise RecordInvalid(field_path, missing)
    if isinstance(value, bool):
        raise RecordInvalid(field_path, f"must be {what}, not a boolean ({value})")
    if isinstance(value, str):
        raise RecordInvalid(field_path, f"must be {what}, not text ({value!r})")


def to_cents(value: Any, field_path: str, *, minimum: int = 0) -> int:
    """A warehouse money value as integer minor units, or ``RecordInvalid`` naming the field.

    Accepts ints and whole-valued Decimals/floats (some drivers and dataframes hand back
    ``100.0``); refuses text, booleans, fractions of a cent, NaN/Infinity and values below
    ``minimum`` (0 by default: cents are never negative here).
    """
    cents: int
    if type(value) is int:  # the common case (BigInteger columns): the checks below, skipped
        cents = value  # are for None, booleans and text, none of which is exactly an int
        if minimum <= cents <= MAX_CENTS:
            return cents
    else:
        cents = _cents_of(value, field_path)
    if cents < minimum:
        if minimum == 1:
            raise RecordInvalid(field_path, f"must be at least 1 cent, got {cents}")
        raise RecordInvalid(field_path, f"must not be negative, got {cents}")
    if cents > MAX_CENTS:
        raise RecordInvalid(field_path, f"{cents} is larger than a 64-bit amount allows")
    return cents


def _cents_of(value: Any, field_path: str) -> int:
    """``to_cents`` of anything but a plain int, before the range checks."""
    _refuse_non_numbers(value, field_path, "integer cents", missing="is required (integer cents)")
    cents: int
    if isinstance(value, numbers.Integral):
        cents = int(value)
    elif isinstance(value, float | Decimal):
        exact = Decimal(value)
        if not exact.is_finite():
            raise RecordInvalid(field_path, f"must be a finite number of cents, got {value}")
        if isinstance(value, float) and abs(value) >= _FLOAT_EXACT:
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
    return cents


def to_quantity(value: Any, field_path: str) -> Decimal:
    """A line quantity as a Decimal: a finite number > 0 with at most 4 decimal places."""
    # A Decimal is what the warehouse hands back: never None, a boolean or text.
    quantity = value if type(value) is Decimal else _quantity_of(value, field_path)
    if not quantity.is_finite():
        raise RecordInvalid(field_path, f"must be a finite number, got {value}")
    if quantity <= 0:
        raise RecordInvalid(field_path, f"must be greater than 0, got {quantity}")
    if quantity >= MAX_QUANTITY:
        raise RecordInvalid(field_path, f"{quantity} is too large (limit {MAX_QUANTITY})")
    exponent = quantity.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > QUANTITY_DECIMALS:
        # Trailing zeros may hide fewer places (1.50000). Otherwise normalizing could only
        # raise the exponent (below 10**14 with 4 places is 18 digits: nothing is rounded).
        exponent = quantity.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite, so never 'n'/'N'/'F'
    if -exponent > QUANTITY_DECIMALS:
        raise RecordInvalid(
            field_path,
            f"has more than {QUANTITY_DECIMALS} decimal places ({quantity})",
        )
    return quantity


def _quantity_of(value: Any, field_path: str) -> Decimal:
    """``to_quantity`` of anything but a plain Decimal, before the range checks."""
    _refuse_non_numbers(value, field_path, "a number", missing="is required")
    quantity: Decimal
    if isinstance(value, Decimal):
        quantity = value
    elif isinstance(value, numbers.Integral):
        quantity = Decimal(int(value))
    elif isinstance(value, float):
        quantity = Decimal(repr(value))  # the shortest decimal that round-trips: 1.5, not 1.49…
    else:
        raise RecordInvalid(field_path, f"must be a number, got {type(value).__name__} ({value!r})")
    return quantity
