"""The field types of request bodies: strict scalars, dates, quantities, account references.

Strict on purpose (a money field given as "100" or 1.5 is refused, not coerced): the
sandbox exists to catch client mistakes. Messages read like Thred's (DRF) ones.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from thred_devtools.sandbox import rules

__all__ = [
    "AccountRef",
    "Cents",
    "Code",
    "Country",
    "Currency",
    "DateOnly",
    "DateOrDateTime",
    "Email",
    "ExternalId",
    "Flag",
    "Id",
    "JsonObject",
    "Name",
    "PositiveCents",
    "Quantity",
    "RequiredName",
    "Short",
    "Tags",
    "Text",
    "bounded",
    "parse_date",
    "parse_date_or_datetime",
]


def bounded(max_length: int, min_length: int = 0) -> Any:
    return StringConstraints(strict=True, max_length=max_length, min_length=min_length)


ExternalId = Annotated[str, bounded(rules.MAX_EXTERNAL_ID, 1)]
Name = Annotated[str, bounded(rules.MAX_NAME)]
RequiredName = Annotated[str, bounded(rules.MAX_NAME, 1)]
Short = Annotated[str, bounded(rules.MAX_SHORT)]
Code = Annotated[str, bounded(rules.MAX_CODE)]
Text = Annotated[str, bounded(rules.MAX_TEXT)]
Id = Annotated[str, bounded(100, 1)]
Cents = Annotated[int, Field(strict=True, ge=0, le=rules.MAX_AMOUNT_CENTS)]
PositiveCents = Annotated[int, Field(strict=True, ge=1, le=rules.MAX_AMOUNT_CENTS)]
Flag = Annotated[bool, Field(strict=True)]
JsonObject = dict[str, Any]
Tags = Annotated[list[Any], Field(max_length=100)]

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:?\d{2})?$"
)
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_date(value: str) -> str:
    """Strict ``YYYY-MM-DD``; returns the normalised date."""
    if not _DATE_RE.match(value):
        raise ValueError("Date has wrong format. Use YYYY-MM-DD.")
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError("Date has wrong format. Use YYYY-MM-DD.") from None


def parse_date_or_datetime(value: str) -> str:
    """A date or an ISO-8601 date-time; returns UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    if _DATE_RE.match(value):
        return parse_date(value) + rules.DATE_ONLY_TIME
    if not _DATETIME_RE.match(value):
        raise ValueError("Datetime has wrong format. Use YYYY-MM-DD or ISO 8601 date-time.")
    text = value.replace(" ", "T", 1)
    if len(text) > 26 and "." in text:  # trim nanoseconds for fromisoformat
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            "Datetime has wrong format. Use YYYY-MM-DD or ISO 8601 date-time."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ValueError("Enter a valid email address.")
    return value


def _quantity(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("A valid number is required.")
    if isinstance(value, str) and len(value) > 40:
        raise ValueError("A valid number is required.")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("A valid number is required.") from None
    if not number.is_finite():
        raise ValueError("A valid number is required.")
    if number <= 0:
        raise ValueError("Ensure this value is greater than 0.")
    if number > rules.MAX_QUANTITY:
        raise ValueError(f"Ensure this value is less than or equal to {rules.MAX_QUANTITY}.")
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > rules.QUANTITY_MAX_DECIMALS:
        raise ValueError(
            f"Ensure that there are no more than {rules.QUANTITY_MAX_DECIMALS} decimal places."
        )
    return format(number.normalize(), "f")


def _country(value: str) -> str:
    upper = value.upper()
    if not re.match(r"^[A-Z]{2}$", upper):
        raise ValueError("Enter a two-letter ISO 3166 country code.")
    return upper


def _account_ref(value: Any) -> Any:
    if isinstance(value, str):
        if not 0 < len(value) <= 100:
            raise ValueError("Invalid account identifier.")
        return value
    if isinstance(value, dict):
        for key in ("id", "code", "account_code", "stable_name"):
            candidate = value.get(key)
            if isinstance(candidate, str) and 0 < len(candidate) <= 100:
                return value
    raise ValueError(
        'Invalid account identifier. Expected an account code or {"type": "AccountId", "id": ...}.'
    )


DateOnly = Annotated[str, bounded(10), AfterValidator(parse_date)]
DateOrDateTime = Annotated[str, bounded(40), AfterValidator(parse_date_or_datetime)]
Email = Annotated[str, bounded(254), AfterValidator(_email)]
Quantity = Annotated[Any, AfterValidator(_quantity)]
Country = Annotated[str, bounded(2, 2), AfterValidator(_country)]
AccountRef = Annotated[Any, AfterValidator(_account_ref)]
Currency = Annotated[str, bounded(3, 1)]
