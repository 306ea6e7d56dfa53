"""Request bodies as pydantic models.

Field types are strict (fields.py) because the sandbox exists to catch client mistakes.
Unknown fields are ignored, as real APIs do.
Documented aliases (unit_price / unit_price_cents, ...) are separate optional fields that
the services resolve, so a conflict between two aliases can be reported precisely.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.fields import (
    AccountRef,
    Cents,
    Code,
    Country,
    Currency,
    DateOnly,
    DateOrDateTime,
    Email,
    ExternalId,
    Flag,
    Id,
    JsonObject,
    Name,
    PositiveCents,
    Quantity,
    RequiredName,
    Short,
    Tags,
    Text,
    bounded,
    parse_date,
    parse_date_or_datetime,
)

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
    vat_number: Annotated[str, bounded(20)] | None = None
    company_number: Annotated[str, bounded(20)] | None = None
    country: Country | None = None
    province: Short | None = None
    eu_nace_industry_code: Annotated[str, bounded(10)] | None = None
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
    vat_number: Annotated[str, bounded(20)] | None = None
    company_number: Annotated[str, bounded(20)] | None = None
    province: Short | None = None
    eu_nace_industry_code: Annotated[str, bounded(10)] | None = None
    accounting_method: Literal["cash", "accrual"] | None = None
    fiscal_year_end: DateOnly | None = None
    metadata: JsonObject | None = None
    # not updatable: accepted only when unchanged
    country: Annotated[str, bounded(10)] | None = None
    base_currency: Annotated[str, bounded(10)] | None = None
    currency: Annotated[str, bounded(10)] | None = None
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
    code: Annotated[str, bounded(20, 1)]
    name: RequiredName
    account_type: Literal[rules.ACCOUNT_TYPES]  # type: ignore[valid-type]
    account_subtype: Code | None = None
    parent_id: Id | None = None
    description: Text | None = None
    external_id: ExternalId | None = None
    is_cash_account: Flag = False
