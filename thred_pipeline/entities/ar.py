"""Accounts receivable: customers, invoices and invoice payments (refunds, payouts: ar_payouts).

Each object: its mapper, its declaration (``EntitySpec``) and its reconciliation rule, then the
``Ref`` that the objects after it use to name it as their parent. The mappers validate every
value first and resolve parents last, so a record both invalid and waiting for a parent is
rejected now rather than deferred and rejected later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from thred_pipeline.core.money import to_cents
from thred_pipeline.core.records import MapContext, Mapped, RecordInvalid, SourceRecord
from thred_pipeline.entities import thred_values as tv
from thred_pipeline.entities.documents import (
    checked_allocations,
    document_lines,
    resolve_allocations,
)
from thred_pipeline.entities.mapping import (
    PAYMENT_PROCESSOR_MAX_LENGTH,
    bool_field,
    cents_or_zero,
    child_rows,
    count_field,
    country_code,
    currency_code,
    date_field,
    datetime_field,
    email_field,
    enum_value,
    party_names,
    put,
    required_text,
    source_ref,
    text_field,
)
from thred_pipeline.entities.spec import (
    Balances,
    ChangePolicy,
    Compared,
    EntitySpec,
    Measure,
    ParentFlag,
    Parents,
    Reconciliation,
    Ref,
    Settlement,
    Terminal,
    flag,
)
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.source import ChildTable
from thred_pipeline.warehouse.text_reads import TextReads, cents, lookup

if TYPE_CHECKING:
    import pandas as pd

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


# --- customers -------------------------------------------------------------------------------


def map_customer(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST customers/. Archiving is the engine's terminal call, not part of the body."""
    row = record.row
    body: dict[str, Any] = party_names(row)
    put(body, "email", email_field(row.get("email"), "email"))
    put(body, "mobile_phone", text_field(row.get("phone"), "mobile_phone"))
    put(body, "address_line1", text_field(row.get("address_line1"), "address_line1"))
    put(body, "city", text_field(row.get("city"), "city"))
    put(body, "postal_code", text_field(row.get("postal_code"), "postal_code"))
    put(body, "country", country_code(row.get("country"), "country"))
    put(body, "vat_number", text_field(row.get("vat_number"), "vat_number"))
    put(body, "tax_exempt", bool_field(row.get("tax_exempt"), "tax_exempt"))
    put(
        body, "payment_terms_days", count_field(row.get("payment_terms_days"), "payment_terms_days")
    )
    return Mapped(body=body)


def expected_customers(reads: TextReads) -> pd.DataFrame:
    frame = reads.records(wh.customers, "archived_at")
    frame["archived"] = frame.pop("archived_at").notna()
    return frame


def expected_invoices(reads: TextReads) -> pd.DataFrame:
    import pandas as pd  # here, not at import: `sync` never needs it

    frame = reads.records(wh.invoices, "customer_id", "voided_at", "additional_discount_cents")
    totals = reads.document_totals(wh.invoice_line_items, "invoice_id", "discount_cents")
    discount = cents(frame.pop("additional_discount_cents").fillna("0"))
    lines = pd.array([totals.get(i, 0) for i in frame["source_id"]], dtype="Int64")
    frame["total_cents"] = pd.Series(lines, index=frame.index) - discount
    frame["voided"] = frame.pop("voided_at").notna()
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame


def expected_invoice_payments(reads: TextReads) -> pd.DataFrame:
    frame = reads.records(wh.payments, "customer_id", "amount_cents", "processing_fee_cents")
    frame["customer_id"] = frame["customer_id"].astype(str)
    frame["total_cents"] = cents(frame.pop("amount_cents"))
    allocated = reads.sum_by(wh.payment_allocations, "payment_id")
    frame["allocated_cents"] = lookup(frame["source_id"], allocated)
    frame["unallocated_cents"] = frame["total_cents"] - frame["allocated_cents"]
    frame["fee_cents"] = cents(frame.pop("processing_fee_cents").fillna("0"))
    return frame


CUSTOMERS = EntitySpec(
    name="customers",
    label="customer",
    external_prefix="customer",
    table=wh.customers,
    map_record=map_customer,
    create_path="customers/",
    terminal=Terminal("archive", "archived_at", "customers/{thred_id}/archive/"),
    # [inferred] the customers list hides archived customers unless asked (mirrors the
    # vendors list's documented include_archived).
    lookup_params=(("include_archived", "true"),),
    group="thred_ar",
    change_policy=ChangePolicy.DRIFT,
    blocking=True,
    reconcile=Reconciliation(
        (flag(Measure.ARCHIVED),),
        {
            Measure.ARCHIVED: lambda i, r: bool(i.get("is_archived")),
            Measure.OUTSTANDING_BALANCE: lambda i, r: tv.money(i, "outstanding_balance"),
        },
        unlisted_by_detail=True,
        warehouse=expected_customers,
    ),
)
CUSTOMER = Ref(CUSTOMERS.name, "customer_id")


def _customer_of(item: tv.Item, refs: tv.RefMap) -> str | None:
    return tv.ref(refs, CUSTOMER.entity, tv.nested_id(item, "customer"))


# --- invoices --------------------------------------------------------------------------------


def map_invoice(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST invoices/ and PUT invoices/{id}/ (same body). Voiding is the engine's call."""
    row = record.row
    customer = source_ref(row.get(CUSTOMER.column), CUSTOMER.column)
    exempt = customer if customer in ctx.tax_exempt_customers else None
    invoice_number = required_text(row.get("invoice_number"), "invoice_number")
    currency_code(row.get("currency"), "currency", ctx)  # checked, not sent: not in the schema
    sent_at = datetime_field(row.get("sent_at"), "sent_at", required=True)
    due_at = datetime_field(row.get("due_at"), "due_at")
    memo = text_field(row.get("memo"), "memo", multiline=True)
    additional_discount = cents_or_zero(row.get("additional_discount_cents"), "additional_discount")

    line_items, total = document_lines(
        record, ctx, "revenue_account_code", noun="an invoice", sales=True, exempt_customer=exempt
    )
    if additional_discount > total:
        raise RecordInvalid(
            "additional_discount",
            f"additional_discount_cents {additional_discount} is more than the invoice's "
            f"line total {total}",
        )

    body: dict[str, Any] = {"customer_id": parents.thred_id(CUSTOMER, customer, "customer_id")}
    body["invoice_number"] = invoice_number
    body["sent_at"] = sent_at
    put(body, "due_at", due_at)
    put(body, "memo", memo)
    body["additional_discount"] = additional_discount
    body["line_items"] = line_items
    return Mapped(body=body, amount_cents=total - additional_discount)


INVOICES = EntitySpec(
    name="invoices",
    label="invoice",
    external_prefix="invoice",
    table=wh.invoices,
    map_record=map_invoice,
    reference_data=True,
    children=(ChildTable("line_items", wh.invoice_line_items, "invoice_id", "position"),),
    refs=(CUSTOMER,),
    flagged_parents=ParentFlag(CUSTOMER.column, CUSTOMERS.table, "tax_exempt"),
    create_path="invoices/",
    update_path="invoices/{thred_id}/",
    terminal=Terminal("void", "voided_at", "invoices/{thred_id}/void/"),
    group="thred_ar",
    change_policy=ChangePolicy.PUT,
    blocking=True,
    reconcile=Reconciliation(
        (flag(Measure.CUSTOMER_ID), flag(Measure.VOIDED)),
        {
            Measure.CUSTOMER_ID: _customer_of,
            Measure.VOIDED: lambda i, r: (
                i.get("voided_at") is not None or tv.status_is(i, "VOIDED", "VOID")
            ),
        },
        headline=Measure.TOTAL_CENTS,  # not in Thred's documented invoice shape: via AR
        warehouse=expected_invoices,
    ),
)
PAID_INVOICES = Ref(INVOICES.name, "invoice_id", child="allocations")
REFUNDED_INVOICE = Ref(INVOICES.name, "invoice_id")


# --- invoice payments ------------------------------------------------------------------------


def map_invoice_payment(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST invoices/payments/ with its allocations to invoices."""
    row = record.row
    customer = source_ref(row.get(CUSTOMER.column), CUSTOMER.column)
    total = to_cents(row.get("amount_cents"), "total_amount_cents", minimum=1)
    payment_date = date_field(row.get("payment_date"), "payment_date")
    currency = currency_code(row.get("currency"), "currency", ctx)
    method = enum_value(row.get("payment_method"), "payment_method", INVOICE_PAYMENT_METHODS)
    reference = text_field(row.get("reference"), "payment_reference")
    fee = cents_or_zero(row.get("processing_fee_cents"), "processing_fee_cents")
    processor = text_field(
        row.get("processor"), "payment_processor", max_length=PAYMENT_PROCESSOR_MAX_LENGTH
    )
    checked = checked_allocations(
        child_rows(record, "allocations"), PAID_INVOICES.column, total, "payment total"
    )

    body: dict[str, Any] = {"customer_id": parents.thred_id(CUSTOMER, customer, "customer_id")}
    body["total_amount_cents"] = total
    body["payment_date"] = payment_date
    body["currency"] = currency
    body["payment_method"] = method
    put(body, "payment_reference", reference)
    body["processing_fee_cents"] = fee
    put(body, "payment_processor", processor)
    body["allocations"] = resolve_allocations(checked, PAID_INVOICES, parents)
    return Mapped(body=body, amount_cents=total)


INVOICE_PAYMENTS = EntitySpec(
    name="invoice_payments",
    label="invoice payment",
    external_prefix="payment",
    table=wh.payments,
    map_record=map_invoice_payment,
    children=(ChildTable("allocations", wh.payment_allocations, "payment_id"),),
    refs=(CUSTOMER, PAID_INVOICES),
    create_path="invoices/payments/",
    idempotency_header=True,
    response_key="payment",
    group="thred_ar",
    change_policy=ChangePolicy.DRIFT,
    reconcile=Reconciliation(
        (
            flag(Measure.CUSTOMER_ID),
            Compared(Measure.TOTAL_CENTS),
            Compared(Measure.ALLOCATED_CENTS),
            Compared(Measure.UNALLOCATED_CENTS),
            Compared(Measure.FEE_CENTS),
        ),
        {
            Measure.CUSTOMER_ID: _customer_of,
            Measure.TOTAL_CENTS: lambda i, r: tv.money(i, "total_amount_cents", "total_amount"),
            Measure.ALLOCATED_CENTS: lambda i, r: tv.money(
                i, "allocated_amount_cents", "allocated_amount"
            ),
            Measure.UNALLOCATED_CENTS: lambda i, r: tv.money(
                i, "unallocated_amount_cents", "unallocated_amount"
            ),
            Measure.FEE_CENTS: lambda i, r: tv.money(i, "processing_fee_cents"),
        },
        headline=Measure.TOTAL_CENTS,
        warehouse=expected_invoice_payments,
    ),
)


# This module's objects, in Thred's order (the registry concatenates the areas).
DECLARED = (CUSTOMERS, INVOICES, INVOICE_PAYMENTS)

# What customers owe: invoices less the payments allocated to them (AR aging, ar_balances).
AR = Balances(
    "ar",
    CUSTOMERS.name,
    CUSTOMER.column,
    INVOICES.name,
    (
        Settlement(
            INVOICE_PAYMENTS.name, wh.payment_allocations, "payment_id", PAID_INVOICES.column
        ),
    ),
    party_balance=Measure.OUTSTANDING_BALANCE,
)
