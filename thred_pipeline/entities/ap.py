"""Accounts payable: vendors, bills, bill payments and vendor credits.

Each object: its mapper, its declaration (``EntitySpec``) and its reconciliation rule, then the
``Ref`` that the objects after it use to name it as their parent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from thred_pipeline.core.money import to_cents
from thred_pipeline.core.records import MapContext, Mapped, RecordInvalid, SourceRecord
from thred_pipeline.entities import thred_values as tv
from thred_pipeline.entities.documents import (
    account_ref,
    checked_allocations,
    document_lines,
    resolve_allocations,
)
from thred_pipeline.entities.mapping import (
    BILL_PAYMENT_REFERENCE_MAX_LENGTH,
    CHECK_NUMBER_MAX_LENGTH,
    child_rows,
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
    Parents,
    Reconciliation,
    Ref,
    Settlement,
    WarehouseOnly,
    flag,
)
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.source import ChildTable
from thred_pipeline.warehouse.text_reads import TextReads, cents, lookup

if TYPE_CHECKING:
    import pandas as pd

BILL_PAYMENT_METHODS: Final = (
    "bank_transfer",
    "ach",
    "wire",
    "check",
    "credit_card",
    "cash",
    "other",
)  # 2.11


# --- vendors ---------------------------------------------------------------------------------


def map_vendor(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST vendors/. The address is one free-text string, so line breaks are kept."""
    row = record.row
    body: dict[str, Any] = party_names(row)
    put(body, "email", email_field(row.get("email"), "email"))
    put(body, "mobile_phone", text_field(row.get("phone"), "mobile_phone"))
    put(body, "address_string", text_field(row.get("address"), "address_string", multiline=True))
    put(body, "country", country_code(row.get("country"), "country"))
    put(body, "vat_number", text_field(row.get("vat_number"), "vat_number"))
    return Mapped(body=body)


def expected_vendors(reads: TextReads) -> pd.DataFrame:
    frame = reads.records(wh.vendors, "archived_at")
    frame["archived"] = frame.pop("archived_at").notna()
    return frame


def expected_bills(reads: TextReads) -> pd.DataFrame:
    import pandas as pd  # here, not at import: `sync` never needs it

    frame = reads.records(wh.bills, "vendor_id")
    frame["vendor_id"] = frame["vendor_id"].astype(str)
    totals = reads.document_totals(wh.bill_line_items, "bill_id", None)
    frame["total_cents"] = pd.array([totals.get(i, 0) for i in frame["source_id"]], "Int64")
    return frame


def expected_bill_payments(reads: TextReads) -> pd.DataFrame:
    frame = reads.records(wh.bill_payments, "vendor_id", "amount_cents")
    frame["vendor_id"] = frame["vendor_id"].astype(str)
    frame["amount_cents"] = cents(frame["amount_cents"])
    allocated = reads.sum_by(wh.bill_payment_allocations, "bill_payment_id")
    frame["allocated_cents"] = lookup(frame["source_id"], allocated)
    frame["unallocated_cents"] = frame["amount_cents"] - frame["allocated_cents"]
    return frame


def expected_vendor_credits(reads: TextReads) -> pd.DataFrame:
    frame = reads.records(wh.vendor_credits, "vendor_id")
    frame["vendor_id"] = frame["vendor_id"].astype(str)
    totals = reads.sum_by(wh.vendor_credit_lines, "vendor_credit_id")
    applied = reads.sum_by(wh.vendor_credit_allocations, "vendor_credit_id")
    frame["total_cents"] = lookup(frame["source_id"], totals)
    frame["applied_cents"] = lookup(frame["source_id"], applied)
    return frame


VENDORS = EntitySpec(
    name="vendors",
    label="vendor",
    external_prefix="vendor",
    table=wh.vendors,
    map_record=map_vendor,
    create_path="vendors/",
    # Only unarchive is documented: an archived vendor stays active in Thred, and the
    # ledger says so (error_code archived_in_warehouse_only on a synced row).
    warehouse_only=WarehouseOnly("archived", "archived_at", "archived_in_warehouse_only"),
    list_params=(("include_archived", "true"),),
    lookup_params=(("include_archived", "true"),),
    external_id_filter=True,
    group="thred_ap",
    change_policy=ChangePolicy.DRIFT,
    blocking=True,
    reconcile=Reconciliation(
        (flag(Measure.ARCHIVED),),
        {Measure.ARCHIVED: lambda i, r: tv.status_is(i, "ARCHIVED")},
        # Thred documents no vendor archive (only unarchive): archived stays warehouse-only.
        warehouse_only={Measure.ARCHIVED: True},
        warehouse=expected_vendors,
    ),
)
VENDOR = Ref(VENDORS.name, "vendor_id")


def _vendor_of(item: tv.Item, refs: tv.RefMap) -> str | None:
    return tv.ref(refs, VENDOR.entity, tv.nested_id(item, "vendor"))


# --- bills -----------------------------------------------------------------------------------


def map_bill(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST bills/ and PUT bills/{id}/ (same body; PUT replaces the line items)."""
    row = record.row
    vendor = source_ref(row.get(VENDOR.column), VENDOR.column)
    bill_number = required_text(row.get("bill_number"), "bill_number")
    vendor_bill_number = text_field(row.get("vendor_bill_number"), "vendor_bill_number")
    bill_date = date_field(row.get("bill_date"), "bill_date")
    due_at = datetime_field(row.get("due_at"), "due_at")
    currency = currency_code(row.get("currency"), "currency", ctx)
    memo = text_field(row.get("memo"), "memo", multiline=True)

    line_items, total = document_lines(record, ctx, "expense_account_code", noun="a bill")

    body: dict[str, Any] = {"vendor_id": parents.thred_id(VENDOR, vendor, "vendor_id")}
    body["bill_number"] = bill_number
    put(body, "vendor_bill_number", vendor_bill_number)
    body["bill_date"] = bill_date
    put(body, "due_at", due_at)
    body["currency"] = currency
    put(body, "memo", memo)
    body["line_items"] = line_items
    return Mapped(body=body, amount_cents=total)


BILLS = EntitySpec(
    name="bills",
    label="bill",
    external_prefix="bill",
    table=wh.bills,
    map_record=map_bill,
    reference_data=True,
    children=(ChildTable("line_items", wh.bill_line_items, "bill_id", "position"),),
    refs=(VENDOR,),
    create_path="bills/",
    update_path="bills/{thred_id}/",
    group="thred_ap",
    change_policy=ChangePolicy.PUT,
    blocking=True,
    reconcile=Reconciliation(
        (flag(Measure.VENDOR_ID), Compared(Measure.TOTAL_CENTS)),
        {
            Measure.VENDOR_ID: _vendor_of,
            Measure.TOTAL_CENTS: lambda i, r: tv.total(i.get("line_items"), "total_amount"),
        },
        headline=Measure.TOTAL_CENTS,
        warehouse=expected_bills,
    ),
)
ALLOCATED_BILLS = Ref(BILLS.name, "bill_id", child="allocations")


# --- bill payments ---------------------------------------------------------------------------


def map_bill_payment(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST bills/payments/ with its allocations to bills (created atomically by Thred)."""
    row = record.row
    vendor = source_ref(row.get(VENDOR.column), VENDOR.column)
    amount = to_cents(row.get("amount_cents"), "amount_cents", minimum=1)
    currency = currency_code(row.get("currency"), "currency", ctx)
    method = enum_value(row.get("payment_method"), "payment_method", BILL_PAYMENT_METHODS)
    payment_date = date_field(row.get("payment_date"), "payment_date")
    check_number = text_field(
        row.get("check_number"), "check_number", max_length=CHECK_NUMBER_MAX_LENGTH
    )
    if method == "check" and check_number is None:
        raise RecordInvalid("check_number", "is required when payment_method is 'check'")
    reference = text_field(
        row.get("reference"), "payment_reference", max_length=BILL_PAYMENT_REFERENCE_MAX_LENGTH
    )
    checked = checked_allocations(
        child_rows(record, "allocations"), ALLOCATED_BILLS.column, amount, "payment amount"
    )

    body: dict[str, Any] = {"vendor_id": parents.thred_id(VENDOR, vendor, "vendor_id")}
    body["amount_cents"] = amount
    body["currency"] = currency
    body["payment_method"] = method
    body["payment_date"] = payment_date
    put(body, "check_number", check_number)
    put(body, "payment_reference", reference)
    body["allocations"] = resolve_allocations(checked, ALLOCATED_BILLS, parents)
    return Mapped(body=body, amount_cents=amount)


BILL_PAYMENTS = EntitySpec(
    name="bill_payments",
    label="bill payment",
    external_prefix="bill-payment",
    table=wh.bill_payments,
    map_record=map_bill_payment,
    children=(ChildTable("allocations", wh.bill_payment_allocations, "bill_payment_id"),),
    refs=(VENDOR, ALLOCATED_BILLS),
    create_path="bills/payments/",
    idempotency_header=True,
    group="thred_ap",
    change_policy=ChangePolicy.DRIFT,
    reconcile=Reconciliation(
        (
            flag(Measure.VENDOR_ID),
            Compared(Measure.AMOUNT_CENTS),
            Compared(Measure.ALLOCATED_CENTS),
            Compared(Measure.UNALLOCATED_CENTS),
        ),
        {
            Measure.VENDOR_ID: _vendor_of,
            Measure.AMOUNT_CENTS: lambda i, r: tv.money(i, "amount_cents"),
            Measure.ALLOCATED_CENTS: lambda i, r: tv.money(i, "allocated_amount_cents"),
            Measure.UNALLOCATED_CENTS: lambda i, r: tv.money(i, "unallocated_amount_cents"),
        },
        headline=Measure.AMOUNT_CENTS,
        warehouse=expected_bill_payments,
    ),
)


# --- vendor credits --------------------------------------------------------------------------


def map_vendor_credit(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST vendor-credits/: credit lines plus optional applications to bills."""
    row = record.row
    vendor = source_ref(row.get(VENDOR.column), VENDOR.column)
    received_at = datetime_field(row.get("received_at"), "received_at", required=True)
    currency = currency_code(row.get("currency"), "currency", ctx)
    memo = text_field(row.get("memo"), "memo", multiline=True)
    credit_number = required_text(row.get("credit_number"), "metadata.credit_number")

    lines = child_rows(record, "lines")
    if not lines:
        raise RecordInvalid("line_items", "a vendor credit needs at least one line; none found")
    line_items: list[dict[str, Any]] = []
    total = 0
    for index, line in enumerate(lines):
        path = f"line_items[{index}]"
        amount = to_cents(line.get("amount_cents"), f"{path}.amount", minimum=1)
        item: dict[str, Any] = {"amount": amount}
        put(
            item,
            "description",
            text_field(line.get("description"), f"{path}.description", multiline=True),
        )
        item["expense_account_identifier"] = account_ref(
            line.get("expense_account_code"), ctx, f"{path}.expense_account_identifier"
        )
        line_items.append(item)
        total += amount
    checked = checked_allocations(
        child_rows(record, "allocations"), ALLOCATED_BILLS.column, total, "credit total"
    )

    body: dict[str, Any] = {"vendor_id": parents.thred_id(VENDOR, vendor, "vendor_id")}
    body["received_at"] = received_at
    body["currency"] = currency
    put(body, "memo", memo)
    body["metadata"] = {"credit_number": credit_number}
    body["line_items"] = line_items
    body["allocations"] = resolve_allocations(checked, ALLOCATED_BILLS, parents)
    return Mapped(body=body, amount_cents=total)


VENDOR_CREDITS = EntitySpec(
    name="vendor_credits",
    label="vendor credit",
    external_prefix="vendor-credit",
    table=wh.vendor_credits,
    map_record=map_vendor_credit,
    reference_data=True,
    children=(
        ChildTable("lines", wh.vendor_credit_lines, "vendor_credit_id", "position"),
        ChildTable("allocations", wh.vendor_credit_allocations, "vendor_credit_id"),
    ),
    refs=(VENDOR, ALLOCATED_BILLS),
    create_path="vendor-credits/",
    group="thred_ap",
    change_policy=ChangePolicy.DRIFT,
    reconcile=Reconciliation(
        (flag(Measure.VENDOR_ID), Compared(Measure.TOTAL_CENTS), Compared(Measure.APPLIED_CENTS)),
        {
            Measure.VENDOR_ID: _vendor_of,
            Measure.TOTAL_CENTS: lambda i, r: tv.money(i, "total_amount"),
            Measure.APPLIED_CENTS: lambda i, r: tv.money(i, "applied_amount"),
        },
        headline=Measure.TOTAL_CENTS,
        warehouse=expected_vendor_credits,
    ),
)

# This module's objects, in Thred's order (the registry concatenates the areas).
DECLARED = (VENDORS, BILLS, BILL_PAYMENTS, VENDOR_CREDITS)

# What is owed to vendors: bills less the payments and credits allocated to them (ap_balances).
AP = Balances(
    "ap",
    VENDORS.name,
    VENDOR.column,
    BILLS.name,
    (
        Settlement(
            BILL_PAYMENTS.name,
            wh.bill_payment_allocations,
            "bill_payment_id",
            ALLOCATED_BILLS.column,
        ),
        Settlement(
            VENDOR_CREDITS.name,
            wh.vendor_credit_allocations,
            "vendor_credit_id",
            ALLOCATED_BILLS.column,
        ),
    ),
)
