"""The entity registry: every object thred-pipeline syncs is declared here, once.

Assets, asset checks, the sync order, extraction and the engine's change handling are all
generated from these declarations; adding an object type is one ``EntitySpec`` plus its mapper
and tests. Nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Table

from thred_pipeline.sync import mappers
from thred_pipeline.sync.records import MapContext, Mapped, SourceRecord
from thred_pipeline.warehouse import schema as wh


class ChangePolicy(StrEnum):
    """What a warehouse change to an already-created record becomes in Thred."""

    PUT = "put"  # documented full update (invoices, bills)
    PATCH = "patch"  # documented partial update (businesses)
    UPSERT = "upsert"  # POST with the same external_id updates (payouts)
    DRIFT = "drift"  # no documented update: flag it, never drop it silently


Mapper = Callable[[SourceRecord, MapContext], Mapped]


@dataclass(frozen=True)
class Child:
    """Rows of another table that belong to each record (line items, allocations)."""

    key: str
    table: Table
    parent_column: str
    order_by: str = "id"


@dataclass(frozen=True)
class Ref:
    """A reference that must already be in Thred before the record can be created."""

    entity: str
    column: str
    child: str | None = None  # the column lives on this child's rows instead of the record


@dataclass(frozen=True)
class Terminal:
    """A one-way lifecycle call (void, archive) made when ``column`` is set in the warehouse."""

    name: str
    column: str
    path: str  # relative to the business, with {thred_id}


@dataclass(frozen=True)
class EntitySpec:
    name: str
    label: str  # singular, human: "invoice payment"
    external_prefix: str  # external_id = f"{external_prefix}-{source id}", stable forever
    table: Table
    mapper: Mapper
    create_path: str  # relative to /v1/platform/businesses/{business}/ (or partner root)
    group: str
    change_policy: ChangePolicy
    children: tuple[Child, ...] = ()
    refs: tuple[Ref, ...] = ()
    update_path: str | None = None  # with {thred_id}
    terminal: Terminal | None = None
    partner_scoped: bool = False  # businesses live under the partner, not a business
    idempotency_header: bool = False  # also send Idempotency-Key (payments)
    response_key: str | None = None  # create responses wrapped in this key
    reference_data: bool = False  # mapper needs Thred's tax codes and chart of accounts
    blocking: bool = False  # a failed reconciliation stops dependants
    measures: tuple[str, ...] = ("count",)  # reconciliation measures (sync/reconcile.py)
    list_params: tuple[tuple[str, str], ...] = ()  # query params for counting in Thred
    listed_under: tuple[str, str] | None = None  # (parent entity, path param): nested lists

    @property
    def depends_on(self) -> tuple[str, ...]:
        parents = {ref.entity for ref in self.refs}
        if self.name != "businesses":
            parents.add("businesses")
        return tuple(sorted(parents))

    def external_id(self, source_id: str) -> str:
        return f"{self.external_prefix}-{source_id}"


ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec(
        name="businesses",
        label="business",
        external_prefix="business",
        table=wh.businesses,
        mapper=mappers.map_business,
        create_path="businesses/",
        update_path="businesses/{thred_id}/",
        partner_scoped=True,
        group="thred_core",
        change_policy=ChangePolicy.PATCH,
        blocking=True,
    ),
    EntitySpec(
        name="customers",
        label="customer",
        external_prefix="customer",
        table=wh.customers,
        mapper=mappers.map_customer,
        create_path="customers/",
        terminal=Terminal("archive", "archived_at", "customers/{thred_id}/archive/"),
        group="thred_ar",
        change_policy=ChangePolicy.DRIFT,
        blocking=True,
        measures=("count", "customer_balance"),
    ),
    EntitySpec(
        name="invoices",
        label="invoice",
        external_prefix="invoice",
        table=wh.invoices,
        mapper=mappers.map_invoice,
        reference_data=True,
        children=(Child("line_items", wh.invoice_line_items, "invoice_id", "position"),),
        refs=(Ref("customers", "customer_id"),),
        create_path="invoices/",
        update_path="invoices/{thred_id}/",
        terminal=Terminal("void", "voided_at", "invoices/{thred_id}/void/"),
        group="thred_ar",
        change_policy=ChangePolicy.PUT,
        blocking=True,
        measures=("count", "ar_outstanding"),
    ),
    EntitySpec(
        name="invoice_payments",
        label="invoice payment",
        external_prefix="payment",
        table=wh.payments,
        mapper=mappers.map_invoice_payment,
        children=(Child("allocations", wh.payment_allocations, "payment_id"),),
        refs=(
            Ref("customers", "customer_id"),
            Ref("invoices", "invoice_id", child="allocations"),
        ),
        create_path="invoices/payments/",
        idempotency_header=True,
        response_key="payment",
        group="thred_ar",
        change_policy=ChangePolicy.DRIFT,
        measures=("count", "payments_total"),
    ),
    EntitySpec(
        name="refunds",
        label="refund",
        external_prefix="refund",
        table=wh.refunds,
        mapper=mappers.map_refund,
        refs=(Ref("invoices", "invoice_id"),),
        create_path="invoices/refunds/",
        group="thred_ar",
        change_policy=ChangePolicy.DRIFT,
        measures=("count", "refund_liability"),
    ),
    EntitySpec(
        name="refund_payments",
        label="refund payment",
        external_prefix="refund-payment",
        table=wh.refund_payments,
        mapper=mappers.map_refund_payment,
        refs=(Ref("refunds", "refund_id"),),
        create_path="invoices/refunds/{refund_id}/payments/",
        listed_under=("refunds", "refund_id"),
        group="thred_ar",
        change_policy=ChangePolicy.DRIFT,
        measures=("count",),
    ),
    EntitySpec(
        name="payouts",
        label="payout",
        external_prefix="payout",
        table=wh.payouts,
        mapper=mappers.map_payout,
        children=(Child("items", wh.payout_items, "payout_id"),),
        refs=(
            Ref("invoice_payments", "payment_id", child="items"),
            Ref("refund_payments", "refund_payment_id", child="items"),
        ),
        create_path="payouts/",
        group="thred_ar",
        change_policy=ChangePolicy.UPSERT,
        measures=("count", "payout_totals"),
    ),
    EntitySpec(
        name="vendors",
        label="vendor",
        external_prefix="vendor",
        table=wh.vendors,
        mapper=mappers.map_vendor,
        create_path="vendors/",
        terminal=Terminal("archive", "archived_at", "vendors/{thred_id}/archive/"),
        list_params=(("include_archived", "true"),),
        group="thred_ap",
        change_policy=ChangePolicy.DRIFT,
        blocking=True,
        measures=("count", "vendor_balance"),
    ),
    EntitySpec(
        name="bills",
        label="bill",
        external_prefix="bill",
        table=wh.bills,
        mapper=mappers.map_bill,
        reference_data=True,
        children=(Child("line_items", wh.bill_line_items, "bill_id", "position"),),
        refs=(Ref("vendors", "vendor_id"),),
        create_path="bills/",
        update_path="bills/{thred_id}/",
        group="thred_ap",
        change_policy=ChangePolicy.PUT,
        blocking=True,
        measures=("count", "ap_outstanding"),
    ),
    EntitySpec(
        name="bill_payments",
        label="bill payment",
        external_prefix="bill-payment",
        table=wh.bill_payments,
        mapper=mappers.map_bill_payment,
        children=(Child("allocations", wh.bill_payment_allocations, "bill_payment_id"),),
        refs=(Ref("vendors", "vendor_id"), Ref("bills", "bill_id", child="allocations")),
        create_path="bills/payments/",
        idempotency_header=True,
        group="thred_ap",
        change_policy=ChangePolicy.DRIFT,
        measures=("count",),
    ),
    EntitySpec(
        name="vendor_credits",
        label="vendor credit",
        external_prefix="vendor-credit",
        table=wh.vendor_credits,
        mapper=mappers.map_vendor_credit,
        reference_data=True,
        children=(
            Child("lines", wh.vendor_credit_lines, "vendor_credit_id", "position"),
            Child("allocations", wh.vendor_credit_allocations, "vendor_credit_id"),
        ),
        refs=(Ref("vendors", "vendor_id"), Ref("bills", "bill_id", child="allocations")),
        create_path="vendor-credits/",
        group="thred_ap",
        change_policy=ChangePolicy.DRIFT,
        measures=("count", "vendor_credit_applied"),
    ),
)

BY_NAME: dict[str, EntitySpec] = {spec.name: spec for spec in ENTITIES}


def get(name: str) -> EntitySpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(BY_NAME)}") from None


def sync_order(specs: Iterable[EntitySpec] = ENTITIES) -> list[EntitySpec]:
    """Topological order of the registry (parents first), stable in declaration order."""
    pending = list(specs)
    done: set[str] = set()
    ordered: list[EntitySpec] = []
    while pending:
        ready = [s for s in pending if all(d in done for d in s.depends_on)]
        if not ready:
            raise ValueError(f"dependency cycle among {[s.name for s in pending]}")
        for spec in ready:
            ordered.append(spec)
            done.add(spec.name)
            pending.remove(spec)
    return ordered
