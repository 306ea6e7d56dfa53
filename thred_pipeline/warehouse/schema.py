"""The warehouse source contract: the tables thred-pipeline reads, as SQLAlchemy Core.

One definition serves PostgreSQL (production, tests) and SQLite (the embedded default), so the
DDL a platform team applies and the DDL the demo creates cannot drift apart. Every table carries
``updated_at``; a change to a child row (line item, allocation) must also bump it, and the
extractor additionally picks up parents whose children changed.

References between tables (``customer_id``, ``invoice_id`` …) are logical, not enforced: a
replicated warehouse often lands children before parents, and the sync must cope (it defers the
child) rather than rely on the database refusing it.

Conventions: ids are the platform's own string primary keys; money is integer minor units
(``*_cents``) in the business's base currency; timestamps are UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

metadata = MetaData()


def _id() -> Column[str]:
    return Column("id", String(64), primary_key=True)


def _timestamps() -> list[Column[object]]:
    return [
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
    ]


def _business_fk() -> Column[str]:
    return Column("business_id", String(64), nullable=False, index=True)


businesses = Table(
    "businesses",
    metadata,
    _id(),
    Column("legal_name", String(255), nullable=False),
    Column("entity_type", String(64)),
    Column("email", String(254), nullable=False),
    Column("phone_number", String(32)),
    Column("country", String(2), nullable=False),
    Column("base_currency", String(3), nullable=False),
    Column("vat_number", String(20)),
    Column("company_number", String(20)),
    Column("accounting_method", String(16), nullable=False, server_default="accrual"),
    Column("is_active", Boolean, nullable=False, server_default="1"),
    *_timestamps(),
)

customers = Table(
    "customers",
    metadata,
    _id(),
    _business_fk(),
    Column("individual_name", String(255)),
    Column("company_name", String(255)),
    Column("email", String(254)),
    Column("phone", String(32)),
    Column("address_line1", String(255)),
    Column("city", String(100)),
    Column("postal_code", String(20)),
    Column("country", String(2)),
    Column("vat_number", String(20)),
    Column("tax_exempt", Boolean, nullable=False, server_default="0"),
    Column("payment_terms_days", Integer),
    Column("archived_at", DateTime(timezone=True)),
    *_timestamps(),
)

vendors = Table(
    "vendors",
    metadata,
    _id(),
    _business_fk(),
    Column("individual_name", String(255)),
    Column("company_name", String(255)),
    Column("email", String(254)),
    Column("phone", String(32)),
    Column("address", String(500)),
    Column("country", String(2)),
    Column("vat_number", String(20)),
    Column("archived_at", DateTime(timezone=True)),
    *_timestamps(),
)

invoices = Table(
    "invoices",
    metadata,
    _id(),
    _business_fk(),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("invoice_number", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("voided_at", DateTime(timezone=True)),
    Column("memo", Text),
    Column("additional_discount_cents", BigInteger, nullable=False, server_default="0"),
    *_timestamps(),
)

invoice_line_items = Table(
    "invoice_line_items",
    metadata,
    _id(),
    Column("invoice_id", String(64), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("description", String(500)),
    Column("product", String(255)),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("discount_cents", BigInteger, nullable=False, server_default="0"),
    Column("tax_code", String(32)),
    # VAT the platform charged on this line; Thred checks it against the code's rate (±1 cent).
    Column("tax_amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("revenue_account_code", String(16), nullable=False, server_default="4000"),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

payments = Table(
    "payments",
    metadata,
    _id(),
    _business_fk(),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payment_date", Date, nullable=False),
    Column("payment_method", String(32), nullable=False),
    Column("reference", String(100)),
    Column("processing_fee_cents", BigInteger, nullable=False, server_default="0"),
    Column("processor", String(100)),
    *_timestamps(),
)

payment_allocations = Table(
    "payment_allocations",
    metadata,
    _id(),
    Column("payment_id", String(64), nullable=False, index=True),
    Column("invoice_id", String(64), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

refunds = Table(
    "refunds",
    metadata,
    _id(),
    _business_fk(),
    Column("invoice_id", String(64), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("method", String(32), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    Column("reason", String(500)),
    *_timestamps(),
)

refund_payments = Table(
    "refund_payments",
    metadata,
    _id(),
    _business_fk(),
    Column("refund_id", String(64), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("method", String(32), nullable=False),
    Column("processor", String(100)),
    Column("completed_at", DateTime(timezone=True), nullable=False),
    *_timestamps(),
)

payouts = Table(
    "payouts",
    metadata,
    _id(),
    _business_fk(),
    Column("processor", String(100), nullable=False),
    Column("processor_payout_id", String(100)),
    Column("paid_out_amount_cents", BigInteger, nullable=False),
    Column("fee_cents", BigInteger, nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("completed_at", DateTime(timezone=True)),
    *_timestamps(),
)

payout_items = Table(
    "payout_items",
    metadata,
    _id(),
    Column("payout_id", String(64), nullable=False, index=True),
    # Exactly one of payment_id / refund_payment_id is set.
    Column("payment_id", String(64)),
    Column("refund_payment_id", String(64)),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

bills = Table(
    "bills",
    metadata,
    _id(),
    _business_fk(),
    Column("vendor_id", String(64), nullable=False, index=True),
    Column("bill_number", String(64), nullable=False),
    Column("vendor_bill_number", String(64)),
    Column("currency", String(3), nullable=False),
    Column("bill_date", Date, nullable=False),
    Column("due_at", DateTime(timezone=True)),
    Column("memo", Text),
    *_timestamps(),
)

bill_line_items = Table(
    "bill_line_items",
    metadata,
    _id(),
    Column("bill_id", String(64), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("description", String(500)),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("tax_code", String(32)),
    Column("tax_amount_cents", BigInteger, nullable=False, server_default="0"),
    Column("expense_account_code", String(16), nullable=False, server_default="5000"),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

bill_payments = Table(
    "bill_payments",
    metadata,
    _id(),
    _business_fk(),
    Column("vendor_id", String(64), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("payment_method", String(32), nullable=False),
    Column("payment_date", Date, nullable=False),
    Column("check_number", String(50)),
    Column("reference", String(100)),
    *_timestamps(),
)

bill_payment_allocations = Table(
    "bill_payment_allocations",
    metadata,
    _id(),
    Column("bill_payment_id", String(64), nullable=False, index=True),
    Column("bill_id", String(64), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

vendor_credits = Table(
    "vendor_credits",
    metadata,
    _id(),
    _business_fk(),
    Column("vendor_id", String(64), nullable=False, index=True),
    Column("credit_number", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("memo", Text),
    *_timestamps(),
)

vendor_credit_lines = Table(
    "vendor_credit_lines",
    metadata,
    _id(),
    Column("vendor_credit_id", String(64), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("description", String(500)),
    Column("amount_cents", BigInteger, nullable=False),
    Column("expense_account_code", String(16), nullable=False, server_default="5000"),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

vendor_credit_allocations = Table(
    "vendor_credit_allocations",
    metadata,
    _id(),
    Column("vendor_credit_id", String(64), nullable=False, index=True),
    Column("bill_id", String(64), nullable=False, index=True),
    Column("amount_cents", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

Index("ix_invoices_business_updated", invoices.c.business_id, invoices.c.updated_at)
Index("ix_payments_business_updated", payments.c.business_id, payments.c.updated_at)
