"""Payload mappers: one warehouse record (with its child rows) → one Thred API request body.

Every mapper is a pure function ``(SourceRecord, MapContext) -> Mapped``. It validates every
value before it can reach Thred and raises ``RecordInvalid`` naming the field with Thred-style
paths (``line_items[2].quantity``), so bad warehouse data is quarantined with a message a
human can act on instead of costing an API round trip and an opaque 400.

Conventions shared by all mappers:

- Bodies use the API-reference form (``unit_price``, ``account_identifier``,
  ``base_currency``, ISO date-times with ``Z``, ``YYYY-MM-DD`` dates); see
  docs/thred-api.md section 6 for the aliases we deliberately do not send.
- The top-level ``external_id`` is added by the engine from the registry's stable prefix;
  child line items carry ``external_id = "line-<source id>"``.
- Optional values that are None or blank are omitted, never sent as null or "".
- Strings pass through unchanged (accents, CJK, emoji); control characters are refused, except
  newline and tab in free-text fields (memos, refund reasons, line descriptions, addresses).
- Everything is validated first and parents are resolved last, so a record that is both
  invalid and waiting for a parent is rejected now rather than deferred and rejected later.
- Money arithmetic (rounding, tax tolerance) lives in ``money.py``.

This module must not import ``thred_pipeline.entities``: the registry imports it.
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Final

from thred_pipeline.core.money import (
    TAX_TOLERANCE_CENTS,
    line_gross_cents,
    tax_cents,
    to_cents,
    to_quantity,
)
from thred_pipeline.core.records import MapContext, Mapped, RecordInvalid, SourceRecord, utc

__all__ = [
    "BILL_PAYMENT_METHODS",
    "DOCUMENTED_LIMITS",
    "EXTERNAL_ID_MAX_LENGTH",
    "INVOICE_PAYMENT_METHODS",
    "PAYOUT_STATUSES",
    "REFUND_METHODS",
    "check_external_id",
    "map_bill",
    "map_bill_payment",
    "map_business",
    "map_customer",
    "map_invoice",
    "map_invoice_payment",
    "map_payout",
    "map_refund",
    "map_refund_payment",
    "map_vendor",
    "map_vendor_credit",
]

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

EXTERNAL_ID_MAX_LENGTH: Final = 255
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

# --- Enums and ranges from the contract ----------------------------------------------------------

EARLIEST_YEAR: Final = 1900
LATEST_YEAR: Final = 2100

BUSINESS_COUNTRIES: Final = frozenset(
    {"GB", "DE", "FR", "NL", "ES", "IT", "IE", "BE", "AT", "PT", "SE", "NO", "DK", "FI", "IS"}
    | {"MY", "SG"}
)  # 2.1 "supported countries"
BASE_CURRENCIES: Final = ("GBP", "EUR", "USD", "SEK", "NOK", "DKK", "ISK", "MYR", "SGD")  # 2.1
ACCOUNTING_METHODS: Final = ("cash", "accrual")  # 2.1
# 4.4: countries whose entity_type must be a listed code; only GB's list is documented.
ENTITY_TYPES_BY_COUNTRY: Final[Mapping[str, tuple[str, ...]]] = {
    "GB": ("limited", "sole_trader", "llp", "partnership", "plc"),
}
INVOICE_PAYMENT_METHODS: Final = (
    "bank_transfer",
    "credit_card",
    "debit_card",
    "ach",
    "check",
    "cash",
    "paypal",
    "stripe",
    "other",
)  # 2.6
REFUND_METHODS: Final = ("CASH", "CARD", "BANK_TRANSFER", "ACH", "CHECK", "OTHER")  # 2.7/2.8
PAYOUT_STATUSES: Final = ("pending", "paid")  # 2.9
BILL_PAYMENT_METHODS: Final = (
    "bank_transfer",
    "ach",
    "wire",
    "check",
    "credit_card",
    "cash",
    "other",
)  # 2.11

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_MULTILINE_OK: Final = frozenset("\n\t")


# --- Scalar validators ----------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(
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
    if _blank(value):
        if required:
            raise RecordInvalid(path, "is required")
        return None
    if not isinstance(value, str):
        raise RecordInvalid(path, f"must be text, got {type(value).__name__} ({value!r})")
    if max_length is not None and len(value) > max_length:
        raise RecordInvalid(
            path, f"is {len(value)} characters long; Thred accepts at most {max_length}"
        )
    for position, char in enumerate(value):
        if multiline and char in _MULTILINE_OK:
            continue
        # Cc: C0/C1 controls and DEL; Cs: lone surrogates, which cannot be encoded as UTF-8.
        if unicodedata.category(char) in ("Cc", "Cs"):
            allowed = " (only newlines and tabs are allowed here)" if multiline else ""
            raise RecordInvalid(
                path,
                f"contains control character U+{ord(char):04X} at position {position}{allowed}",
            )
    return value


def _required_text(value: Any, path: str, *, max_length: int | None = None) -> str:
    text = _text(value, path, required=True, max_length=max_length)
    assert text is not None
    return text


def _email(value: Any, path: str, *, required: bool = False) -> str | None:
    text = _text(value, path, required=required, max_length=EMAIL_MAX_LENGTH)
    if text is not None and not _EMAIL.fullmatch(text):
        raise RecordInvalid(path, f"{text!r} is not a valid email address")
    return text


def _country(value: Any, path: str, *, required: bool = False) -> str | None:
    """ISO-3166 alpha-2; warehouse case is normalised ("gb" → "GB")."""
    text = _text(value, path, required=required)
    if text is None:
        return None
    code = text.upper()
    if not _COUNTRY.fullmatch(code):
        raise RecordInvalid(path, f"{text!r} is not an ISO-3166 two-letter country code")
    return code


def _currency(value: Any, path: str, ctx: MapContext) -> str:
    """Thred books in the business's base currency only (contract 4.2)."""
    code = _required_text(value, path).upper()
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


def _enum(value: Any, path: str, allowed: Sequence[str], *, upper: bool = False) -> str:
    """An enum value, case- and separator-normalised ("Bank Transfer" → "bank_transfer")."""
    text = _required_text(value, path)
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


def _datetime(value: Any, path: str, *, required: bool = False) -> str | None:
    """ISO-8601 UTC date-time with ``Z``; naive warehouse timestamps are UTC."""
    if _blank(value):
        if required:
            raise RecordInvalid(path, "is required")
        return None
    moment = _parse_moment(value, path, "date-time")
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    return _iso(moment)


def _date(value: Any, path: str) -> str:
    """``YYYY-MM-DD``; a date-time is taken as its UTC calendar day."""
    if _blank(value):
        raise RecordInvalid(path, "is required")
    moment = _parse_moment(value, path, "date (YYYY-MM-DD)")
    day = moment.date() if isinstance(moment, datetime) else moment
    return day.isoformat()


def _bool(value: Any, path: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):  # SQLite stores booleans as 0/1
        return bool(value)
    raise RecordInvalid(path, f"must be true or false, got {value!r}")


def _count(value: Any, path: str) -> int | None:
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


def _cents_or_zero(value: Any, path: str) -> int:
    """Money columns with a warehouse default of 0 (discounts, fees)."""
    return 0 if value is None else to_cents(value, path)


def _key_problem(text: str) -> str | None:
    """Why ``text`` cannot be (part of) an external_id, or None if it can."""
    for position, char in enumerate(text):
        if not " " <= char <= "~":
            kind = "non-ASCII" if ord(char) > 127 else "control"
            return (
                f"has the {kind} character {char!r} (U+{ord(char):04X}) at position {position}; "
                "ids must be printable ASCII (they become Thred external_ids and the "
                "Idempotency-Key header)"
            )
    return None


def check_external_id(external_id: str, path: str, *, source_id: str | None = None) -> str:
    """``external_id`` if Thred can take it as one, else ``RecordInvalid`` naming ``path``.

    ``source_id`` is the warehouse id the external_id was built from, so the message speaks
    about what the warehouse holds. Rules: printable ASCII, at most
    ``EXTERNAL_ID_MAX_LENGTH`` characters prefix included (see ``DOCUMENTED_LIMITS``).
    """
    raw = external_id if source_id is None else source_id
    problem = _key_problem(raw)
    if problem is not None:
        raise RecordInvalid(path, problem)
    if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
        prefix = len(external_id) - len(raw)
        within = f" with its {prefix}-character prefix" if prefix else ""
        raise RecordInvalid(
            path,
            f"is {len(raw)} characters long; as a Thred external_id{within} it would be "
            f"{len(external_id)}, and Thred accepts at most {EXTERNAL_ID_MAX_LENGTH}",
        )
    return external_id


def _ref(value: Any, path: str) -> str:
    """A parent's source id, checked before any lookup so bad data is rejected, not deferred.

    An id that can never become an external_id (not printable ASCII, or longer than one can
    be) is refused here, naming the referencing column: its parent can never be in Thred.
    """
    if _blank(value):
        raise RecordInvalid(path, "is required (no reference to look up)")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordInvalid(path, f"must be an id, got {type(value).__name__} ({value!r})")
    text = str(value)
    problem = _key_problem(text)
    if problem is None and len(text) >= EXTERNAL_ID_MAX_LENGTH:
        problem = (
            f"is {len(text)} characters long; no record with such an id can be in Thred "
            f"(external_ids are at most {EXTERNAL_ID_MAX_LENGTH} characters, prefix included)"
        )
    if problem is not None:
        raise RecordInvalid(path, f"references id {text[:80]!r}, which {problem}")
    return text


def _put(body: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        body[key] = value


def _children(record: SourceRecord, key: str) -> list[dict[str, Any]]:
    return list(record.children.get(key) or [])


def _line_external_id(line: Mapping[str, Any], path: str) -> str:
    source_id = _text(line.get("id"), f"{path}.external_id", required=True)
    assert source_id is not None
    return check_external_id(f"line-{source_id}", f"{path}.external_id", source_id=source_id)


def _account(code: Any, ctx: MapContext, path: str) -> dict[str, str]:
    if _blank(code):
        raise RecordInvalid(path, "account code is required")
    return {"type": "AccountId", "id": ctx.account_id(code, path)}


def _quantity_text(quantity: Decimal) -> str:
    """Normalised decimal string: Decimal("1.5000") → "1.5", Decimal("10") → "10"."""
    return format(quantity.normalize(), "f")


# --- Shared line and allocation handling ------------------------------------------------------


def _taxes(
    line: Mapping[str, Any],
    path: str,
    net: int,
    ctx: MapContext,
    *,
    exempt_customer: str | None = None,
) -> tuple[dict[str, Any], int]:
    """A line's ``tax_code``/``sales_taxes`` fields and its tax in cents (contract 4.3)."""
    raw_amount = line.get("tax_amount_cents")
    amount_path = f"{path}.sales_taxes[0].amount"
    amount = None if raw_amount is None else to_cents(raw_amount, amount_path)
    if _blank(line.get("tax_code")):
        if amount:
            raise RecordInvalid(
                f"{path}.tax_code",
                f"the line has tax_amount_cents {amount} but no tax_code; "
                "Thred needs a tax code to accept a tax amount",
            )
        return {}, 0
    code = _required_text(line.get("tax_code"), f"{path}.tax_code")
    tax_code = ctx.tax_code(code, f"{path}.tax_code")
    if exempt_customer is not None and tax_code.rate > 0:
        raise RecordInvalid(
            f"{path}.tax_code",
            f"customer {exempt_customer!r} is tax-exempt but this line uses {code} "
            f"({tax_code.rate:%}); use EXEMPT or a zero-rated code",
        )
    expected = tax_cents(net, tax_code.rate)
    if amount is None:
        amount = expected
    elif abs(amount - expected) > TAX_TOLERANCE_CENTS:
        raise RecordInvalid(
            amount_path,
            f"tax_amount_cents {amount} disagrees with {code} at rate {tax_code.rate} of net "
            f"{net}: expected {expected} (±{TAX_TOLERANCE_CENTS} cent)",
        )
    return {"tax_code": code, "sales_taxes": [{"code": code, "amount": amount}]}, amount


def _priced_line(line: Mapping[str, Any], path: str) -> tuple[Decimal, int, int]:
    """Quantity, unit price and gross cents of an invoice or bill line."""
    quantity = to_quantity(line.get("quantity"), f"{path}.quantity")
    unit_price = to_cents(line.get("unit_price_cents"), f"{path}.unit_price")
    return quantity, unit_price, line_gross_cents(quantity, unit_price)


def _allocations(
    rows: Sequence[Mapping[str, Any]], ref_column: str, total: int, total_label: str
) -> list[tuple[str, int, str]]:
    """Validated (parent source id, amount, path) triples; Σ may not exceed ``total``."""
    checked: list[tuple[str, int, str]] = []
    for index, row in enumerate(rows):
        path = f"allocations[{index}]"
        amount = to_cents(row.get("amount_cents"), f"{path}.amount_cents", minimum=1)
        checked.append((_ref(row.get(ref_column), f"{path}.{ref_column}"), amount, path))
    allocated = sum(amount for _, amount, _ in checked)
    if allocated > total:
        raise RecordInvalid(
            "allocations",
            f"allocations add up to {allocated} cents, more than the {total_label} of {total}",
        )
    return checked


def _resolve_allocations(
    checked: Sequence[tuple[str, int, str]], entity: str, key: str, ctx: MapContext
) -> list[dict[str, Any]]:
    return [
        {key: ctx.parent_id(entity, source, f"{path}.{key}"), "amount_cents": amount}
        for source, amount, path in checked
    ]


# --- Parties ---------------------------------------------------------------------------------


def map_business(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST businesses/ (partner-scoped); PATCH cannot change country or base_currency."""
    row = record.row
    country = _country(row.get("country"), "country", required=True)
    assert country is not None
    if country not in BUSINESS_COUNTRIES:
        raise RecordInvalid(
            "country",
            f"Thred does not support businesses in {country}; "
            f"supported: {', '.join(sorted(BUSINESS_COUNTRIES))}",
        )
    entity_type = _text(row.get("entity_type"), "entity_type")
    if entity_type is not None and country in ENTITY_TYPES_BY_COUNTRY:
        entity_type = _enum(entity_type, "entity_type", ENTITY_TYPES_BY_COUNTRY[country])
    base_currency = _enum(row.get("base_currency"), "base_currency", BASE_CURRENCIES, upper=True)
    body: dict[str, Any] = {
        "legal_name": _required_text(
            row.get("legal_name"), "legal_name", max_length=LEGAL_NAME_MAX_LENGTH
        )
    }
    _put(body, "entity_type", entity_type)
    _put(body, "email", _email(row.get("email"), "email", required=True))
    _put(body, "phone_number", _text(row.get("phone_number"), "phone_number"))
    body["country"] = country
    body["base_currency"] = base_currency
    _put(
        body,
        "vat_number",
        _text(row.get("vat_number"), "vat_number", max_length=VAT_NUMBER_MAX_LENGTH),
    )
    _put(
        body,
        "company_number",
        _text(row.get("company_number"), "company_number", max_length=COMPANY_NUMBER_MAX_LENGTH),
    )
    if not _blank(row.get("accounting_method")):
        body["accounting_method"] = _enum(
            row.get("accounting_method"), "accounting_method", ACCOUNTING_METHODS
        )
    update = {k: v for k, v in body.items() if k not in ("country", "base_currency")}
    return Mapped(body=body, update_body=update)


def _names(row: Mapping[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    _put(names, "individual_name", _text(row.get("individual_name"), "individual_name"))
    _put(names, "company_name", _text(row.get("company_name"), "company_name"))
    if not names:
        raise RecordInvalid("individual_name", "needs individual_name or company_name (both empty)")
    return names


def map_customer(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST customers/. Archiving is the engine's terminal call, not part of the body."""
    row = record.row
    body: dict[str, Any] = _names(row)
    _put(body, "email", _email(row.get("email"), "email"))
    _put(body, "mobile_phone", _text(row.get("phone"), "mobile_phone"))
    _put(body, "address_line1", _text(row.get("address_line1"), "address_line1"))
    _put(body, "city", _text(row.get("city"), "city"))
    _put(body, "postal_code", _text(row.get("postal_code"), "postal_code"))
    _put(body, "country", _country(row.get("country"), "country"))
    _put(body, "vat_number", _text(row.get("vat_number"), "vat_number"))
    _put(body, "tax_exempt", _bool(row.get("tax_exempt"), "tax_exempt"))
    _put(body, "payment_terms_days", _count(row.get("payment_terms_days"), "payment_terms_days"))
    return Mapped(body=body)


def map_vendor(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST vendors/. The address is one free-text string, so line breaks are kept."""
    row = record.row
    body: dict[str, Any] = _names(row)
    _put(body, "email", _email(row.get("email"), "email"))
    _put(body, "mobile_phone", _text(row.get("phone"), "mobile_phone"))
    _put(body, "address_string", _text(row.get("address"), "address_string", multiline=True))
    _put(body, "country", _country(row.get("country"), "country"))
    _put(body, "vat_number", _text(row.get("vat_number"), "vat_number"))
    return Mapped(body=body)


# --- Accounts receivable ---------------------------------------------------------------------


def map_invoice(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST invoices/ and PUT invoices/{id}/ (same body). Voiding is the engine's call."""
    row = record.row
    customer = _ref(row.get("customer_id"), "customer_id")
    exempt = customer if customer in ctx.tax_exempt_customers else None
    invoice_number = _required_text(row.get("invoice_number"), "invoice_number")
    _currency(row.get("currency"), "currency", ctx)  # checked, not sent: not in the schema
    sent_at = _datetime(row.get("sent_at"), "sent_at", required=True)
    due_at = _datetime(row.get("due_at"), "due_at")
    memo = _text(row.get("memo"), "memo", multiline=True)
    additional_discount = _cents_or_zero(
        row.get("additional_discount_cents"), "additional_discount"
    )

    lines = _children(record, "line_items")
    if not lines:
        raise RecordInvalid("line_items", "an invoice needs at least one line item; none found")
    line_items: list[dict[str, Any]] = []
    total = 0
    for index, line in enumerate(lines):
        path = f"line_items[{index}]"
        item: dict[str, Any] = {"external_id": _line_external_id(line, path)}
        _put(
            item,
            "description",
            _text(line.get("description"), f"{path}.description", multiline=True),
        )
        _put(item, "product", _text(line.get("product"), f"{path}.product"))
        quantity, unit_price, gross = _priced_line(line, path)
        discount = _cents_or_zero(line.get("discount_cents"), f"{path}.discount_amount")
        if discount > gross:
            raise RecordInvalid(
                f"{path}.discount_amount",
                f"discount {discount} is more than the line amount {gross} "
                f"(quantity {_quantity_text(quantity)} x unit price {unit_price})",
            )
        net = gross - discount
        item["quantity"] = _quantity_text(quantity)
        item["unit_price"] = unit_price
        item["discount_amount"] = discount
        item["account_identifier"] = _account(
            line.get("revenue_account_code"), ctx, f"{path}.account_identifier"
        )
        tax_fields, tax = _taxes(line, path, net, ctx, exempt_customer=exempt)
        item.update(tax_fields)
        line_items.append(item)
        total += net + tax
    if additional_discount > total:
        raise RecordInvalid(
            "additional_discount",
            f"additional_discount_cents {additional_discount} is more than the invoice's "
            f"line total {total}",
        )

    body: dict[str, Any] = {"customer_id": ctx.parent_id("customers", customer, "customer_id")}
    body["invoice_number"] = invoice_number
    body["sent_at"] = sent_at
    _put(body, "due_at", due_at)
    _put(body, "memo", memo)
    body["additional_discount"] = additional_discount
    body["line_items"] = line_items
    return Mapped(body=body, amount_cents=total - additional_discount)


def map_invoice_payment(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST invoices/payments/ with its allocations to invoices."""
    row = record.row
    customer = _ref(row.get("customer_id"), "customer_id")
    total = to_cents(row.get("amount_cents"), "total_amount_cents", minimum=1)
    payment_date = _date(row.get("payment_date"), "payment_date")
    currency = _currency(row.get("currency"), "currency", ctx)
    method = _enum(row.get("payment_method"), "payment_method", INVOICE_PAYMENT_METHODS)
    reference = _text(row.get("reference"), "payment_reference")
    fee = _cents_or_zero(row.get("processing_fee_cents"), "processing_fee_cents")
    processor = _text(
        row.get("processor"), "payment_processor", max_length=PAYMENT_PROCESSOR_MAX_LENGTH
    )
    checked = _allocations(_children(record, "allocations"), "invoice_id", total, "payment total")

    body: dict[str, Any] = {"customer_id": ctx.parent_id("customers", customer, "customer_id")}
    body["total_amount_cents"] = total
    body["payment_date"] = payment_date
    body["currency"] = currency
    body["payment_method"] = method
    _put(body, "payment_reference", reference)
    body["processing_fee_cents"] = fee
    _put(body, "payment_processor", processor)
    body["allocations"] = _resolve_allocations(checked, "invoices", "invoice_id", ctx)
    return Mapped(body=body, amount_cents=total)


def map_refund(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST invoices/refunds/: a credit against one invoice (the cash leg is a refund payment)."""
    row = record.row
    invoice = _ref(row.get("invoice_id"), "invoice_id")
    amount = to_cents(row.get("amount_cents"), "amount_cents", minimum=1)
    method = _enum(row.get("method"), "method", REFUND_METHODS, upper=True)
    completed_at = _datetime(row.get("completed_at"), "completed_at")
    memo = _text(row.get("reason"), "memo", multiline=True)

    body: dict[str, Any] = {"invoice_id": ctx.parent_id("invoices", invoice, "invoice_id")}
    body["amount_cents"] = amount
    body["method"] = method
    _put(body, "completed_at", completed_at)
    _put(body, "memo", memo)
    return Mapped(body=body, amount_cents=amount)


def map_refund_payment(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST invoices/refunds/{refund_id}/payments/: the refund's parent goes in the path."""
    row = record.row
    refund = _ref(row.get("refund_id"), "refund_id")
    amount = to_cents(row.get("amount_cents"), "amount_cents", minimum=1)
    method = _enum(row.get("method"), "method", REFUND_METHODS, upper=True)
    completed_at = _datetime(row.get("completed_at"), "completed_at", required=True)
    processor = _text(row.get("processor"), "processor")

    refund_id = ctx.parent_id("refunds", refund, "refund_id")
    body: dict[str, Any] = {"amount_cents": amount, "method": method, "completed_at": completed_at}
    _put(body, "processor", processor)
    return Mapped(body=body, path_params={"refund_id": refund_id}, amount_cents=amount)


def map_payout(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST payouts/ (an upsert on external_id) listing the payments it settles."""
    row = record.row
    processor = _required_text(row.get("processor"), "processor")
    processor_payout_id = _text(row.get("processor_payout_id"), "processor_payout_id")
    paid_out = to_cents(row.get("paid_out_amount_cents"), "paid_out_amount_cents")
    fee = _cents_or_zero(row.get("fee_cents"), "fee_cents")
    currency = _currency(row.get("currency"), "currency", ctx)
    status = _enum(row.get("status"), "status", PAYOUT_STATUSES)
    completed_at = _datetime(row.get("completed_at"), "completed_at")

    payments: list[str] = []
    refund_payments: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(_children(record, "items")):
        path = f"items[{index}]"
        has_payment = not _blank(item.get("payment_id"))
        has_refund = not _blank(item.get("refund_payment_id"))
        if has_payment == has_refund:
            which = "both payment_id and" if has_payment else "neither payment_id nor"
            raise RecordInvalid(
                path,
                f"payout item {item.get('id')!r} sets {which} refund_payment_id; "
                "exactly one is required",
            )
        column, bucket = (
            ("payment_id", payments) if has_payment else ("refund_payment_id", refund_payments)
        )
        source = _ref(item.get(column), f"{path}.{column}")
        earlier = seen.setdefault((column, source), index)
        if earlier != index:
            raise RecordInvalid(
                f"{path}.{column}",
                f"{column} {source!r} is already in this payout at items[{earlier}]",
            )
        bucket.append(source)

    body: dict[str, Any] = {"processor": processor}
    _put(body, "processor_payout_id", processor_payout_id)
    body["paid_out_amount_cents"] = paid_out
    body["fee_cents"] = fee
    body["currency"] = currency
    body["status"] = status
    _put(body, "completed_at", completed_at)
    body["payment_ids"] = [
        ctx.parent_id("invoice_payments", source, f"payment_ids[{i}]")
        for i, source in enumerate(payments)
    ]
    body["refund_payment_ids"] = [
        ctx.parent_id("refund_payments", source, f"refund_payment_ids[{i}]")
        for i, source in enumerate(refund_payments)
    ]
    return Mapped(body=body, amount_cents=paid_out)


# --- Accounts payable ------------------------------------------------------------------------


def map_bill(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST bills/ and PUT bills/{id}/ (same body; PUT replaces the line items)."""
    row = record.row
    vendor = _ref(row.get("vendor_id"), "vendor_id")
    bill_number = _required_text(row.get("bill_number"), "bill_number")
    vendor_bill_number = _text(row.get("vendor_bill_number"), "vendor_bill_number")
    bill_date = _date(row.get("bill_date"), "bill_date")
    due_at = _datetime(row.get("due_at"), "due_at")
    currency = _currency(row.get("currency"), "currency", ctx)
    memo = _text(row.get("memo"), "memo", multiline=True)

    lines = _children(record, "line_items")
    if not lines:
        raise RecordInvalid("line_items", "a bill needs at least one line item; none found")
    line_items: list[dict[str, Any]] = []
    total = 0
    for index, line in enumerate(lines):
        path = f"line_items[{index}]"
        item: dict[str, Any] = {"external_id": _line_external_id(line, path)}
        _put(
            item,
            "description",
            _text(line.get("description"), f"{path}.description", multiline=True),
        )
        quantity, unit_price, net = _priced_line(line, path)
        item["quantity"] = _quantity_text(quantity)
        item["unit_price"] = unit_price
        item["account_identifier"] = _account(
            line.get("expense_account_code"), ctx, f"{path}.account_identifier"
        )
        tax_fields, tax = _taxes(line, path, net, ctx)
        item.update(tax_fields)
        line_items.append(item)
        total += net + tax

    body: dict[str, Any] = {"vendor_id": ctx.parent_id("vendors", vendor, "vendor_id")}
    body["bill_number"] = bill_number
    _put(body, "vendor_bill_number", vendor_bill_number)
    body["bill_date"] = bill_date
    _put(body, "due_at", due_at)
    body["currency"] = currency
    _put(body, "memo", memo)
    body["line_items"] = line_items
    return Mapped(body=body, amount_cents=total)


def map_bill_payment(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST bills/payments/ with its allocations to bills (created atomically by Thred)."""
    row = record.row
    vendor = _ref(row.get("vendor_id"), "vendor_id")
    amount = to_cents(row.get("amount_cents"), "amount_cents", minimum=1)
    currency = _currency(row.get("currency"), "currency", ctx)
    method = _enum(row.get("payment_method"), "payment_method", BILL_PAYMENT_METHODS)
    payment_date = _date(row.get("payment_date"), "payment_date")
    check_number = _text(
        row.get("check_number"), "check_number", max_length=CHECK_NUMBER_MAX_LENGTH
    )
    if method == "check" and check_number is None:
        raise RecordInvalid("check_number", "is required when payment_method is 'check'")
    reference = _text(
        row.get("reference"), "payment_reference", max_length=BILL_PAYMENT_REFERENCE_MAX_LENGTH
    )
    checked = _allocations(_children(record, "allocations"), "bill_id", amount, "payment amount")

    body: dict[str, Any] = {"vendor_id": ctx.parent_id("vendors", vendor, "vendor_id")}
    body["amount_cents"] = amount
    body["currency"] = currency
    body["payment_method"] = method
    body["payment_date"] = payment_date
    _put(body, "check_number", check_number)
    _put(body, "payment_reference", reference)
    body["allocations"] = _resolve_allocations(checked, "bills", "bill_id", ctx)
    return Mapped(body=body, amount_cents=amount)


def map_vendor_credit(record: SourceRecord, ctx: MapContext) -> Mapped:
    """POST vendor-credits/: credit lines plus optional applications to bills."""
    row = record.row
    vendor = _ref(row.get("vendor_id"), "vendor_id")
    received_at = _datetime(row.get("received_at"), "received_at", required=True)
    currency = _currency(row.get("currency"), "currency", ctx)
    memo = _text(row.get("memo"), "memo", multiline=True)
    credit_number = _required_text(row.get("credit_number"), "metadata.credit_number")

    lines = _children(record, "lines")
    if not lines:
        raise RecordInvalid("line_items", "a vendor credit needs at least one line; none found")
    line_items: list[dict[str, Any]] = []
    total = 0
    for index, line in enumerate(lines):
        path = f"line_items[{index}]"
        amount = to_cents(line.get("amount_cents"), f"{path}.amount", minimum=1)
        item: dict[str, Any] = {"amount": amount}
        _put(
            item,
            "description",
            _text(line.get("description"), f"{path}.description", multiline=True),
        )
        item["expense_account_identifier"] = _account(
            line.get("expense_account_code"), ctx, f"{path}.expense_account_identifier"
        )
        line_items.append(item)
        total += amount
    checked = _allocations(_children(record, "allocations"), "bill_id", total, "credit total")

    body: dict[str, Any] = {"vendor_id": ctx.parent_id("vendors", vendor, "vendor_id")}
    body["received_at"] = received_at
    body["currency"] = currency
    _put(body, "memo", memo)
    body["metadata"] = {"credit_number": credit_number}
    body["line_items"] = line_items
    body["allocations"] = _resolve_allocations(checked, "bills", "bill_id", ctx)
    return Mapped(body=body, amount_cents=total)
