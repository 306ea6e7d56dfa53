"""Field validators every mapper shares: one warehouse value in, one Thred-ready value out.

Each validator raises ``RecordInvalid`` naming the field with Thred-style paths
(``line_items[2].quantity``), so bad warehouse data is quarantined with a message a human can
act on instead of costing an API round trip and an opaque 400. Conventions:

- Bodies use the API-reference form (``unit_price``, ``account_identifier``,
  ``base_currency``, ISO date-times with ``Z``, ``YYYY-MM-DD`` dates); see
  docs/thred-api.md section 6 for the aliases we deliberately do not send.
- The top-level ``external_id`` is added by the engine from the entity's stable prefix;
  line items carry ``external_id = "line-<source id>"`` (``documents.line_external_id``).
- Optional values that are None or blank are omitted (``put``), never sent as null or "".
- Strings pass through unchanged (accents, CJK, emoji); control characters are refused, except
  newline and tab in free-text fields (memos, refund reasons, line descriptions, addresses).
- Money arithmetic (rounding, tax tolerance) lives in ``core/money.py``.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from thred_pipeline.core.external_ids import EXTERNAL_ID_MAX_LENGTH, key_problem
from thred_pipeline.core.money import to_cents
from thred_pipeline.core.records import MapContext, RecordInvalid, SourceRecord, utc

# --- Documented length limits: the only ones enforced here ------------------------------------
#
# One table, each limit citing the Thred API contract (thred-api.md). A field that is not in
# it has no documented limit and is sent as it is (a 1,000-character memo included): if Thred
# refuses it, its 400 names the field and quarantines that one record. Limits are checked only
# where the contract states them (vat_number is limited on businesses, not on customers).
#
#   field                                      limit   contract
#   external_id (every entity, line items)       255   2.1 "external_id string 1-255" [1]
#   businesses.legal_name                        255   2.1 "legal_name string 1-255"
#   businesses.vat_number                         20   2.1 "vat_number string <=20"
#   businesses.company_number                     20   2.1 "company_number string <=20"
#   businesses.province                          100   2.1 (not sent by the pipeline)
#   businesses.eu_nace_industry_code              10   2.1 (not sent by the pipeline)
#   invoice payments.payment_processor           100   2.6 "payment_processor string <=100"
#   bill payments.payment_reference              100   2.11 "payment_reference string <=100"
#   bill payments.check_number                    50   2.11 "check_number string <=50"
#   email (every party)                          254   type "email": RFC 5321's path limit [2]
#
# [1] Documented on businesses; the pipeline applies it to every external_id it builds. Ids are
#     also refused when they hold anything but printable ASCII (project decision: the payments'
#     Idempotency-Key header carries the external_id, and HTTP headers cannot carry other text).
# [2] An address longer than that is not a valid email address, whatever Thred's limit.

LEGAL_NAME_MAX_LENGTH: Final = 255
VAT_NUMBER_MAX_LENGTH: Final = 20
COMPANY_NUMBER_MAX_LENGTH: Final = 20
PROVINCE_MAX_LENGTH: Final = 100
EU_NACE_INDUSTRY_CODE_MAX_LENGTH: Final = 10
PAYMENT_PROCESSOR_MAX_LENGTH: Final = 100
BILL_PAYMENT_REFERENCE_MAX_LENGTH: Final = 100
CHECK_NUMBER_MAX_LENGTH: Final = 50
EMAIL_MAX_LENGTH: Final = 254

DOCUMENTED_LIMITS: Final[Mapping[str, int]] = {
    "external_id": EXTERNAL_ID_MAX_LENGTH,
    "businesses.legal_name": LEGAL_NAME_MAX_LENGTH,
    "businesses.vat_number": VAT_NUMBER_MAX_LENGTH,
    "businesses.company_number": COMPANY_NUMBER_MAX_LENGTH,
    "businesses.province": PROVINCE_MAX_LENGTH,
    "businesses.eu_nace_industry_code": EU_NACE_INDUSTRY_CODE_MAX_LENGTH,
    "invoice_payments.payment_processor": PAYMENT_PROCESSOR_MAX_LENGTH,
    "bill_payments.payment_reference": BILL_PAYMENT_REFERENCE_MAX_LENGTH,
    "bill_payments.check_number": CHECK_NUMBER_MAX_LENGTH,
    "email": EMAIL_MAX_LENGTH,
}


EARLIEST_YEAR: Final = 1900
LATEST_YEAR: Final = 2100

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Characters of Unicode categories Cc (C0/C1 controls and DEL: U+0000-U+001F, U+007F-U+009F)
# and Cs (lone surrogates, which cannot be encoded as UTF-8): both sets are fixed by Unicode's
# stability policy, so one precompiled class finds the first of them in C instead of asking
# ``unicodedata.category`` once per character (test_mapping_text checks every code point).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")  # \t, \n allowed


# --- Scalar validators ----------------------------------------------------------------------


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def text_field(
    value: Any,
    path: str,
    *,
    required: bool = False,
    max_length: int | None = None,
    multiline: bool = False,
) -> str | None:
    """A string field, passed through unchanged (Unicode letters, emoji…) if it is sendable.

    ``max_length`` only where the contract documents one (``DOCUMENTED_LIMITS``).
    """
    if value is None or (isinstance(value, str) and not value.strip()):  # blank(), inlined
        if required:
            raise RecordInvalid(path, "is required")
        return None
    if not isinstance(value, str):
        raise RecordInvalid(path, f"must be text, got {type(value).__name__} ({value!r})")
    if max_length is not None and len(value) > max_length:
        raise RecordInvalid(
            path, f"is {len(value)} characters long; Thred accepts at most {max_length}"
        )
    found = (_CONTROL_MULTILINE if multiline else _CONTROL).search(value)
    if found is not None:
        allowed = " (only newlines and tabs are allowed here)" if multiline else ""
        raise RecordInvalid(
            path,
            f"contains control character U+{ord(found.group()):04X} "
            f"at position {found.start()}{allowed}",
        )
    return value


def required_text(value: Any, path: str, *, max_length: int | None = None) -> str:
    text = text_field(value, path, required=True, max_length=max_length)
    assert text is not None
    return text


def email_field(value: Any, path: str, *, required: bool = False) -> str | None:
    text = text_field(value, path, required=required, max_length=EMAIL_MAX_LENGTH)
    if text is not None and not _EMAIL.fullmatch(text):
        raise RecordInvalid(path, f"{text!r} is not a valid email address")
    return text


def country_code(value: Any, path: str, *, required: bool = False) -> str | None:
    """ISO-3166 alpha-2; warehouse case is normalised ("gb" → "GB")."""
    text = text_field(value, path, required=required)
    if text is None:
        return None
    code = text.upper()
    if not _COUNTRY.fullmatch(code):
        raise RecordInvalid(path, f"{text!r} is not an ISO-3166 two-letter country code")
    return code


def currency_code(value: Any, path: str, ctx: MapContext) -> str:
    """Thred books in the business's base currency only (contract 4.2)."""
    code = required_text(value, path).upper()
    if not _CURRENCY.fullmatch(code):
        raise RecordInvalid(path, f"{value!r} is not an ISO-4217 currency code")
    base = ctx.base_currency.upper()
    if code != base:
        raise RecordInvalid(
            path,
            f"is {code} but the business's base currency is {base}; "
            "Thred only accepts amounts in the base currency",
        )
    return code


def enum_value(value: Any, path: str, allowed: Sequence[str], *, upper: bool = False) -> str:
    """An enum value, case- and separator-normalised ("Bank Transfer" → "bank_transfer")."""
    text = required_text(value, path)
    normal = re.sub(r"[\s-]+", "_", text.strip())
    normal = normal.upper() if upper else normal.lower()
    if normal not in allowed:
        raise RecordInvalid(path, f"{text!r} is not one of: {', '.join(allowed)}")
    return normal


def _iso(moment: date) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _check_year(moment: date, path: str) -> None:
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise RecordInvalid(
            path, f"{_iso(moment)} is outside the accepted years {EARLIEST_YEAR}-{LATEST_YEAR}"
        )


def _parse_moment(value: Any, path: str, what: str) -> datetime | date:
    """A date or date-time value; aware date-times are returned in UTC."""
    moment: datetime | date
    if isinstance(value, datetime | date):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            raise RecordInvalid(path, f"{value!r} is not a valid {what}") from None
    else:
        raise RecordInvalid(path, f"must be a {what}, got {type(value).__name__} ({value!r})")
    if isinstance(moment, datetime):
        if not 1 < moment.year < 9999:  # converting year 1 or 9999 with an offset overflows
            _check_year(moment, path)
        moment = utc(moment)
    _check_year(moment, path)
    return moment


def datetime_field(value: Any, path: str, *, required: bool = False) -> str | None:
    """ISO-8601 UTC date-time with ``Z``; naive warehouse timestamps are UTC."""
    if blank(value):
        if required:
            raise RecordInvalid(path, "is required")
        return None
    moment = _parse_moment(value, path, "date-time")
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return _iso(moment)


def date_field(value: Any, path: str) -> str:
    """``YYYY-MM-DD``; a date-time is taken as its UTC calendar day."""
    if blank(value):
        raise RecordInvalid(path, "is required")
    moment = _parse_moment(value, path, "date (YYYY-MM-DD)")
    day = moment.date() if isinstance(moment, datetime) else moment
    return day.isoformat()


def bool_field(value: Any, path: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # SQLite stores booleans as 0/1
        return bool(value)
    raise RecordInvalid(path, f"must be true or false, got {value!r}")


def count_field(value: Any, path: str) -> int | None:
    """A non-negative whole number that is not money (e.g. payment terms in days)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | float | Decimal):
        raise RecordInvalid(path, f"must be a whole number, got {type(value).__name__} ({value!r})")
    number: int
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
        if not exact.is_finite() or exact != exact.to_integral_value():
            raise RecordInvalid(path, f"must be a whole number, got {value}")
        number = int(exact)
    if number < 0:
        raise RecordInvalid(path, f"must not be negative, got {number}")
    return number


def cents_or_zero(value: Any, path: str) -> int:
    """Money columns with a warehouse default of 0 (discounts, fees)."""
    return 0 if value is None else to_cents(value, path)


def source_ref(value: Any, path: str) -> str:
    """A parent's source id, checked before any lookup so bad data is rejected, not deferred.

    An id that can never become an external_id (not printable ASCII, or longer than one can
    be) is refused here, naming the referencing column: its parent can never be in Thred.
    """
    if blank(value):
        raise RecordInvalid(path, "is required (no reference to look up)")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordInvalid(path, f"must be an id, got {type(value).__name__} ({value!r})")
    text = str(value)
    problem = key_problem(text)
    if problem is None and len(text) >= EXTERNAL_ID_MAX_LENGTH:
        problem = (
            f"is {len(text)} characters long; no record with such an id can be in Thred "
            f"(external_ids are at most {EXTERNAL_ID_MAX_LENGTH} characters, prefix included)"
        )
    if problem is not None:
        raise RecordInvalid(path, f"references id {text[:80]!r}, which {problem}")
    return text


def put(body: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        body[key] = value


def child_rows(record: SourceRecord, key: str) -> list[dict[str, Any]]:
    return list(record.children.get(key) or [])


def party_names(row: Mapping[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    put(names, "individual_name", text_field(row.get("individual_name"), "individual_name"))
    put(names, "company_name", text_field(row.get("company_name"), "company_name"))
    if not names:
        raise RecordInvalid("individual_name", "needs individual_name or company_name (both empty)")
    return names
