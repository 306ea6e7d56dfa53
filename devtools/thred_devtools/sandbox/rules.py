"""Every [inferred] choice of the sandbox, in one place.

thred-api.md marks many behaviours as [inferred] or [gap]: the public Thred docs do not
settle them. The sandbox has to pick *something*; those picks live here, each with a short
note, so that when Thred documents the real behaviour only this module changes. Anything
not in this module is either documented or plumbing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

# --------------------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------------------
TOKEN_TYPE: Final = "Bearer"  # noqa: S105 - not a secret
BUSINESS_TOKEN_SCOPE: Final = "business_access"  # noqa: S105 - [doc] example response
PARTNER_TOKEN_SCOPE: Final = "partner_access"  # noqa: S105 - [inferred] not in the docs
# [inferred] The docs only name authentication_required / invalid_token; wrong Basic
# credentials are neither, so they get their own code (still 401).
BAD_CREDENTIALS_CODE: Final = "invalid_credentials"

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------
# [inferred] Malformed JSON and oversized bodies reuse the documented error shape.
MALFORMED_JSON_CODE: Final = "validation_error"
BODY_TOO_LARGE_CODE: Final = "request_too_large"  # 413
NOT_FOUND_CODE: Final = "not_found"  # unknown route
METHOD_NOT_ALLOWED_CODE: Final = "method_not_allowed"
RATE_LIMITED_CODE: Final = "rate_limited"  # 429 (rate limits are undocumented)
SERVER_ERROR_CODE: Final = "server_error"
# [inferred] Changing an object's external_id to one another object already uses (PUT) is a
# real conflict, unlike a create replay (which is a 200).
DUPLICATE_EXTERNAL_ID_CODE: Final = "duplicate_external_id"
INVALID_STATE_CODE: Final = "invalid_state"  # 409 for illegal state changes
# [inferred] <resource>_not_found pattern (doc shows business_ and invoice_ only).
NOT_FOUND_CODES: Final[dict[str, str]] = {
    "businesses": "business_not_found",
    "customers": "customer_not_found",
    "invoices": "invoice_not_found",
    "invoice_payments": "payment_not_found",
    "refunds": "refund_not_found",
    "refund_payments": "refund_payment_not_found",
    "payouts": "payout_not_found",
    "vendors": "vendor_not_found",
    "bills": "bill_not_found",
    "bill_payments": "bill_payment_not_found",
    "vendor_credits": "vendor_credit_not_found",
    "accounts": "account_not_found",
    "journal_entries": "journal_entry_not_found",
}
REQUIRED_MSG: Final = "This field is required."

# --------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------
DEFAULT_PAGE_SIZE: Final = 20  # [doc]
MAX_PAGE_SIZE: Final = 100  # [doc]
# [inferred] A page past the end answers 200 with empty results (not 404), and an empty
# collection still has one (empty) page.
MIN_TOTAL_PAGES: Final = 1

# --------------------------------------------------------------------------------------
# Field limits
# --------------------------------------------------------------------------------------
MAX_EXTERNAL_ID: Final = 255  # [doc]
MAX_NAME: Final = 255  # [doc] legal_name; [inferred] for other names
MAX_SHORT: Final = 100  # [doc] province, payment_processor, payment_reference (bills)
MAX_CODE: Final = 50  # [inferred] codes, phone numbers, numbers
MAX_TEXT: Final = 5000  # [inferred] memos, notes, descriptions
MAX_LIST: Final = 1000  # [inferred] line items, allocations, ids per request
MAX_AMOUNT_CENTS: Final = 10**13  # [inferred] 100 billion major units: refuses nonsense
MAX_QUANTITY: Final = Decimal(10**9)  # [inferred]
QUANTITY_MAX_DECIMALS: Final = 6  # [inferred]
MAX_IDEMPOTENCY_KEY: Final = 255  # [inferred]
MAX_JSON_DEPTH: Final = 32  # [inferred] deeper bodies are refused (metadata included)

# --------------------------------------------------------------------------------------
# Businesses
# --------------------------------------------------------------------------------------
BASE_CURRENCIES: Final = ("GBP", "EUR", "USD", "SEK", "NOK", "DKK", "ISK", "MYR", "SGD")  # [doc]
SUPPORTED_COUNTRIES: Final = (  # [doc] list-businesses page
    "GB", "DE", "FR", "NL", "ES", "IT", "IE", "BE", "AT", "PT", "SE", "NO", "DK", "FI", "IS",
    "MY", "SG",
)  # fmt: skip
DEFAULT_COUNTRY: Final = "GB"  # [inferred] when a create omits country
COUNTRY_CURRENCY: Final[dict[str, str]] = {  # [inferred] default base_currency per country
    "GB": "GBP", "SE": "SEK", "NO": "NOK", "DK": "DKK", "IS": "ISK", "MY": "MYR", "SG": "SGD",
}  # fmt: skip
EURO_DEFAULT: Final = "EUR"
# [doc] GB codes; the other restricted countries' lists are [inferred] (docs name the
# countries, not the codes). Countries not listed accept free text.
RESTRICTED_ENTITY_TYPES: Final[dict[str, tuple[str, ...]]] = {
    "GB": ("limited", "sole_trader", "llp", "partnership", "plc"),
    "DE": ("gmbh", "ug", "ag", "kg", "ohg", "gbr", "einzelunternehmen", "freiberufler"),
    "NL": ("bv", "nv", "eenmanszaak", "vof", "cv", "maatschap", "stichting"),
    "ES": ("sl", "sa", "autonomo", "sc", "scp", "cooperativa"),
    "BE": ("bv", "srl", "nv", "sa", "cv", "vof", "eenmanszaak", "commv"),
    "MY": ("sdn_bhd", "berhad", "sole_proprietorship", "partnership", "llp"),
    "SG": ("pte_ltd", "sole_proprietorship", "partnership", "llp", "public_company"),
}
PATCHABLE_BUSINESS_FIELDS: Final = (  # [doc]
    "legal_name", "entity_type", "phone_number", "tin", "vat_number", "company_number",
    "province", "eu_nace_industry_code", "email", "accounting_method", "fiscal_year_end",
    "metadata",
)  # fmt: skip


# --------------------------------------------------------------------------------------
# Tax codes. [doc] shape and NL names (BTW_*); [inferred] the GB and other sets.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaxCodeSpec:
    code: str
    name: str
    rate: Decimal
    is_active: bool = True
    effective_from: str = "2020-01-01"


TAX_CODES: Final[dict[str, tuple[TaxCodeSpec, ...]]] = {
    "GB": (
        TaxCodeSpec("VAT_20", "Standard rate 20%", Decimal("0.20"), effective_from="2011-01-04"),
        TaxCodeSpec("VAT_5", "Reduced rate 5%", Decimal("0.05"), effective_from="2011-01-04"),
        TaxCodeSpec("ZERO_RATED", "Zero rated", Decimal("0")),
        TaxCodeSpec("EXEMPT", "Exempt", Decimal("0")),
        TaxCodeSpec("VAT_17_5", "Old standard rate 17.5%", Decimal("0.175"), False, "2010-01-01"),
    ),
    "NL": (
        TaxCodeSpec("BTW_21", "BTW hoog 21%", Decimal("0.21")),
        TaxCodeSpec("BTW_9", "BTW laag 9%", Decimal("0.09")),
        TaxCodeSpec("BTW_0", "BTW 0%", Decimal("0")),
        TaxCodeSpec("EXEMPT", "Vrijgesteld", Decimal("0")),
    ),
    "DE": (
        TaxCodeSpec("UST_19", "Umsatzsteuer 19%", Decimal("0.19")),
        TaxCodeSpec("UST_7", "Umsatzsteuer 7%", Decimal("0.07")),
        TaxCodeSpec("EXEMPT", "Steuerfrei", Decimal("0")),
    ),
}
# Any other country: a standard, a reduced, a zero and an exempt code.
DEFAULT_TAX_CODES: Final = (
    TaxCodeSpec("VAT_STANDARD", "Standard rate", Decimal("0.20")),
    TaxCodeSpec("VAT_REDUCED", "Reduced rate", Decimal("0.10")),
    TaxCodeSpec("ZERO_RATED", "Zero rated", Decimal("0")),
    TaxCodeSpec("EXEMPT", "Exempt", Decimal("0")),
)
# [gap] "rounding tolerance": the value and the rule live in thred_pipeline.core.money
# (TAX_TOLERANCE_CENTS, tax_within_tolerance), shared with the client; see lines.py.
MAX_SALES_TAXES_PER_LINE: Final = 1  # [inferred] one tax code per line (conflicts are refused)


# --------------------------------------------------------------------------------------
# Chart of accounts. [doc] 1200 AR, 2200 VAT payable, 4000 revenue; the rest [inferred].
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AccountSpec:
    code: str
    name: str
    account_type: str  # asset | liability | equity | revenue | expense
    account_subtype: str
    is_cash_account: bool = False


ACC_BANK: Final = "1000"
ACC_PROCESSOR_CLEARING: Final = "1150"
ACC_AR: Final = "1200"
ACC_VAT_RECOVERABLE: Final = "1300"
ACC_VENDOR_PREPAYMENTS: Final = "1400"
ACC_VENDOR_CREDITS: Final = "1410"
ACC_AP: Final = "2100"
ACC_VAT_PAYABLE: Final = "2200"
ACC_UNAPPLIED_CASH: Final = "2300"
ACC_REFUNDS_PAYABLE: Final = "2400"
ACC_SHARE_CAPITAL: Final = "3000"
ACC_RETAINED_EARNINGS: Final = "3100"
ACC_REVENUE: Final = "4000"
ACC_SALES_REFUNDS: Final = "4010"
ACC_SALES_DISCOUNTS: Final = "4050"
ACC_TIPS: Final = "4100"
ACC_COST_OF_SALES: Final = "5000"
ACC_GENERAL_EXPENSES: Final = "6000"
ACC_PROCESSING_FEES: Final = "6100"

CHART_OF_ACCOUNTS: Final = (
    AccountSpec(ACC_BANK, "Bank Current Account", "asset", "current_assets", True),
    AccountSpec(
        ACC_PROCESSOR_CLEARING, "Payment Processor Clearing", "asset", "current_assets", True
    ),
    AccountSpec(ACC_AR, "Accounts Receivable", "asset", "current_assets"),
    AccountSpec(ACC_VAT_RECOVERABLE, "VAT Recoverable", "asset", "current_assets"),
    AccountSpec(ACC_VENDOR_PREPAYMENTS, "Vendor Prepayments", "asset", "current_assets"),
    AccountSpec(ACC_VENDOR_CREDITS, "Vendor Credits Receivable", "asset", "current_assets"),
    AccountSpec("1500", "Equipment", "asset", "non_current_assets"),
    AccountSpec(ACC_AP, "Accounts Payable", "liability", "current_liabilities"),
    AccountSpec(ACC_VAT_PAYABLE, "VAT Payable", "liability", "current_liabilities"),
    AccountSpec(ACC_UNAPPLIED_CASH, "Customer Unapplied Cash", "liability", "current_liabilities"),
    AccountSpec(ACC_REFUNDS_PAYABLE, "Refunds Payable", "liability", "current_liabilities"),
    AccountSpec("2500", "Long-term Loans", "liability", "non_current_liabilities"),
    AccountSpec(ACC_SHARE_CAPITAL, "Share Capital", "equity", "share_capital"),
    AccountSpec(ACC_RETAINED_EARNINGS, "Retained Earnings", "equity", "retained_earnings"),
    AccountSpec(ACC_REVENUE, "Sales Revenue", "revenue", "revenue"),
    AccountSpec(ACC_SALES_REFUNDS, "Sales Refunds", "revenue", "revenue"),
    AccountSpec(ACC_SALES_DISCOUNTS, "Sales Discounts", "revenue", "revenue"),
    AccountSpec("4200", "Service Revenue", "revenue", "revenue"),
    AccountSpec(ACC_TIPS, "Tips and Gratuities", "revenue", "other_operating_income"),
    AccountSpec(ACC_COST_OF_SALES, "Cost of Sales", "expense", "direct_costs"),
    AccountSpec(ACC_GENERAL_EXPENSES, "General Expenses", "expense", "operating_expenses"),
    AccountSpec(ACC_PROCESSING_FEES, "Payment Processing Fees", "expense", "operating_expenses"),
    AccountSpec("6200", "Rent", "expense", "operating_expenses"),
    AccountSpec("6300", "Software and Subscriptions", "expense", "operating_expenses"),
    AccountSpec("7000", "Bank Charges and Interest", "expense", "finance_costs"),
)
ACCOUNT_TYPES: Final = ("asset", "liability", "equity", "revenue", "expense")
ACCOUNT_SUBTYPES: Final[dict[str, tuple[str, ...]]] = {  # [doc] names; grouping [inferred]
    "asset": ("current_assets", "non_current_assets"),
    "liability": ("current_liabilities", "non_current_liabilities"),
    "equity": ("share_capital", "share_premium", "reserves", "retained_earnings"),
    "revenue": ("revenue", "other_operating_income", "finance_income"),
    "expense": ("direct_costs", "operating_expenses", "finance_costs", "income_tax"),
}
DEBIT_NORMAL_TYPES: Final = ("asset", "expense")
# [inferred] Which account types a document line may post to.
INVOICE_LINE_ACCOUNT_TYPES: Final = ("revenue",)
BILL_LINE_ACCOUNT_TYPES: Final = ("expense", "asset")
DEFAULT_INVOICE_LINE_ACCOUNT: Final = ACC_REVENUE
DEFAULT_BILL_LINE_ACCOUNT: Final = ACC_GENERAL_EXPENSES

# [inferred] Card/processor receipts land in the processor clearing account until a payout
# moves them to the bank; everything else goes straight to the bank.
PROCESSOR_PAYMENT_METHODS: Final = frozenset(
    {"credit_card", "debit_card", "card", "paypal", "stripe"}
)

# --------------------------------------------------------------------------------------
# Enums and statuses
# --------------------------------------------------------------------------------------
# [doc] enum plus the words of the description text ([conflict] 12).
INVOICE_PAYMENT_METHODS: Final = (
    "bank_transfer", "credit_card", "debit_card", "ach", "check", "cash", "paypal", "stripe",
    "other", "card", "cheque", "direct_debit",
)  # fmt: skip
DEFAULT_INVOICE_PAYMENT_METHOD: Final = "bank_transfer"
BILL_PAYMENT_METHODS: Final = (
    "bank_transfer", "ach", "wire", "check", "credit_card", "cash", "other",
)  # fmt: skip
# [doc] examples CASH, ACH, BANK_TRANSFER; the rest [inferred]. Matched case-insensitively
# and stored upper-case.
REFUND_METHODS: Final = (
    "CASH", "ACH", "BANK_TRANSFER", "CHECK", "CARD", "CREDIT_CARD", "DEBIT_CARD", "PAYPAL",
    "STRIPE", "WIRE", "OTHER",
)  # fmt: skip
DEFAULT_REFUND_METHOD: Final = "BANK_TRANSFER"

# [inferred] invoice status lifecycle ([doc] only shows "SENT").
INVOICE_SENT: Final = "SENT"
INVOICE_PARTIALLY_PAID: Final = "PARTIALLY_PAID"
INVOICE_PAID: Final = "PAID"
INVOICE_VOIDED: Final = "VOIDED"
INVOICE_STATUSES: Final = (INVOICE_SENT, INVOICE_PARTIALLY_PAID, INVOICE_PAID, INVOICE_VOIDED)
# [inferred] bill statuses mirror the invoice ones.
BILL_RECEIVED: Final = "RECEIVED"
BILL_PARTIALLY_PAID: Final = "PARTIALLY_PAID"
BILL_PAID: Final = "PAID"
BILL_VOIDED: Final = "VOIDED"
BILL_STATUSES: Final = (BILL_RECEIVED, BILL_PARTIALLY_PAID, BILL_PAID, BILL_VOIDED)
PAYMENT_COMPLETED: Final = "completed"  # [doc] example; every created payment completes
DELETABLE_PAYMENT_STATUSES: Final = ("pending", "failed")  # [doc]
REFUND_PENDING: Final = "pending"  # [doc] pending -> processing -> paid
REFUND_PROCESSING: Final = "processing"
REFUND_PAID: Final = "paid"
VENDOR_ACTIVE: Final = "ACTIVE"  # [doc] enum
VENDOR_ARCHIVED: Final = "ARCHIVED"
CUSTOMER_ACTIVE: Final = "active"  # [doc] example
CUSTOMER_ARCHIVED: Final = "archived"  # [inferred]
VENDOR_CREDIT_OPEN: Final = "open"  # [inferred]
VENDOR_CREDIT_PARTIALLY_APPLIED: Final = "partially_applied"
VENDOR_CREDIT_APPLIED: Final = "applied"
PAYOUT_STATUSES: Final = ("pending", "paid")  # [doc]
DEFAULT_PAYOUT_STATUS: Final = "pending"  # [inferred]
PAYOUT_UNRECONCILED: Final = "unreconciled"  # [doc]
PAYOUT_RECONCILED: Final = "reconciled"  # [inferred]
PAYOUT_RECONCILED_CODE: Final = "payout_reconciled"  # 409 [inferred code]
# [inferred] Ledger postings: the account constants above are what ar.py / ap.py post to
# (their module docstrings list every entry); the cash-flow report treats every cash
# movement as operating.
# [inferred] A payout posts to the ledger only once it is paid (money has moved).
PAYOUT_POSTS_WHEN_STATUS: Final = "paid"

# [inferred] An archived customer cannot get new invoices (payments are still accepted).
ARCHIVED_CUSTOMER_BLOCKS_INVOICES: Final = True
ARCHIVED_VENDOR_BLOCKS_BILLS: Final = True
# [inferred] The customers list's filters are not documented ([gap]); it mirrors the vendors
# list's documented include_archived (default false): archived customers are left out
# unless include_archived=true (or is_archived= is given). GET customers/{id}/ returns an
# archived customer too. Recorded in docs/thred-contract.md.
CUSTOMER_LIST_INCLUDES_ARCHIVED: Final = False
# [inferred] verify-integration guide sends `name` for customers/vendors; it fills this.
NAME_ALIAS_TARGET: Final = "individual_name"

# --------------------------------------------------------------------------------------
# Response field names the docs do not show ([gap]: full invoice/bill responses). They are
# answered in extended mode only; strict responses (the default) follow documented.py.
# --------------------------------------------------------------------------------------
F_TOTAL: Final = "total_amount"  # invoice / bill / line total, cents
F_SUBTOTAL: Final = "subtotal"  # sum of line nets before tax, cents
F_TAX_TOTAL: Final = "sales_taxes_total"  # cents
F_OUTSTANDING: Final = "outstanding_balance"  # open amount, cents (also on customers)
F_OUTSTANDING_ALIAS: Final = "amount_due"  # same value, second plausible name
F_PAID: Final = "amount_paid"  # cents allocated by payments (and credits for bills)

# --------------------------------------------------------------------------------------
# Aging
# --------------------------------------------------------------------------------------
# (key, min days past due, max days past due); current = not yet due.
AGING_BUCKETS: Final = (
    ("current", None, 0),
    ("days_1_30", 1, 30),
    ("days_31_60", 31, 60),
    ("days_61_90", 61, 90),
    ("over_90_days", 91, None),
)
# [inferred] True: balances as of as_of_date come from ledger lines dated <= as_of_date.
# False: today's open balances, bucketed relative to as_of_date (so the total always equals
# the sum of open invoice outstanding). Kept False: it is what the contract promises.
AGING_USES_LEDGER_AS_OF: Final = False
# The date a document ages from: the first of these fields that is set.
AGING_DATE_FIELDS: Final = ("due_at", "sent_at", "bill_date", "received_at", "created_at")

# --------------------------------------------------------------------------------------
# Lifecycle details
# --------------------------------------------------------------------------------------
# Voiding an already voided invoice answers 200 with the invoice (safe to retry), not 409.
VOID_TWICE_IS_OK: Final = True
# A refund without amount_cents / partial_amount refunds everything paid and not refunded.
REFUND_WITHOUT_AMOUNT_IS_FULL: Final = True
# Bodies of archive / unarchive / void calls are ignored (the docs' examples repeat fields).
LIFECYCLE_BODIES_IGNORED: Final = True

# --------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------
# [inferred] date-only values given for date-time fields are stored as midnight UTC.
DATE_ONLY_TIME: Final = "T00:00:00Z"

# --------------------------------------------------------------------------------------
# Idempotency
# --------------------------------------------------------------------------------------
REPLAY_STATUS: Final = 200  # [doc]
# [inferred] only successful responses are cached under an Idempotency-Key: a request that
# failed validation can be fixed and re-sent with the same key.
CACHE_FAILED_IDEMPOTENT_RESPONSES: Final = False


# --------------------------------------------------------------------------------------
# Payouts. [inferred] from the example numbers (gross 1,000,000; refunds 50,000; fee
# 30,000; expected_net 920,000; paid_out 920,000; net 890,000; variance 0).
# --------------------------------------------------------------------------------------
def payout_expected_net(gross: int, refunds: int, additional_refunds: int, fee: int) -> int:
    return gross - refunds - additional_refunds - fee


def payout_variance(paid_out: int, expected_net: int) -> int:
    return paid_out - expected_net


def payout_net_amount(paid_out: int, fee: int) -> int:
    return paid_out - fee


# [inferred] net_amount of a payment = total - processing fee.
def payment_net_amount(total: int, fee: int) -> int:
    return total - fee


# [inferred] A payment can only sit in one payout at a time.
PAYMENT_IN_ONE_PAYOUT_ONLY: Final = True


def display_amount(cents: int, currency: str) -> str:
    """[inferred] `display_amount` of payments: "GBP 12.34"."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{currency} {whole:,}.{frac:02d}"
