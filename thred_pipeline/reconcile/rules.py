"""What reconciliation compares for each entity, and the AR/AP sides of the party balances.

Typed objects, so a misspelt column or entity cannot load silently. (Interim home: these
declarations move beside each entity in ``thred_pipeline/entities/``.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table

from thred_pipeline.entities import EntitySpec
from thred_pipeline.reconcile import thred_values as tv
from thred_pipeline.reconcile.thred_values import ThredValues
from thred_pipeline.warehouse import schema as wh


@dataclass(frozen=True)
class Compared:
    """One column reconciliation compares, on both sides under the same name."""

    column: str
    money: bool = True  # a difference puts |thred - expected| at stake


def flag(column: str) -> Compared:
    """A compared column that is not money (a state or a reference)."""
    return Compared(column, money=False)


@dataclass(frozen=True)
class Reconciliation:
    """What reconciliation compares for one entity (all of it documented on Thred's side)."""

    columns: tuple[Compared, ...]
    thred_values: ThredValues  # one Thred item -> the compared columns
    headline: str | None = None  # the record's money: at stake when it is missing or extra
    # column -> a warehouse value Thred cannot take (no documented endpoint): noted, counted
    # and named in the check's summary, not a difference in the books
    warehouse_only: Mapping[str, Any] = field(default_factory=dict)
    # the list may leave some out (archived customers): read by id those the ledger holds
    unlisted_by_detail: bool = False


@dataclass(frozen=True)
class Settlement:
    """A settlement entity and the allocation rows that tie it to documents."""

    entity: str
    allocations: Table
    settlement_column: str
    document_column: str


@dataclass(frozen=True)
class Balances:
    """AR or AP: the party, its documents and the settlements that reduce what is open."""

    name: str  # "ar" / "ap": check f"{name}_balances", Thred's insights/{name}-aging/
    party: str  # the party entity: "customers"
    party_column: str  # the party's column on documents and settlements: "customer_id"
    document: str
    settlements: tuple[Settlement, ...]
    party_balance: str | None = None  # a per-party balance field on Thred's party item

    @property
    def entities(self) -> tuple[str, ...]:
        """The entities whose records carry this side's money: documents and settlements."""
        return (self.document, *(s.entity for s in self.settlements))


PAYOUT_MONEY = (
    "paid_out_amount_cents",
    "fee_cents",
    "gross_payments_amount_cents",
    "total_refunds_amount_cents",
    "expected_net_amount_cents",
    "amount_variance_cents",
)
PAYOUT_COUNTS = ("payment_count", "refund_payment_count")

RECONCILIATION: dict[str, Reconciliation] = {
    "businesses": Reconciliation(
        (flag("active"), flag("base_currency")),
        lambda i, r: {"active": bool(i.get("is_active")), "base_currency": i.get("base_currency")},
    ),
    "customers": Reconciliation(
        (flag("archived"),),
        lambda i, r: {
            "archived": bool(i.get("is_archived")),
            "outstanding_balance": tv.money(i, "outstanding_balance"),
        },
        unlisted_by_detail=True,
    ),
    # Thred documents no vendor archive (only unarchive): archived stays warehouse-only.
    "vendors": Reconciliation(
        (flag("archived"),),
        lambda i, r: {"archived": tv.status_is(i, "ARCHIVED")},
        warehouse_only={"archived": True},
    ),
    # total_cents is not in Thred's documented invoice shape: compared via AR balances
    "invoices": Reconciliation(
        (flag("customer_id"), flag("voided")),
        lambda i, r: {
            "customer_id": tv.ref(r, "customers", tv.nested_id(i, "customer")),
            "voided": i.get("voided_at") is not None or tv.status_is(i, "VOIDED", "VOID"),
        },
        headline="total_cents",
    ),
    "invoice_payments": Reconciliation(
        (
            flag("customer_id"),
            Compared("total_cents"),
            Compared("allocated_cents"),
            Compared("unallocated_cents"),
            Compared("fee_cents"),
        ),
        lambda i, r: {
            "customer_id": tv.ref(r, "customers", tv.nested_id(i, "customer")),
            "total_cents": tv.money(i, "total_amount_cents", "total_amount"),
            "allocated_cents": tv.money(i, "allocated_amount_cents", "allocated_amount"),
            "unallocated_cents": tv.money(i, "unallocated_amount_cents", "unallocated_amount"),
            "fee_cents": tv.money(i, "processing_fee_cents"),
        },
        headline="total_cents",
    ),
    "refunds": Reconciliation(
        (flag("invoice_id"), Compared("amount_cents")),
        lambda i, r: {
            "invoice_id": tv.ref(r, "invoices", tv.first_allocation(i, "invoice_id")),
            "amount_cents": tv.money(i, "refunded_amount"),
        },
        headline="amount_cents",
    ),
    "refund_payments": Reconciliation(
        (flag("refund_id"), Compared("amount_cents")),
        lambda i, r: {
            "refund_id": tv.ref(r, "refunds", str(i["refund_id"]) if i.get("refund_id") else None),
            "amount_cents": tv.money(i, "refunded_amount"),
        },
        headline="amount_cents",
    ),
    "payouts": Reconciliation(
        (*(Compared(c) for c in PAYOUT_MONEY), *(flag(c) for c in PAYOUT_COUNTS)),
        lambda i, r: {key: tv.money(i, key) for key in (*PAYOUT_MONEY, *PAYOUT_COUNTS)},
        headline="paid_out_amount_cents",
    ),
    "bills": Reconciliation(
        (flag("vendor_id"), Compared("total_cents")),
        lambda i, r: {
            "vendor_id": tv.ref(r, "vendors", tv.nested_id(i, "vendor")),
            "total_cents": tv.total(i.get("line_items"), "total_amount"),
        },
        headline="total_cents",
    ),
    "bill_payments": Reconciliation(
        (
            flag("vendor_id"),
            Compared("amount_cents"),
            Compared("allocated_cents"),
            Compared("unallocated_cents"),
        ),
        lambda i, r: {
            "vendor_id": tv.ref(r, "vendors", tv.nested_id(i, "vendor")),
            "amount_cents": tv.money(i, "amount_cents"),
            "allocated_cents": tv.money(i, "allocated_amount_cents"),
            "unallocated_cents": tv.money(i, "unallocated_amount_cents"),
        },
        headline="amount_cents",
    ),
    "vendor_credits": Reconciliation(
        (flag("vendor_id"), Compared("total_cents"), Compared("applied_cents")),
        lambda i, r: {
            "vendor_id": tv.ref(r, "vendors", tv.nested_id(i, "vendor")),
            "total_cents": tv.money(i, "total_amount"),
            "applied_cents": tv.money(i, "applied_amount"),
        },
        headline="total_cents",
    ),
}

AR = Balances(
    "ar",
    "customers",
    "customer_id",
    "invoices",
    (Settlement("invoice_payments", wh.payment_allocations, "payment_id", "invoice_id"),),
    party_balance="outstanding_balance",
)
AP = Balances(
    "ap",
    "vendors",
    "vendor_id",
    "bills",
    (
        Settlement("bill_payments", wh.bill_payment_allocations, "bill_payment_id", "bill_id"),
        Settlement("vendor_credits", wh.vendor_credit_allocations, "vendor_credit_id", "bill_id"),
    ),
)
BALANCES: tuple[Balances, ...] = (AR, AP)


def rule(spec: EntitySpec) -> Reconciliation:
    return RECONCILIATION[spec.name]
