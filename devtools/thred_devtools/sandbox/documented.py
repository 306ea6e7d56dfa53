"""The documented response shapes: what a strict sandbox answers (the default).

Each ``Spec`` lists the fields thred-api.md marks [doc] or [example] for one response object,
with the section it comes from. ``project`` keeps exactly those fields (recursively: a nested
spec applies to a nested object, or to every object of a nested list); ``shape`` does that
unless the sandbox runs with ``extended_fields``. The services build the extended objects;
the routes pass them through ``shape`` on the way out, so an Idempotency-Key replay cached
under one mode answers correctly in the other.

Readings where the contract shows less than a full object (docs/thred-contract.md):

- A field shown without its inner keys (``refund_payments[...]``, ``vendor{...}``,
  ``customers[...]``) gets the documented shape of that object where one exists: a refund's
  refund payments are refund payments (2.8), a bill's vendor is a vendor (2.4), AR aging
  rows mirror the documented AP aging rows (2.15). Otherwise it is passed through as is
  (``documents``, ``reconciled_bank_transactions``, ``_meta``).
- Invoices and bills are marked truncated ([gap]): only the visible fields, plus
  ``external_id`` on bills (their create page documents it as the idempotency key; invoices
  show it already). An invoice's lines are not shown at all; they keep ``tax_code``, which the
  tax-vat page says Thred "stores/returns ... on the line" (4.3).
- Reports (P&L, balance sheet, cash flow) and journal entries are only partly documented and
  the pipeline does not read them: they are answered as built in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thred_devtools.sandbox.state import Sandbox

__all__ = [
    "ACCOUNT",
    "AP_AGING",
    "AR_AGING",
    "BILL",
    "BILL_PAYMENT",
    "BUSINESS",
    "BUSINESS_CREATE",
    "BUSINESS_TOKEN",
    "CUSTOMER",
    "INVOICE",
    "PARTNER_TOKEN",
    "PAYMENT",
    "PAYMENT_CREATE",
    "PAYMENT_DELETE",
    "PAYOUT",
    "REFUND",
    "REFUND_PAYMENT",
    "TAX_CODES",
    "VENDOR",
    "VENDOR_CREDIT",
    "Spec",
    "page_of",
    "project",
    "shape",
]

# field -> None (kept as it is) or the spec of the nested object / of each nested list item.
Spec = Mapping[str, "Spec | None"]


def _fields(text: str, **nested: Spec | None) -> Spec:
    """A spec from comma-separated names plus nested specs (names are kept in order)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    duplicates = {n for n in names if names.count(n) > 1} | (set(names) & set(nested))
    if duplicates:
        raise ValueError(f"listed twice: {sorted(duplicates)}")
    spec: dict[str, Spec | None] = dict.fromkeys(names)
    spec.update(nested)
    return spec


# 1.3 partner token, 1.4 business token (200 responses shown in full).
PARTNER_TOKEN = _fields("access_token, token_type, expires_in")
BUSINESS_TOKEN = _fields("access_token, token_type, expires_in, scope, business_id")

# 2.1 businesses: create "Body: ..." (+ `_meta` on create and on the idempotent 200); get,
# list and PATCH have the same body ("detail (same body as create)").
BUSINESS = _fields(
    """id, external_id, legal_name, name, entity_type, phone_number, tin, vat_number,
    company_number, country, province, eu_nace_industry_code, email, base_currency,
    accounting_method, fiscal_year_end, activation_at, is_active, created_at, updated_at,
    metadata"""
)
BUSINESS_CREATE = {**BUSINESS, "_meta": None}

# 2.14 tax codes (not paginated).
TAX_CODES = _fields(
    "business_id, count",
    tax_codes=_fields(
        "code, name, rate, purchase_account, sales_account, effective_from, is_active"
    ),
)

# 2.3 customers: create response; [inferred] the same shape for list, detail and archive.
CUSTOMER = _fields(
    """type, id, external_id, reference_number, individual_name, company_name, display_name,
    email, mobile_phone, office_phone, address_line1, address_line2, city, state_county,
    postal_code, country, full_address, address_string, vat_number, tax_exempt, status,
    is_active, is_archived, transaction_tags, notes, metadata, payment_terms_days,
    credit_limit, credit_limit_cents, outstanding_balance, created_at, updated_at,
    archived_at""",
    documents=_fields("url, expires_in, document_id, file_name, file_size, mime_type"),
)

# 2.4 vendors: create response (no outstanding_balance, no archive flags: not documented).
VENDOR = _fields(
    """type, id, external_id, individual_name, company_name, email, mobile_phone,
    office_phone, address_string, memo, status, transaction_tags, documents"""
)

# 2.5 invoices: "Response (partially visible)" -- truncated [gap]; lines: 4.3 tax_code.
INVOICE = _fields(
    """type, id, business_id, external_id, status, sent_at, due_at, paid_at, voided_at,
    is_overdue, invoice_number, invoice_type, currency, memo""",
    customer=CUSTOMER,
    line_items=_fields("tax_code"),
)

# 2.6 invoice payments: the create (and PATCH) response is wrapped, with *_cents names.
PAYMENT_CREATE = _fields(
    "",
    payment=_fields(
        """id, business_id, customer_id, total_amount_cents, applied_amount_cents,
        allocated_amount_cents, unapplied_amount_cents, remaining_amount_cents, currency,
        status, payment_method, payment_reference, external_id, note, bank_reference,
        metadata, idempotency_key, created_at, updated_at""",
        applied_invoices=_fields(
            "id, invoice_number, applied_amount_cents, status, outstanding_amount_cents"
        ),
    ),
)
# 2.6 list and detail "Item shape": unwrapped, non-_cents names.
PAYMENT = _fields(
    """id, customer_name, customer_email, payment_method, total_amount, allocated_amount,
    unallocated_amount, net_amount, processing_fee, processing_fee_cents, display_amount,
    is_fully_allocated, is_completed, processed_at, failed_at, created_at, updated_at,
    reconciled_bank_transactions""",
    customer=_fields("id, name, email, company_name"),
    allocations=_fields(
        """id, invoice_id, invoice_number, invoice_status, amount, allocated_at,
        transaction_tags, notes"""
    ),
    refund_allocations=_fields("refund_id, amount_cents, allocated_at, reference_number"),
)
# 2.6 delete: "Response {message, payment_id, status, updated_at}" (bill payments alike).
PAYMENT_DELETE = _fields("message, payment_id, status, updated_at")

# 2.8 refund payments.
REFUND_PAYMENT = _fields(
    """id, refund_id, refunded_amount, refund_processing_fee, reconciled_bank_transactions,
    created_at, updated_at, external_id, completed_at, method, processor, transaction_tags,
    memo, metadata"""
)
# 2.7 refunds; refund_payments[...] are refund payments (2.8).
REFUND = _fields(
    "id, refunded_amount, customer_id, customer_name",
    allocations=_fields(
        """id, allocation_type, amount, invoice_id, invoice_number,
        invoice_outstanding_balance_cents, target_description, description, allocation_date"""
    ),
    refund_payments=REFUND_PAYMENT,
)

# 2.9 payouts.
PAYOUT = _fields(
    """id, business_id, external_id, processor, processor_payout_id, paid_out_amount_cents,
    fee_cents, additional_refunds_amount_cents, net_amount_cents, currency, status,
    completed_at, imported_at, reference_number, memo, metadata, payment_count,
    refund_payment_count, gross_payments_amount_cents, total_refunds_amount_cents,
    expected_net_amount_cents, amount_variance_cents, reconciliation_status,
    settlement_file_id, created_at, updated_at""",
    payments=_fields(
        """id, external_id, payment_reference, customer_name, payment_date,
        total_amount_cents, currency"""
    ),
    refund_payments=_fields(
        "id, external_id, refund_id, customer_name, refunded_amount_cents, completed_at"
    ),
)

# 2.10 bills: "Response ... (truncated) [gap]" -- the visible fields plus external_id (the
# create page's idempotency key); vendor{...} is a vendor (2.4).
BILL = _fields(
    """type, id, business_id, external_id, status, terms, issue_date, received_at, due_at,
    paid_at, voided_at, is_overdue, currency""",
    vendor=VENDOR,
    line_items=_fields(
        """id, bill_id, currency, unit_price, quantity, subtotal, sales_taxes_total,
        total_amount, tax_rate, description, product""",
        account_identifier=_fields("id, type"),
    ),
    bill_payment_allocations=_fields("amount_cents, payment_date, payment_method, bill_payment_id"),
)

# 2.11 bill payments (create, list, detail).
BILL_PAYMENT = _fields(
    """id, business_id, vendor_id, vendor_name, payment_reference, external_id,
    processor_payment_id, check_number, amount_cents, currency, processing_fee_cents,
    net_amount_cents, allocated_amount_cents, unallocated_amount_cents, is_fully_allocated,
    payment_method, status, payment_date, value_date, submitted_at, completed_at, failed_at,
    description, memo, failure_reason, metadata, vendor_refund_allocations,
    reconciled_bank_transactions, created_at, updated_at""",
    allocations=_fields(
        """id, bill_id, bill_number, vendor_bill_number, bill_status, amount_cents,
        allocation_date, created_at, description"""
    ),
)

# 2.12 vendor credits.
VENDOR_CREDIT = _fields(
    """id, external_id, status, received_at, currency, source_bill_id, tags, total_amount,
    applied_amount, document, created_at, updated_at""",
    vendor=_fields("id, external_id, display_name"),
    line_items=_fields(
        "amount, tags, memo, metadata", expense_account_identifier=_fields("id, type")
    ),
    allocations=_fields(
        "bill_id, bill_number, amount_cents, bill_outstanding_balance_cents, applied_at"
    ),
)

# 2.15 aging: total_outstanding_cents, total_aging_buckets{...}, and per-party rows. AP rows
# are shown ({vendor_id, vendor_name, total_outstanding_cents, aging_buckets}); AR rows
# ("customers[...]") mirror them. No external ids in the rows.
_BUCKETS = _fields("current, days_1_30, days_31_60, days_61_90, over_90_days")
AR_AGING = _fields(
    "total_outstanding_cents",
    total_aging_buckets=_BUCKETS,
    customers=_fields(
        "customer_id, customer_name, total_outstanding_cents", aging_buckets=_BUCKETS
    ),
)
AP_AGING = _fields(
    "total_outstanding_cents",
    total_aging_buckets=_BUCKETS,
    vendors=_fields("vendor_id, vendor_name, total_outstanding_cents", aging_buckets=_BUCKETS),
)

# 2.16 chart of accounts item (list and create).
ACCOUNT = _fields(
    """id, code, name, currency, account_type, account_type_display, account_subtype,
    account_subtype_display, parent_account_code, current_balance, current_balance_formatted,
    debit_balance, credit_balance, period_balance, has_children, hierarchy_level, is_active"""
)

# 2.0 lists: {count, page_info, results} plus next/previous (the project's decision).
_PAGE = ("count", "page_info", "results", "next", "previous")


def project(spec: Spec, value: Any) -> Any:
    """``value`` with only the fields of ``spec`` (nested objects and lists too)."""
    if isinstance(value, list):
        return [project(spec, item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, inner in spec.items():
        if key in value:
            out[key] = value[key] if inner is None else project(inner, value[key])
    return out


def page_of(spec: Spec) -> Spec:
    """The spec of a list page whose results have ``spec``."""
    return {**dict.fromkeys(_PAGE), "results": spec}


def shape(sb: Sandbox, spec: Spec, body: Any) -> Any:
    """``body`` as the sandbox answers it: projected on ``spec`` unless ``extended_fields``."""
    return body if sb.extended_fields else project(spec, body)
