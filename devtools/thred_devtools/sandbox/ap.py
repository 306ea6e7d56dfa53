"""Accounts payable: bills, bill payments and vendor credits (AP aging is in aging.py).

Ledger effects ([inferred], mirroring AR):

- bill: DR expense/asset (line accounts) nets + DR VAT recoverable 1300 taxes / CR AP 2100;
- bill payment: DR AP per allocation + DR vendor prepayments 1400 (unallocated) / CR bank;
  a processing fee is DR 6100 / CR bank on top;
- vendor credit: DR AP per allocation + DR vendor credits 1410 (unapplied) / CR the
  credit lines' expense accounts.

Bill outstanding and vendor balances are AP ledger balances tagged with the bill / vendor.
"""

from __future__ import annotations

from typing import Any

from thred_devtools.sandbox import ledger, rules
from thred_devtools.sandbox.core import (
    Result,
    account_ref,
    add_error,
    check_currency,
    date_of,
    external_id_free,
    fail_if,
    idempotent_replay,
    new_vendor,
    public,
    remember_response,
    replay_existing,
    resolve_account,
    vendor_view,
)
from thred_devtools.sandbox.errors import Details, conflict
from thred_devtools.sandbox.invoices import due_date
from thred_devtools.sandbox.ledger import EntryBuilder
from thred_devtools.sandbox.lines import build_lines, compute_line, line_view
from thred_devtools.sandbox.models import (
    BillCreate,
    BillPaymentCreate,
    BillUpdate,
    VendorCreditCreate,
)
from thred_devtools.sandbox.payments import check_allocations
from thred_devtools.sandbox.state import Sandbox, now_iso, today
from thred_devtools.sandbox.store import Obj

# ====================================================================== bills


def bill_outstanding(sb: Sandbox, bill: Obj) -> int:
    return -sb.balances.net_debit(bill["_scope"], rules.ACC_AP, ("bill_id", bill["id"]))


def bill_payment_allocations(sb: Sandbox, bill: Obj) -> list[tuple[Obj, Obj]]:
    out: list[tuple[Obj, Obj]] = []
    for pay in sb.store.lookup("bill_payments_by_bill", bill["id"]):
        out.extend((pay, a) for a in pay["allocations"] if a["bill_id"] == bill["id"])
    return out


def bill_credit_allocations(sb: Sandbox, bill: Obj) -> list[tuple[Obj, Obj]]:
    out: list[tuple[Obj, Obj]] = []
    for credit in sb.store.lookup("vendor_credits_by_bill", bill["id"]):
        out.extend((credit, a) for a in credit["allocations"] if a["bill_id"] == bill["id"])
    return out


def bill_settled(sb: Sandbox, bill: Obj) -> int:
    """Paid plus credited."""
    paid = sum(int(a["amount_cents"]) for _, a in bill_payment_allocations(sb, bill))
    return paid + sum(int(a["amount_cents"]) for _, a in bill_credit_allocations(sb, bill))


def bill_status(sb: Sandbox, bill: Obj, outstanding: int, settled: int) -> str:
    if bill.get("voided_at"):
        return rules.BILL_VOIDED
    if outstanding <= 0:
        return rules.BILL_PAID
    if settled > 0:
        return rules.BILL_PARTIALLY_PAID
    return rules.BILL_RECEIVED


def bill_view(sb: Sandbox, bill: Obj) -> dict[str, Any]:
    scope = bill["_scope"]
    out = public(bill)
    outstanding = bill_outstanding(sb, bill)
    payments = bill_payment_allocations(sb, bill)
    credits = bill_credit_allocations(sb, bill)
    paid = sum(a["amount_cents"] for _, a in payments)
    credited = sum(a["amount_cents"] for _, a in credits)
    status = bill_status(sb, bill, outstanding, paid + credited)
    vendor = sb.store.get_in("vendors", scope, bill["vendor_id"])
    paid_at = None
    if status == rules.BILL_PAID and payments:
        paid_at = max(p["payment_date"] for p, _ in payments) + rules.DATE_ONLY_TIME
    out.update(
        {
            "type": "Bill",
            "status": status,
            "issue_date": bill.get("bill_date"),
            "vendor_external_id": vendor.get("external_id") if vendor else None,
            "vendor": vendor_view(sb, vendor) if vendor else None,
            "line_items": [
                line_view(sb, scope, ln, "bill_id", bill["id"], bill["currency"])
                for ln in bill["line_items"]
            ],
            rules.F_PAID: paid,
            "credits_applied": credited,
            rules.F_OUTSTANDING: outstanding,
            rules.F_OUTSTANDING_ALIAS: outstanding,
            "paid_at": paid_at,
            "is_overdue": status in (rules.BILL_RECEIVED, rules.BILL_PARTIALLY_PAID)
            and due_date(bill) < today(),
            "bill_payment_allocations": [
                {
                    "bill_payment_id": p["id"],
                    "amount_cents": a["amount_cents"],
                    "payment_date": p["payment_date"],
                    "payment_method": p["payment_method"],
                }
                for p, a in payments
            ],
            "vendor_credit_allocations": [
                {
                    "vendor_credit_id": c["id"],
                    "amount_cents": a["amount_cents"],
                    "applied_at": a["applied_at"],
                }
                for c, a in credits
            ],
        }
    )
    return out


def compute_bill(bill: Obj) -> None:
    for ln in bill["line_items"]:
        compute_line(ln)
    bill[rules.F_SUBTOTAL] = sum(ln["subtotal"] for ln in bill["line_items"])
    bill[rules.F_TAX_TOTAL] = sum(ln["sales_taxes_total"] for ln in bill["line_items"])
    bill[rules.F_TOTAL] = bill[rules.F_SUBTOTAL] + bill[rules.F_TAX_TOTAL]


def post_bill(sb: Sandbox, bill: Obj) -> None:
    b = EntryBuilder()
    for ln in bill["line_items"]:
        b.dr(ln["account_code"], ln["subtotal"], ln.get("description") or "Bill line")
        b.dr(
            rules.ACC_VAT_RECOVERABLE,
            ln["sales_taxes_total"],
            f"Input VAT {ln.get('tax_code') or ''}".strip(),
        )
    b.cr(
        rules.ACC_AP,
        bill[rules.F_TOTAL],
        "Bill total",
        bill_id=bill["id"],
        vendor_id=bill["vendor_id"],
    )
    day = (
        date_of(bill.get("bill_date"))
        or date_of(bill.get("received_at"))
        or date_of(bill["created_at"])
        or today()
    ).isoformat()
    memo = f"Bill {bill.get('bill_number') or bill['id']}"
    ledger.post_entry(
        sb.store, bill["_scope"], f"bill:{bill['id']}", "bill", bill["id"], day, memo, b, now_iso()
    )


def repost_bill(sb: Sandbox, bill: Obj) -> None:
    compute_bill(bill)
    sb.store.put("bills", bill)
    post_bill(sb, bill)


def _resolve_vendor(
    sb: Sandbox, scope: str, vendor_id: str | None, vendor_external_id: str | None, details: Details
) -> Obj | None:
    vendor = None
    if vendor_id is not None:
        vendor = sb.store.get_in("vendors", scope, vendor_id)
        if vendor is None:
            add_error(details, "vendor_id", "Vendor not found. Create the vendor before its bills.")
            return None
    if vendor_external_id is not None:
        by_ext = sb.store.find(scope, "vendors", "external_id", vendor_external_id)
        if by_ext is None:
            add_error(details, "vendor_external_id", "Vendor not found. Create the vendor first.")
            return None
        if vendor is not None and by_ext["id"] != vendor["id"]:
            add_error(details, "vendor_external_id", "Disagrees with vendor_id.")
            return None
        vendor = by_ext
    if vendor is None:
        add_error(details, "vendor_id", rules.REQUIRED_MSG)
    return vendor


def create_bill(sb: Sandbox, business: Obj, body: BillCreate) -> Result:
    store = sb.store
    scope = business["id"]
    if body.external_id is not None:
        existing = store.find(scope, "bills", "external_id", body.external_id)
        if existing is not None:
            return replay_existing(sb, "bill", existing, lambda b: bill_view(sb, b))
    details: Details = {}
    vendor = _resolve_vendor(sb, scope, body.vendor_id, body.vendor_external_id, details)
    fail_if(details)
    assert vendor is not None
    if vendor["is_archived"] and rules.ARCHIVED_VENDOR_BLOCKS_BILLS:
        add_error(details, "vendor_id", "Vendor is archived.")
    check_currency(details, business, body.currency)
    lines = build_lines(
        sb,
        business,
        body.line_items,
        details,
        account_types=rules.BILL_LINE_ACCOUNT_TYPES,
        default_account=rules.DEFAULT_BILL_LINE_ACCOUNT,
    )
    fail_if(details)
    now = now_iso()
    data = body.model_dump(
        exclude={"line_items", "vendor_id", "vendor_external_id", "currency", "bill_date"}
    )
    bill: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        **data,
        "vendor_id": vendor["id"],
        "bill_date": body.bill_date[:10] if body.bill_date else None,
        "currency": business["base_currency"],
        "reference_numbers": body.reference_numbers or [],
        "attachment_urls": body.attachment_urls or [],
        "transaction_tags": body.transaction_tags or [],
        "metadata": body.metadata or {},
        "voided_at": None,
        "line_items": lines,
        "created_at": now,
        "updated_at": now,
    }
    compute_bill(bill)
    store.put("bills", bill)
    post_bill(sb, bill)
    return 201, bill_view(sb, bill)


def update_bill(sb: Sandbox, business: Obj, bill: Obj, body: BillUpdate) -> Result:
    scope = business["id"]
    sent = body.model_fields_set
    details: Details = {}
    settled = bill_settled(sb, bill)
    updated = sb.store.editable(bill)
    if "external_id" in sent and body.external_id != bill.get("external_id"):
        external_id_free(sb, scope, "bills", body.external_id, bill["id"])
        updated["external_id"] = body.external_id
    if body.vendor_id is not None or body.vendor_external_id is not None:
        vendor = _resolve_vendor(sb, scope, body.vendor_id, body.vendor_external_id, details)
        fail_if(details)
        assert vendor is not None
        if vendor["id"] != bill["vendor_id"]:
            if settled > 0:
                raise conflict("The vendor of a bill with payments or credits cannot change.")
            updated["vendor_id"] = vendor["id"]
    check_currency(details, business, body.currency)
    simple = (
        "bill_number", "vendor_bill_number", "purchase_order_number", "memo", "terms",
        "received_at", "due_at", "approved_at", "document",
    )  # fmt: skip
    for field in simple:
        if field in sent:
            updated[field] = getattr(body, field)
    if "bill_date" in sent:
        updated["bill_date"] = body.bill_date[:10] if body.bill_date else None
    for field in ("reference_numbers", "attachment_urls", "transaction_tags"):
        if field in sent:
            updated[field] = getattr(body, field) or []
    if "metadata" in sent:
        updated["metadata"] = body.metadata or {}
    if body.line_items is not None:
        updated["line_items"] = build_lines(
            sb,
            business,
            body.line_items,
            details,
            account_types=rules.BILL_LINE_ACCOUNT_TYPES,
            default_account=rules.DEFAULT_BILL_LINE_ACCOUNT,
        )
    fail_if(details)
    compute_bill(updated)
    if updated[rules.F_TOTAL] < settled:
        fail_if(
            {
                "line_items": [
                    f"The new total {updated[rules.F_TOTAL]} is below the {settled} "
                    "already paid or credited."
                ]
            }
        )
    updated["updated_at"] = now_iso()
    sb.store.put("bills", updated)
    post_bill(sb, updated)
    return 200, bill_view(sb, updated)


# ====================================================================== bill payments


def bill_payment_view(sb: Sandbox, pay: Obj) -> dict[str, Any]:
    scope = pay["_scope"]
    vendor = sb.store.get_in("vendors", scope, pay["vendor_id"]) or {}
    allocated = sum(a["amount_cents"] for a in pay["allocations"])
    amount = pay["amount_cents"]
    fee = int(pay.get("processing_fee_cents") or 0)
    out = public(pay)
    allocations = []
    for a in pay["allocations"]:
        bill = sb.store.get("bills", a["bill_id"])
        status = None
        if bill:
            outstanding = bill_outstanding(sb, bill)
            status = bill_status(sb, bill, outstanding, bill_settled(sb, bill))
        allocations.append(
            {
                "id": a["id"],
                "bill_id": a["bill_id"],
                "bill_number": bill.get("bill_number") if bill else None,
                "bill_external_id": bill.get("external_id") if bill else None,
                "vendor_bill_number": bill.get("vendor_bill_number") if bill else None,
                "bill_status": status,
                "amount_cents": a["amount_cents"],
                "allocation_date": pay["payment_date"],
                "created_at": a["allocated_at"],
                "description": a.get("description"),
                "bill_outstanding_balance_cents": bill_outstanding(sb, bill) if bill else None,
            }
        )
    out.update(
        {
            "vendor_name": vendor.get("company_name") or vendor.get("individual_name"),
            "vendor_external_id": vendor.get("external_id"),
            "net_amount_cents": rules.payment_net_amount(amount, fee),
            "allocated_amount_cents": allocated,
            "unallocated_amount_cents": amount - allocated,
            "is_fully_allocated": allocated >= amount,
            "value_date": pay["payment_date"],
            "submitted_at": pay["created_at"],
            "completed_at": pay["created_at"],
            "failed_at": None,
            "failure_reason": None,
            "processor_payment_id": None,
            "allocations": allocations,
            "vendor_refund_allocations": [],
            "reconciled_bank_transactions": [],
        }
    )
    return out


def post_bill_payment(sb: Sandbox, pay: Obj) -> None:
    b = EntryBuilder()
    allocated = 0
    for a in pay["allocations"]:
        bill = sb.store.get("bills", a["bill_id"])
        vendor_id = bill["vendor_id"] if bill else pay["vendor_id"]
        b.dr(
            rules.ACC_AP,
            a["amount_cents"],
            "Bill payment",
            bill_id=a["bill_id"],
            vendor_id=vendor_id,
        )
        allocated += a["amount_cents"]
    amount = pay["amount_cents"]
    b.dr(
        rules.ACC_VENDOR_PREPAYMENTS,
        amount - allocated,
        "Unallocated vendor payment",
        vendor_id=pay["vendor_id"],
        bill_payment_id=pay["id"],
    )
    b.cr(rules.ACC_BANK, amount, "Bill payment", bill_payment_id=pay["id"])
    fee = int(pay.get("processing_fee_cents") or 0)
    b.dr(rules.ACC_PROCESSING_FEES, fee, "Payment fee")
    b.cr(rules.ACC_BANK, fee, "Payment fee")
    ledger.post_entry(
        sb.store,
        pay["_scope"],
        f"bill_payment:{pay['id']}",
        "bill_payment",
        pay["id"],
        pay["payment_date"],
        "Bill payment",
        b,
        now_iso(),
    )


def create_bill_payment(
    sb: Sandbox, business: Obj, body: BillPaymentCreate, idem_key: str | None
) -> Result:
    store = sb.store
    scope = business["id"]
    cached = idempotent_replay(sb, scope, "bill_payments", idem_key)
    if cached is not None:
        return rules.REPLAY_STATUS, cached["body"]
    if body.external_id is not None:
        existing = store.find(scope, "bill_payments", "external_id", body.external_id)
        if existing is not None:
            return replay_existing(sb, "bill payment", existing, lambda p: bill_payment_view(sb, p))
    if store.get_in("vendors", scope, body.vendor_id) is None:
        fail_if({"vendor_id": ["Vendor not found. Create the vendor before its payments."]})
    details: Details = {}
    if body.payment_method == "check" and not body.check_number:
        add_error(details, "check_number", "Required when payment_method is check.")
    check_currency(details, business, body.currency)
    check_allocations(
        sb,
        scope,
        [(a.bill_id, a.amount_cents) for a in body.allocations],
        body.amount_cents,
        details,
        collection="bills",
        party_field="vendor_id",
        party_id=body.vendor_id,
        id_field="bill_id",
        outstanding=lambda bill: bill_outstanding(sb, bill),
        is_closed=lambda bill: bool(bill.get("voided_at")),
        noun="bill",
    )
    fail_if(details)
    now = now_iso()
    pay: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "vendor_id": body.vendor_id,
        "amount_cents": body.amount_cents,
        "currency": business["base_currency"],
        "payment_method": body.payment_method,
        "payment_date": body.payment_date,
        "payment_reference": body.payment_reference,
        "check_number": body.check_number,
        "description": body.description,
        "memo": body.memo,
        "processing_fee_cents": body.processing_fee_cents,
        "metadata": body.metadata or {},
        "idempotency_key": idem_key,
        "status": rules.PAYMENT_COMPLETED,
        "allocations": [
            {
                "id": store.new_id(),
                "bill_id": a.bill_id,
                "amount_cents": a.amount_cents,
                "description": a.description,
                "allocated_at": now,
            }
            for a in body.allocations
        ],
        "created_at": now,
        "updated_at": now,
    }
    store.put("bill_payments", pay)
    post_bill_payment(sb, pay)
    response = bill_payment_view(sb, pay)
    remember_response(sb, scope, "bill_payments", idem_key, pay["id"], response)
    return 201, response


# ====================================================================== vendor credits


def vendor_credit_view(sb: Sandbox, credit: Obj) -> dict[str, Any]:
    scope = credit["_scope"]
    vendor = sb.store.get_in("vendors", scope, credit["vendor_id"]) or {}
    applied = sum(a["amount_cents"] for a in credit["allocations"])
    total = credit[rules.F_TOTAL]
    status = rules.VENDOR_CREDIT_OPEN
    if applied >= total:
        status = rules.VENDOR_CREDIT_APPLIED
    elif applied > 0:
        status = rules.VENDOR_CREDIT_PARTIALLY_APPLIED
    out = public(credit)
    allocations = []
    for a in credit["allocations"]:
        bill = sb.store.get("bills", a["bill_id"])
        allocations.append(
            {
                "bill_id": a["bill_id"],
                "bill_number": bill.get("bill_number") if bill else None,
                "bill_external_id": bill.get("external_id") if bill else None,
                "amount_cents": a["amount_cents"],
                "bill_outstanding_balance_cents": bill_outstanding(sb, bill) if bill else None,
                "applied_at": a["applied_at"],
            }
        )
    out.update(
        {
            "status": status,
            "vendor": {
                "id": credit["vendor_id"],
                "external_id": vendor.get("external_id"),
                "display_name": vendor.get("company_name") or vendor.get("individual_name"),
            },
            "vendor_external_id": vendor.get("external_id"),
            "line_items": [
                {
                    **{k: v for k, v in ln.items() if k != "account_code"},
                    "account_code": ln["account_code"],
                    "expense_account_identifier": account_ref(sb, scope, ln["account_code"]),
                }
                for ln in credit["line_items"]
            ],
            "allocations": allocations,
            "applied_amount": applied,
            "unapplied_amount": total - applied,
        }
    )
    return out


def post_vendor_credit(sb: Sandbox, credit: Obj) -> None:
    b = EntryBuilder()
    applied = 0
    for a in credit["allocations"]:
        bill = sb.store.get("bills", a["bill_id"])
        vendor_id = bill["vendor_id"] if bill else credit["vendor_id"]
        b.dr(
            rules.ACC_AP,
            a["amount_cents"],
            "Vendor credit applied",
            bill_id=a["bill_id"],
            vendor_id=vendor_id,
        )
        applied += a["amount_cents"]
    b.dr(
        rules.ACC_VENDOR_CREDITS,
        credit[rules.F_TOTAL] - applied,
        "Unapplied vendor credit",
        vendor_id=credit["vendor_id"],
        vendor_credit_id=credit["id"],
    )
    for ln in credit["line_items"]:
        b.cr(ln["account_code"], ln["amount"], ln.get("description") or "Vendor credit")
    day = (
        date_of(credit.get("received_at")) or date_of(credit["created_at"]) or today()
    ).isoformat()
    ledger.post_entry(
        sb.store,
        credit["_scope"],
        f"vendor_credit:{credit['id']}",
        "vendor_credit",
        credit["id"],
        day,
        "Vendor credit",
        b,
        now_iso(),
    )


def repost_vendor_credit(sb: Sandbox, credit: Obj) -> None:
    credit[rules.F_TOTAL] = sum(int(ln["amount"]) for ln in credit["line_items"])
    sb.store.put("vendor_credits", credit)
    post_vendor_credit(sb, credit)


def create_vendor_credit(sb: Sandbox, business: Obj, body: VendorCreditCreate) -> Result:
    store = sb.store
    scope = business["id"]
    if body.external_id is not None:
        existing = store.find(scope, "vendor_credits", "external_id", body.external_id)
        if existing is not None:
            return replay_existing(
                sb, "vendor credit", existing, lambda c: vendor_credit_view(sb, c)
            )
    details: Details = {}
    vendor: Obj | None = None
    if body.vendor_id is not None:
        vendor = store.get_in("vendors", scope, body.vendor_id)
        if vendor is None:
            add_error(details, "vendor_id", "Vendor not found.")
        elif (
            body.vendor_external_id is not None
            and vendor.get("external_id") != body.vendor_external_id
        ):
            add_error(details, "vendor_external_id", "Disagrees with vendor_id.")
    elif body.vendor_external_id is not None:
        vendor = store.find(scope, "vendors", "external_id", body.vendor_external_id)
    else:
        add_error(details, "vendor_id", rules.REQUIRED_MSG)
    fail_if(details)
    check_currency(details, business, body.currency)
    lines: list[Obj] = []
    for i, item in enumerate(body.line_items):
        p = f"line_items[{i}]"
        code = resolve_account(
            sb,
            scope,
            details,
            [
                (f"{p}.expense_account_identifier", item.expense_account_identifier),
                (f"{p}.account_identifier", item.account_identifier),
                (f"{p}.account_code", item.account_code),
            ],
            rules.BILL_LINE_ACCOUNT_TYPES,
            rules.DEFAULT_BILL_LINE_ACCOUNT,
        )
        lines.append(
            {
                "amount": item.amount,
                "description": item.description,
                "account_code": code,
                "tags": item.tags or [],
                "memo": item.memo,
                "metadata": item.metadata or {},
            }
        )
    total = sum(int(ln["amount"]) for ln in lines)
    vendor_id = vendor["id"] if vendor else ""
    if vendor is not None or not body.allocations:
        check_allocations(
            sb,
            scope,
            [(a.bill_id, a.amount_cents) for a in body.allocations],
            total,
            details,
            collection="bills",
            party_field="vendor_id",
            party_id=vendor_id,
            id_field="bill_id",
            outstanding=lambda bill: bill_outstanding(sb, bill),
            is_closed=lambda bill: bool(bill.get("voided_at")),
            noun="bill",
        )
    else:
        add_error(details, "allocations[0].bill_id", "The bill belongs to another vendor.")
    if (
        body.source_bill_id is not None
        and store.get_in("bills", scope, body.source_bill_id) is None
    ):
        add_error(details, "source_bill_id", "Bill not found.")
    fail_if(details)
    if vendor is None:  # [doc] vendor_external_id can auto-create the vendor
        assert body.vendor_external_id is not None
        vendor = new_vendor(
            sb,
            scope,
            {
                "external_id": body.vendor_external_id,
                "company_name": body.vendor_name or body.vendor_external_id,
            },
        )
    now = now_iso()
    credit: Obj = {
        "id": store.new_id(),
        "_scope": scope,
        "business_id": scope,
        "external_id": body.external_id,
        "vendor_id": vendor["id"],
        "received_at": body.received_at,
        "currency": business["base_currency"],
        "source_bill_id": body.source_bill_id,
        "line_items": lines,
        "allocations": [
            {
                "id": store.new_id(),
                "bill_id": a.bill_id,
                "amount_cents": a.amount_cents,
                "applied_at": now,
            }
            for a in body.allocations
        ],
        "tags": body.tags or [],
        "memo": body.memo,
        "metadata": body.metadata or {},
        "document": body.document,
        rules.F_TOTAL: total,
        "created_at": now,
        "updated_at": now,
    }
    store.put("vendor_credits", credit)
    post_vendor_credit(sb, credit)
    return 201, vendor_credit_view(sb, credit)
