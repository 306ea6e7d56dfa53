"""Request bodies as pydantic models.

Types are strict (a money field given as "100" or 1.5 is refused, not coerced) because the
sandbox exists to catch client mistakes. Unknown fields are ignored, as real APIs do.
Documented aliases (unit_price / unit_price_cents, ...) are separate optional fields that
the services resolve, so a conflict between two aliases can be reported precisely.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from thred_devtools.sandbox import rules

__all__ = [
    "AccountCreate",
    "BillCreate",
    "BillPaymentCreate",
    "BillUpdate",
    "BusinessCreate",
    "BusinessPatch",
    "CustomerCreate",
    "InvoiceCreate",
    "InvoiceUpdate",
    "LineItemIn",
    "PaymentCreate",
    "PayoutUpsert",
    "RefundCreate",
    "RefundPaymentCreate",
    "SalesTaxIn",
    "VendorCreate",
    "VendorCreditCreate",
    "parse_date",
    "parse_date_or_datetime",
]


def _s(max_length: int, min_length: int = 0) -> Any:
    return StringConstraints(strict=True, max_length=max_length, min_length=min_length)


ExternalId = Annotated[str, _s(rules.MAX_EXTERNAL_ID, 1)]
Name = Annotated[str, _s(rules.MAX_NAME)]
RequiredName = Annotated[str, _s(rules.MAX_NAME, 1)]
Short = Annotated[str, _s(rules.MAX_SHORT)]
Code = Annotated[str, _s(rules.MAX_CODE)]
Text = Annotated[str, _s(rules.MAX_TEXT)]
Id = Annotated[str, _s(100, 1)]
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


DateOnly = Annotated[str, _s(10), AfterValidator(parse_date)]
DateOrDateTime = Annotated[str, _s(40), AfterValidator(parse_date_or_datetime)]
Email = Annotated[str, _s(254), AfterValidator(_email)]
Quantity = Annotated[Any, AfterValidator(_quantity)]
Country = Annotated[str, _s(2, 2), AfterValidator(_country)]
AccountRef = Annotated[Any, AfterValidator(_account_ref)]
Currency = Annotated[str, _s(3, 1)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ------------------------------------------------------------------ businesses
class BusinessCreate(Body):
    external_id: ExternalId | None = None
    legal_name: RequiredName
    entity_type: Code | None = None
    email: Email
    phone_number: Code | None = None
    tin: Code | None = None
    vat_number: Annotated[str, _s(20)] | None = None
    company_number: Annotated[str, _s(20)] | None = None
    country: Country | None = None
    province: Short | None = None
    eu_nace_industry_code: Annotated[str, _s(10)] | None = None
    base_currency: Currency | None = None
    currency: Currency | None = None  # older guides
    accounting_method: Literal["cash", "accrual"] = "accrual"
    fiscal_year_end: DateOnly | None = None
    coa_language: Literal["en", "nl"] | None = None
    metadata: JsonObject | None = None


class BusinessPatch(Body):
    legal_name: RequiredName | None = None
    entity_type: Code | None = None
    email: Email | None = None
    phone_number: Code | None = None
    tin: Code | None = None
    vat_number: Annotated[str, _s(20)] | None = None
    company_number: Annotated[str, _s(20)] | None = None
    province: Short | None = None
    eu_nace_industry_code: Annotated[str, _s(10)] | None = None
    accounting_method: Literal["cash", "accrual"] | None = None
    fiscal_year_end: DateOnly | None = None
    metadata: JsonObject | None = None
    # not updatable: accepted only when unchanged
    country: Annotated[str, _s(10)] | None = None
    base_currency: Annotated[str, _s(10)] | None = None
    currency: Annotated[str, _s(10)] | None = None
    external_id: ExternalId | None = None


# ------------------------------------------------------------------ customers / vendors
class CustomerCreate(Body):
    external_id: ExternalId | None = None
    reference_number: Short | None = None
    individual_name: Name | None = None
    company_name: Name | None = None
    name: Name | None = None  # verify-integration guide
    email: Email | None = None
    mobile_phone: Code | None = None
    office_phone: Code | None = None
    address_line1: Name | None = None
    address_line2: Name | None = None
    city: Short | None = None
    state_county: Short | None = None
    postal_code: Code | None = None
    country: Country | None = None
    vat_number: Code | None = None
    tax_exempt: Flag = False
    status: Code | None = None
    transaction_tags: Tags | None = None
    notes: Text | None = None
    metadata: JsonObject | None = None
    payment_terms_days: Annotated[int, Field(strict=True, ge=0, le=3650)] | None = None
    credit_limit_cents: PositiveCents | None = None
    document: JsonObject | None = None


class VendorCreate(Body):
    external_id: ExternalId | None = None
    individual_name: Name | None = None
    company_name: Name | None = None
    name: Name | None = None
    email: Email | None = None
    mobile_phone: Code | None = None
    office_phone: Code | None = None
    address_string: Text | None = None
    memo: Text | None = None
    transaction_tags: Tags | None = None
    country: Country | None = None
    vat_number: Code | None = None
    document: JsonObject | None = None
    metadata: JsonObject | None = None


# ------------------------------------------------------------------ invoices
class SalesTaxIn(Body):
    code: Code | None = None
    name: Name | None = None
    amount: Cents | None = None
    tax_account: AccountRef | None = None
    discount_amount: Cents | None = None


class LineItemIn(Body):
    external_id: ExternalId | None = None
    description: Text | None = None
    product: Name | None = None
    quantity: Quantity = "1"
    unit_price: Cents | None = None
    unit_price_cents: Cents | None = None
    discount_amount: Cents = 0
    account_identifier: AccountRef | None = None
    account_code: Code | None = None
    tax_code: Code | None = None
    sales_taxes: Annotated[list[SalesTaxIn], Field(max_length=10)] = []


LineItems = Annotated[list[LineItemIn], Field(min_length=1, max_length=rules.MAX_LIST)]


class InvoiceCreate(Body):
    external_id: ExternalId | None = None
    customer_id: Id | None = None
    customer_external_id: ExternalId | None = None
    invoice_number: Short | None = None
    invoice_type: Code | None = None
    sent_at: DateOrDateTime | None = None
    due_at: DateOrDateTime | None = None
    voided_at: DateOrDateTime | None = None
    memo: Text | None = None
    currency: Currency | None = None
    line_items: LineItems
    additional_discount: Cents = 0
    additional_sales_taxes: Annotated[list[SalesTaxIn], Field(max_length=10)] = []
    additional_sales_taxes_total: Cents | None = None
    tips: Cents = 0
    tips_account: AccountRef | None = None
    transaction_tags: Tags | None = None
    metadata: JsonObject | None = None
    document: JsonObject | None = None


class InvoiceUpdate(Body):
    external_id: ExternalId | None = None
    customer_id: Id | None = None
    customer_external_id: ExternalId | None = None
    invoice_number: Short | None = None
    invoice_type: Code | None = None
    sent_at: DateOrDateTime | None = None
    due_at: DateOrDateTime | None = None
    memo: Text | None = None
    currency: Currency | None = None
    line_items: LineItems | None = None
    additional_discount: Cents | None = None
    additional_sales_taxes: Annotated[list[SalesTaxIn], Field(max_length=10)] | None = None
    additional_sales_taxes_total: Cents | None = None
    tips: Cents | None = None
    tips_account: AccountRef | None = None
    transaction_tags: Tags | None = None
    metadata: JsonObject | None = None
    document: JsonObject | None = None


# ------------------------------------------------------------------ payments
class AllocationIn(Body):
    invoice_id: Id
    amount_cents: PositiveCents


class PaymentCreate(Body):
    """Two documented forms (payments.create_payment turns the second into the first).

    API reference: ``customer_id``, ``total_amount_cents``, ``allocations``. AR-integration
    seed page: ``invoice_id``, ``amount_cents`` (one allocation; the customer is the
    invoice's). Which fields are required depends on the form, so they are checked there.
    """

    customer_id: Id | None = None
    total_amount_cents: PositiveCents | None = None
    payment_date: DateOnly
    allocations: Annotated[list[AllocationIn], Field(max_length=rules.MAX_LIST)] = []
    invoice_id: Id | None = None
    amount_cents: PositiveCents | None = None
    currency: Currency | None = None
    payment_method: Literal[rules.INVOICE_PAYMENT_METHODS] | None = None  # type: ignore[valid-type]
    payment_reference: Name | None = None
    external_id: ExternalId | None = None
    note: Text | None = None
    notes: Text | None = None
    metadata: JsonObject | None = None
    references: JsonObject | None = None
    processing_fee_cents: Cents = 0
    payment_processor: Short | None = None
    transaction_tags: Tags | None = None


# ------------------------------------------------------------------ refunds
class RefundCreate(Body):
    invoice_id: Id
    amount_cents: PositiveCents | None = None
    partial_amount: PositiveCents | None = None
    method: Code | None = None
    completed_at: DateOrDateTime | None = None
    external_id: ExternalId | None = None
    memo: Text | None = None
    reference_number: Short | None = None
    processor: Short | None = None
    refund_processing_fee_cents: Cents = 0
    document: JsonObject | None = None
    metadata: JsonObject | None = None


class RefundPaymentCreate(Body):
    amount_cents: PositiveCents
    method: Code | None = None
    external_id: ExternalId | None = None
    completed_at: DateOrDateTime | None = None
    processor: Short | None = None
    memo: Text | None = None
    transaction_tags: Tags | None = None
    refund_processing_fee_cents: Cents = 0
    metadata: JsonObject | None = None


# ------------------------------------------------------------------ payouts
class PayoutUpsert(Body):
    external_id: ExternalId | None = None
    processor: Short | None = None
    paid_out_amount_cents: Cents
    fee_cents: Cents = 0
    currency: Currency | None = None
    status: Literal[rules.PAYOUT_STATUSES] | None = None  # type: ignore[valid-type]
    completed_at: DateOrDateTime | None = None
    processor_payout_id: Name | None = None
    additional_refunds_amount_cents: Cents = 0
    payment_ids: Annotated[list[Id], Field(max_length=rules.MAX_LIST)] = []
    refund_payment_ids: Annotated[list[Id], Field(max_length=rules.MAX_LIST)] = []
    reference_number: Short | None = None
    memo: Text | None = None
    metadata: JsonObject | None = None


# ------------------------------------------------------------------ bills
class BillUpdate(Body):
    """A bill update: every field optional (lines, when given, replace the whole set)."""

    external_id: ExternalId | None = None
    vendor_id: Id | None = None
    vendor_external_id: ExternalId | None = None
    bill_number: Short | None = None
    vendor_bill_number: Short | None = None
    purchase_order_number: Short | None = None
    memo: Text | None = None
    terms: Code | None = None
    reference_numbers: Annotated[list[Short], Field(max_length=50)] | None = None
    attachment_urls: Annotated[list[Text], Field(max_length=50)] | None = None
    bill_date: DateOrDateTime | None = None
    received_at: DateOrDateTime | None = None
    due_at: DateOrDateTime | None = None
    approved_at: DateOrDateTime | None = None
    currency: Currency | None = None
    line_items: LineItems | None = None
    transaction_tags: Tags | None = None
    metadata: JsonObject | None = None
    document: JsonObject | None = None


class BillCreate(BillUpdate):
    """A new bill: the update's fields, lines required (pydantic keeps the field order)."""

    line_items: LineItems


class BillAllocationIn(Body):
    bill_id: Id
    amount_cents: PositiveCents
    description: Text | None = None


class BillPaymentCreate(Body):
    vendor_id: Id
    amount_cents: PositiveCents
    payment_method: Literal[rules.BILL_PAYMENT_METHODS]  # type: ignore[valid-type]
    payment_date: DateOnly
    currency: Currency | None = None
    payment_reference: Short | None = None
    check_number: Code | None = None
    description: Text | None = None
    memo: Text | None = None
    processing_fee_cents: Cents = 0
    external_id: ExternalId | None = None
    metadata: JsonObject | None = None
    allocations: Annotated[list[BillAllocationIn], Field(max_length=rules.MAX_LIST)] = []


class VendorCreditLineIn(Body):
    amount: PositiveCents
    description: Text | None = None
    expense_account_identifier: AccountRef | None = None
    account_identifier: AccountRef | None = None
    account_code: Code | None = None
    tags: Tags | None = None
    memo: Text | None = None
    metadata: JsonObject | None = None


class VendorCreditAllocationIn(Body):
    bill_id: Id
    amount_cents: PositiveCents


class VendorCreditCreate(Body):
    external_id: ExternalId | None = None
    vendor_id: Id | None = None
    vendor_external_id: ExternalId | None = None
    vendor_name: Name | None = None  # used when vendor_external_id auto-creates the vendor
    received_at: DateOrDateTime | None = None
    currency: Currency | None = None
    source_bill_id: Id | None = None
    line_items: Annotated[list[VendorCreditLineIn], Field(min_length=1, max_length=rules.MAX_LIST)]
    allocations: Annotated[list[VendorCreditAllocationIn], Field(max_length=rules.MAX_LIST)] = []
    tags: Tags | None = None
    memo: Text | None = None
    metadata: JsonObject | None = None
    document: JsonObject | None = None


# ------------------------------------------------------------------ chart of accounts
class AccountCreate(Body):
    code: Annotated[str, _s(20, 1)]
    name: RequiredName
    account_type: Literal[rules.ACCOUNT_TYPES]  # type: ignore[valid-type]
    account_subtype: Code | None = None
    parent_id: Id | None = None
    description: Text | None = None
    external_id: ExternalId | None = None
    is_cash_account: Flag = False
