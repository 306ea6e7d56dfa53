"""Accounts receivable after payment: refunds, refund payments and the payouts that settle them.

Laid out as ``ar.py``: each object's mapper, declaration and reconciliation rule, then the
``Ref`` that later objects use to name it as their parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from thred_pipeline.core.money import to_cents
from thred_pipeline.core.records import MapContext, Mapped, RecordInvalid, SourceRecord
from thred_pipeline.entities import thred_values as tv
from thred_pipeline.entities.ar import INVOICE_PAYMENTS, REFUNDED_INVOICE
from thred_pipeline.entities.mapping import (
    blank,
    cents_or_zero,
    child_rows,
    currency_code,
    datetime_field,
    enum_value,
    put,
    required_text,
    source_ref,
    text_field,
)
from thred_pipeline.entities.spec import (
    ChangePolicy,
    Compared,
    EntitySpec,
    Measure,
    Parents,
    Reconciliation,
    Ref,
    flag,
)
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.source import ChildTable
from thred_pipeline.warehouse.text_reads import TextReads, cents, lookup

if TYPE_CHECKING:
    import pandas as pd

REFUND_METHODS: Final = ("CASH", "CARD", "BANK_TRANSFER", "ACH", "CHECK", "OTHER")  # 2.7/2.8
PAYOUT_STATUSES: Final = ("pending", "paid")  # 2.9


# --- refunds ---------------------------------------------------------------------------------


def map_refund(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST invoices/refunds/: a credit against one invoice (the cash leg is a refund payment)."""
    row = record.row
    invoice = source_ref(row.get(REFUNDED_INVOICE.column), REFUNDED_INVOICE.column)
    amount = to_cents(row.get("amount_cents"), "amount_cents", minimum=1)
    method = enum_value(row.get("method"), "method", REFUND_METHODS, upper=True)
    completed_at = datetime_field(row.get("completed_at"), "completed_at")
    memo = text_field(row.get("reason"), "memo", multiline=True)

    body: dict[str, Any] = {"invoice_id": parents.thred_id(REFUNDED_INVOICE, invoice, "invoice_id")}
    body["amount_cents"] = amount
    body["method"] = method
    put(body, "completed_at", completed_at)
    put(body, "memo", memo)
    return Mapped(body=body, amount_cents=amount)


def same_refund(body: Mapping[str, Any], listed: Mapping[str, Any]) -> bool:
    """A listed refund that could be ours: same refunded amount, allocated to our invoice.

    Refunds as Thred lists them carry no external_id ([doc] 2.7: ``id, refunded_amount,
    customer_id, customer_name, allocations[{invoice_id, ...}], refund_payments``).
    """
    allocations = listed.get("allocations")
    if not isinstance(allocations, list):
        return False
    return listed.get("refunded_amount") == body.get("amount_cents") and any(
        isinstance(a, Mapping) and a.get("invoice_id") == body.get("invoice_id")
        for a in allocations
    )


def expected_refunds(reads: TextReads) -> pd.DataFrame:
    frame = reads.records(wh.refunds, "invoice_id", "amount_cents")
    frame["invoice_id"] = frame["invoice_id"].astype(str)
    frame["amount_cents"] = cents(frame["amount_cents"])
    return frame


def expected_refund_payments(reads: TextReads) -> pd.DataFrame:
    frame = reads.records(wh.refund_payments, "refund_id", "amount_cents")
    frame["refund_id"] = frame["refund_id"].astype(str)
    frame["amount_cents"] = cents(frame["amount_cents"])
    return frame


def expected_payouts(reads: TextReads) -> pd.DataFrame:
    """A payout's stated amounts, and the totals and counts of the items it pays out."""
    frame = reads.records(wh.payouts, "paid_out_amount_cents", "fee_cents")
    frame["paid_out_amount_cents"] = cents(frame["paid_out_amount_cents"])
    frame["fee_cents"] = cents(frame["fee_cents"].fillna("0"))
    items = reads.read(wh.payout_items, ("payout_id", "payment_id", "refund_payment_id"))
    payments = reads.read(wh.payments, ("id", "amount_cents"))
    refund_payments = reads.read(wh.refund_payments, ("id", "amount_cents"))
    pay_amount = cents(payments["amount_cents"]).set_axis(payments["id"].astype(str))
    rp_amount = cents(refund_payments["amount_cents"]).set_axis(refund_payments["id"].astype(str))
    payout = items["payout_id"].astype(str)
    paid = items["payment_id"].dropna().astype(str)
    refunded = items["refund_payment_id"].dropna().astype(str)
    gross = paid.map(pay_amount).groupby(payout[paid.index]).sum(min_count=1)
    refunds = refunded.map(rp_amount).groupby(payout[refunded.index]).sum(min_count=1)
    ids = frame["source_id"]
    frame["gross_payments_amount_cents"] = lookup(ids, gross)
    frame["total_refunds_amount_cents"] = lookup(ids, refunds)
    frame["payment_count"] = cents(ids.map(paid.groupby(payout[paid.index]).size()).fillna(0))
    frame["refund_payment_count"] = cents(
        ids.map(refunded.groupby(payout[refunded.index]).size()).fillna(0)
    )
    frame["expected_net_amount_cents"] = (
        frame["gross_payments_amount_cents"]
        - frame["total_refunds_amount_cents"]
        - frame["fee_cents"]
    )
    frame["amount_variance_cents"] = (
        frame["paid_out_amount_cents"] - frame["expected_net_amount_cents"]
    )
    return frame


REFUNDS = EntitySpec(
    name="refunds",
    label="refund",
    external_prefix="refund",
    table=wh.refunds,
    map_record=map_refund,
    refs=(REFUNDED_INVOICE,),
    retry_after=(INVOICE_PAYMENTS.name,),  # a refund is refused above what is paid
    create_path="invoices/refunds/",
    adopt_match=same_refund,
    group="thred_ar",
    change_policy=ChangePolicy.DRIFT,
    reconcile=Reconciliation(
        (flag(Measure.INVOICE_ID), Compared(Measure.AMOUNT_CENTS)),
        {
            Measure.INVOICE_ID: lambda i, r: tv.ref(
                r, REFUNDED_INVOICE.entity, tv.first_allocation(i, "invoice_id")
            ),
            Measure.AMOUNT_CENTS: lambda i, r: tv.money(i, "refunded_amount"),
        },
        headline=Measure.AMOUNT_CENTS,
        warehouse=expected_refunds,
    ),
)
REFUND = Ref(REFUNDS.name, "refund_id")


# --- refund payments -------------------------------------------------------------------------


def map_refund_payment(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST invoices/refunds/{refund_id}/payments/: the refund's parent goes in the path."""
    row = record.row
    refund = source_ref(row.get(REFUND.column), REFUND.column)
    amount = to_cents(row.get("amount_cents"), "amount_cents", minimum=1)
    method = enum_value(row.get("method"), "method", REFUND_METHODS, upper=True)
    completed_at = datetime_field(row.get("completed_at"), "completed_at", required=True)
    processor = text_field(row.get("processor"), "processor")

    refund_id = parents.thred_id(REFUND, refund, "refund_id")
    body: dict[str, Any] = {"amount_cents": amount, "method": method, "completed_at": completed_at}
    put(body, "processor", processor)
    return Mapped(body=body, path_params={"refund_id": refund_id}, amount_cents=amount)


REFUND_PAYMENTS = EntitySpec(
    name="refund_payments",
    label="refund payment",
    external_prefix="refund-payment",
    table=wh.refund_payments,
    map_record=map_refund_payment,
    refs=(REFUND,),
    create_path="invoices/refunds/{refund_id}/payments/",
    listed_under=(REFUND.entity, REFUND.column),
    group="thred_ar",
    change_policy=ChangePolicy.DRIFT,
    reconcile=Reconciliation(
        (flag(Measure.REFUND_ID), Compared(Measure.AMOUNT_CENTS)),
        {
            Measure.REFUND_ID: lambda i, r: tv.ref(
                r, REFUND.entity, str(i["refund_id"]) if i.get("refund_id") else None
            ),
            Measure.AMOUNT_CENTS: lambda i, r: tv.money(i, "refunded_amount"),
        },
        headline=Measure.AMOUNT_CENTS,
        warehouse=expected_refund_payments,
    ),
)


# --- payouts ---------------------------------------------------------------------------------

SETTLED_PAYMENTS = Ref(INVOICE_PAYMENTS.name, "payment_id", child="items")
SETTLED_REFUND_PAYMENTS = Ref(REFUND_PAYMENTS.name, "refund_payment_id", child="items")


def map_payout(record: SourceRecord, ctx: MapContext, parents: Parents) -> Mapped:
    """POST payouts/ (an upsert on external_id) listing the payments it settles."""
    row = record.row
    processor = required_text(row.get("processor"), "processor")
    processor_payout_id = text_field(row.get("processor_payout_id"), "processor_payout_id")
    paid_out = to_cents(row.get("paid_out_amount_cents"), "paid_out_amount_cents")
    fee = cents_or_zero(row.get("fee_cents"), "fee_cents")
    currency = currency_code(row.get("currency"), "currency", ctx)
    status = enum_value(row.get("status"), "status", PAYOUT_STATUSES)
    completed_at = datetime_field(row.get("completed_at"), "completed_at")

    payments, refund_payments = _payout_items(child_rows(record, "items"))

    body: dict[str, Any] = {"processor": processor}
    put(body, "processor_payout_id", processor_payout_id)
    body["paid_out_amount_cents"] = paid_out
    body["fee_cents"] = fee
    body["currency"] = currency
    body["status"] = status
    put(body, "completed_at", completed_at)
    body["payment_ids"] = [
        parents.thred_id(SETTLED_PAYMENTS, source, f"payment_ids[{i}]")
        for i, source in enumerate(payments)
    ]
    body["refund_payment_ids"] = [
        parents.thred_id(SETTLED_REFUND_PAYMENTS, source, f"refund_payment_ids[{i}]")
        for i, source in enumerate(refund_payments)
    ]
    return Mapped(body=body, amount_cents=paid_out)


def _payout_items(items: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The payments and refund payments a payout settles: each item names exactly one."""
    payments: list[str] = []
    refund_payments: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for index, item in enumerate(items):
        path = f"items[{index}]"
        has_payment = not blank(item.get(SETTLED_PAYMENTS.column))
        has_refund = not blank(item.get(SETTLED_REFUND_PAYMENTS.column))
        if has_payment == has_refund:
            which = "both payment_id and" if has_payment else "neither payment_id nor"
            raise RecordInvalid(
                path,
                f"payout item {item.get('id')!r} sets {which} refund_payment_id; "
                "exactly one is required",
            )
        column, bucket = (
            (SETTLED_PAYMENTS.column, payments)
            if has_payment
            else (SETTLED_REFUND_PAYMENTS.column, refund_payments)
        )
        source = source_ref(item.get(column), f"{path}.{column}")
        earlier = seen.setdefault((column, source), index)
        if earlier != index:
            raise RecordInvalid(
                f"{path}.{column}",
                f"{column} {source!r} is already in this payout at items[{earlier}]",
            )
        bucket.append(source)
    return payments, refund_payments


_PAYOUT_MONEY = (
    Measure.PAID_OUT_AMOUNT_CENTS,
    Measure.FEE_CENTS,
    Measure.GROSS_PAYMENTS_AMOUNT_CENTS,
    Measure.TOTAL_REFUNDS_AMOUNT_CENTS,
    Measure.EXPECTED_NET_AMOUNT_CENTS,
    Measure.AMOUNT_VARIANCE_CENTS,
)
_PAYOUT_COUNTS = (Measure.PAYMENT_COUNT, Measure.REFUND_PAYMENT_COUNT)


def _payout_field(measure: Measure) -> tv.ThredField:
    """Payout measures are Thred's own field names, read as integers."""
    return lambda item, refs: tv.money(item, measure.value)


PAYOUTS = EntitySpec(
    name="payouts",
    label="payout",
    external_prefix="payout",
    table=wh.payouts,
    map_record=map_payout,
    children=(ChildTable("items", wh.payout_items, "payout_id"),),
    refs=(SETTLED_PAYMENTS, SETTLED_REFUND_PAYMENTS),
    create_path="payouts/",
    external_id_filter=True,  # [doc] partial match; the client compares exactly
    group="thred_ar",
    change_policy=ChangePolicy.UPSERT,
    reconcile=Reconciliation(
        (*(Compared(m) for m in _PAYOUT_MONEY), *(flag(m) for m in _PAYOUT_COUNTS)),
        {m: _payout_field(m) for m in (*_PAYOUT_MONEY, *_PAYOUT_COUNTS)},
        headline=Measure.PAID_OUT_AMOUNT_CENTS,
        warehouse=expected_payouts,
    ),
)

# This module's objects, in Thred's order (the registry concatenates the areas).
DECLARED = (REFUNDS, REFUND_PAYMENTS, PAYOUTS)
