"""Expected response shapes read from the contract text (thred-api.md), not from the sandbox.

``QUOTES`` cites, for each response object, the passage of thred-api.md that lists its fields,
verbatim (whitespace aside). ``fields_of`` parses such a passage into a tree of field names:
``{"name": None}`` for a plain field, ``{"name": {...}}`` for a nested object or for each item
of a nested list. Parenthesised remarks and example values are not fields; a truncation mark
(``...``, ``…``) ends a top-level list. A nested part written ``{...}`` or ``[...]`` (keys
not shown) parses to None.

``contract_text`` finds thred-api.md (``THRED_API_MD``, ``../shared/thred-api.md`` next to the
repository, or ``docs/thred-api.md``) so a test can check every quote is really there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

Tree = dict[str, "Tree | None"]

REPO = Path(__file__).resolve().parents[3]

# object -> (section of thred-api.md, passage quoted verbatim)
QUOTES: dict[str, tuple[str, str]] = {
    "partner_token": (
        "1.3",
        '{ "access_token": "<JWT>", "token_type": "Bearer", "expires_in": 3600 }',
    ),
    "business_token": (
        "1.4",
        '{ "access_token": "<JWT>", "token_type": "Bearer", "expires_in": 3600, '
        '"scope": "business_access", "business_id": "<uuid>" }',
    ),
    "business": (
        "2.1",
        "`id, external_id, legal_name, name, entity_type, phone_number, tin, vat_number, "
        "company_number, country, province, eu_nace_industry_code, email, base_currency, "
        "accounting_method, fiscal_year_end, activation_at, is_active, created_at, updated_at, "
        "metadata` (+ `_meta`)",
    ),
    "customer": (
        "2.3",
        "Response: `type, id, external_id, reference_number, individual_name, company_name, "
        "display_name, email, mobile_phone, office_phone, address_line1, address_line2, city, "
        "state_county, postal_code, country, full_address, address_string, vat_number, "
        "tax_exempt, status, is_active, is_archived, transaction_tags, notes, metadata, "
        "payment_terms_days, credit_limit, credit_limit_cents, outstanding_balance, "
        "documents[{url, expires_in, document_id, file_name, file_size, mime_type}], "
        "created_at, updated_at, archived_at`",
    ),
    "vendor": (
        "2.4",
        'Response: `type` (`"VendorData"` per description), `id, external_id, '
        "individual_name, company_name, email, mobile_phone, office_phone, address_string, "
        "memo, status, transaction_tags, documents`",
    ),
    "invoice": (
        "2.5",
        "Response (partially visible) [doc/example]: `type, id, business_id, external_id, "
        'status` (example `"SENT"`), `sent_at, due_at, paid_at, voided_at, is_overdue, '
        "invoice_number, invoice_type, currency, memo, customer{full customer object incl. "
        "outstanding_balance}, line_items[...]`, … rest truncated",
    ),
    "invoice_line": (
        "4.3",
        "Thred computes tax = line net \u00d7 rate and stores/returns the code on the line",
    ),
    "payment_create": (
        "2.6",
        '{ "payment": { id, business_id, customer_id, total_amount_cents, '
        "applied_amount_cents, allocated_amount_cents, unapplied_amount_cents, "
        'remaining_amount_cents, currency, status ("completed"), payment_method, '
        "payment_reference, external_id, note, bank_reference, metadata, idempotency_key, "
        "created_at, updated_at, applied_invoices: [ { id, invoice_number, "
        'applied_amount_cents, status ("paid"), outstanding_amount_cents } ] } }',
    ),
    "payment": (
        "2.6",
        "`id, customer{id, name, email, company_name}, customer_name, customer_email, "
        "payment_method, total_amount, allocated_amount, unallocated_amount, net_amount, "
        "processing_fee, processing_fee_cents, display_amount, is_fully_allocated, "
        "is_completed, processed_at, failed_at, created_at, updated_at, allocations[{id, "
        "invoice_id, invoice_number, invoice_status, amount, allocated_at, transaction_tags, "
        "notes}], refund_allocations[{refund_id, amount_cents, allocated_at, "
        "reference_number}], reconciled_bank_transactions[]`",
    ),
    "payment_delete": ("2.6", "`{message, payment_id, status, updated_at}`"),
    "refund": (
        "2.7",
        "Response: `id, refunded_amount, customer_id, customer_name, allocations[{id, "
        'allocation_type:"invoice", amount, invoice_id, invoice_number, '
        "invoice_outstanding_balance_cents, target_description, description, "
        "allocation_date}], refund_payments[...]`",
    ),
    "refund_payment": (
        "2.8",
        "Response: `id, refund_id, refunded_amount, refund_processing_fee, "
        "reconciled_bank_transactions, created_at, updated_at, external_id, completed_at, "
        "method, processor, transaction_tags, memo, metadata`",
    ),
    "payout": (
        "2.9",
        "Response: `id, business_id, external_id, processor, processor_payout_id, "
        "paid_out_amount_cents, fee_cents, additional_refunds_amount_cents, "
        "net_amount_cents, currency, status, completed_at, imported_at, reference_number, "
        "memo, metadata, payment_count, refund_payment_count, gross_payments_amount_cents, "
        "total_refunds_amount_cents, expected_net_amount_cents, amount_variance_cents, "
        "payments[{id, external_id, payment_reference, customer_name, payment_date, "
        "total_amount_cents, currency}], refund_payments[{id, external_id, refund_id, "
        "customer_name, refunded_amount_cents, completed_at}], reconciliation_status` "
        '(`"unreconciled"`), `settlement_file_id, created_at, updated_at`',
    ),
    "bill": (
        "2.10",
        "Response: `type, id, business_id, status, terms, issue_date, received_at, due_at, "
        "paid_at, voided_at, is_overdue, currency, vendor{...}, line_items[{id, bill_id, "
        'account_identifier{id, type:"AccountId"}, currency, unit_price, quantity, subtotal, '
        "sales_taxes_total, total_amount, tax_rate, description, product}], "
        "bill_payment_allocations[{amount_cents, payment_date, payment_method, "
        "bill_payment_id...}]`, … (truncated) [gap]",
    ),
    "bill_create_idempotency": ("2.10", "Request: `external_id` (idempotency)"),
    "bill_payment": (
        "2.11",
        "Response: `id, business_id, vendor_id, vendor_name, payment_reference, external_id, "
        "processor_payment_id, check_number, amount_cents, currency, processing_fee_cents, "
        "net_amount_cents, allocated_amount_cents, unallocated_amount_cents, "
        "is_fully_allocated, payment_method, status, payment_date, value_date, submitted_at, "
        "completed_at, failed_at, description, memo, failure_reason, metadata, "
        "allocations[{id, bill_id, bill_number, vendor_bill_number, bill_status, "
        "amount_cents, allocation_date, created_at, description}], vendor_refund_allocations, "
        "reconciled_bank_transactions, created_at, updated_at`",
    ),
    "vendor_credit": (
        "2.12",
        "`id, external_id, status, received_at, currency, vendor{id, external_id, "
        "display_name}, source_bill_id, line_items[{amount, expense_account_identifier{id, "
        'type:"AccountId"}, tags, memo, metadata}], allocations[{bill_id, bill_number, '
        "amount_cents, bill_outstanding_balance_cents, applied_at}], tags, total_amount, "
        "applied_amount, document, created_at, updated_at`",
    ),
    "ar_aging": (
        "2.15",
        "→ `total_outstanding_cents`, `total_aging_buckets{current, days_1_30, days_31_60, "
        "days_61_90, over_90_days}`, `customers[...]`",
    ),
    "ar_aging_row": (
        "2.15",
        "`{customer_id, customer_name, total_outstanding_cents, aging_buckets{...}}`",
    ),
    "ap_aging_row": (
        "2.15",
        "`vendors[{vendor_id, vendor_name, total_outstanding_cents, aging_buckets}]`",
    ),
    "tax_codes": (
        "2.14",
        '{ "business_id": "...", "count": n, "tax_codes": [ { "code": "BTW_21", "name": '
        '"...", "rate": "0.21", "purchase_account": "...", "sales_account": "...", '
        '"effective_from": "YYYY-MM-DD", "is_active": true } ] }',
    ),
    "account": (
        "2.16",
        "Item: `id, code, name, currency, account_type, account_type_display, "
        "account_subtype, account_subtype_display, parent_account_code, current_balance` "
        "(cents), `current_balance_formatted, debit_balance, credit_balance, period_balance, "
        "has_children, hierarchy_level, is_active`",
    ),
    "list": ("top", "lists are `{count, page_info, results}` plus `next`/`previous`"),
}


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def contract_path() -> Path | None:
    candidates = [
        os.environ.get("THRED_API_MD"),
        REPO.parent / "shared" / "thred-api.md",
        REPO / "docs" / "thred-api.md",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


_TOKEN = re.compile(r'\.\.\.|…|"[^"]*"|[{}\[\],:]|[A-Za-z_][A-Za-z0-9_]*|[^\s{}\[\],:"]+')


def _strip_remarks(text: str) -> str:
    """Drop backticks, an optional ``Label:`` prefix and (balanced) parenthesised remarks."""
    text = text.replace("`", "")
    text = re.sub(r"^[^{:]*?:\s", "", text) if not text.lstrip().startswith("{") else text
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _TOKEN.findall(_strip_remarks(text))
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def items(self, closer: str | None) -> Tree:
        tree: Tree = {}
        while (token := self.peek()) is not None and token != closer:
            if token in ("...", "…") and closer is None:
                self.pos = len(self.tokens)  # the list is cut here; the rest is prose
                break
            if token in (",", "...", "…", "→"):
                self.take()
                continue
            if token in ("}", "]"):
                raise ValueError(f"unbalanced {token!r} in {self.tokens}")
            key = self.take().strip('"')
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"not a field name: {key!r}")
            if self.peek() == ":":
                self.take()
                if self.peek() in ("{", "["):
                    tree[key] = self.group()
                else:
                    self.take()  # an example value
                    tree[key] = None
            elif self.peek() in ("{", "["):
                tree[key] = self.group()
            else:
                tree[key] = None
        if closer is not None:
            self.take()
        return tree

    def group(self) -> Tree | None:
        opener = self.take()
        if opener == "{":
            inner = self.items("}")
            return inner or None
        # a list: [ {...} ], [...] or []
        if self.peek() == "{":
            self.take()
            inner = self.items("}")
            while self.peek() not in ("]", None):
                self.take()
            self.take()
            return inner or None
        while self.peek() not in ("]", None):
            self.take()
        self.take()
        return None


def fields_of(passage: str) -> Tree:
    parser = _Parser(passage)
    tree = (parser.group() or {}) if parser.peek() == "{" else parser.items(None)
    if parser.peek() is not None:
        raise ValueError(f"unparsed rest: {parser.tokens[parser.pos :]}")
    return tree


# Prose inside a field list becomes "keys not shown" before parsing; what the prose says is
# checked on its own (an invoice's customer is the customer object of 2.3).
_PROSE = {
    "invoice": ("customer{full customer object incl. outstanding_balance}", "customer{...}"),
}


def expected(name: str) -> Tree:
    passage = normalise(QUOTES[name][1])
    if name in _PROSE:
        prose, reading = _PROSE[name]
        assert prose in passage
        passage = passage.replace(prose, reading)
    return fields_of(passage)


def differences(actual: Any, tree: Tree, path: str = "") -> list[str]:
    """Every missing or undocumented key of ``actual`` against ``tree``, recursively."""
    if not isinstance(actual, dict):
        return [f"{path or '<top>'}: expected an object, got {type(actual).__name__}"]
    problems = []
    extra = sorted(set(actual) - set(tree))
    missing = sorted(set(tree) - set(actual))
    if extra:
        problems.append(f"{path or '<top>'}: undocumented {extra}")
    if missing:
        problems.append(f"{path or '<top>'}: missing {missing}")
    for key, inner in tree.items():
        if inner is None or key not in actual:
            continue
        value = actual[key]
        items = value if isinstance(value, list) else [value] if value is not None else []
        for i, item in enumerate(items):
            sub = f"{path}.{key}" + (f"[{i}]" if isinstance(value, list) else "")
            problems.extend(differences(item, inner, sub.lstrip(".")))
    return problems
