"""The entity registry: every object thred-pipeline syncs is declared here, once.

Assets, asset checks, the sync order, extraction and the engine's change handling are all
generated from these declarations; adding an object type is one ``EntitySpec`` plus its mapper
and tests. Nothing here imports Dagster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Table

from thred_pipeline.core.records import MapContext, Mapped, SourceRecord
from thred_pipeline.sync import mappers
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
    """A one-way lifecycle call (void, archive) made when ``column`` is set in the warehouse.

    The engine makes it only once no dependant of the record (a record of an entity whose
    ``refs`` point at this one) is still waiting to be sent, so archiving a customer never
    refuses its own same-day invoice; until then the ledger row is ``synced`` with
    ``error_code`` ``terminal_waiting``.
    """

    name: str
    column: str
    path: str  # relative to the business, with {thred_id}


@dataclass(frozen=True)
class WarehouseOnly:
    """A lifecycle state the warehouse has but Thred documents no call for.

    When ``column`` is set the record is synced as usual and its ledger row carries
    ``error_code`` = ``code`` (status stays ``synced``), so reconciliation can say that Thred
    still shows the record as it was (vendors: archived in the warehouse, active in Thred —
    only ``unarchive`` is documented).
    """

    name: str  # "archived"
    column: str
    code: str


# (our create body, one object as Thred lists it) -> True when that object could be ours. Used
# to adopt the object after a 409 duplicate_external_id when the list does not carry external_id.
AdoptMatch = Callable[[Mapping[str, Any], Mapping[str, Any]], bool]


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
    list_params: tuple[tuple[str, str], ...] = ()  # query params for counting in Thred
    listed_under: tuple[str, str] | None = None  # (parent entity, path param): nested lists
    # Adopting an object after 409 duplicate_external_id: the create path's list is read with
    # these params; ``external_id_filter`` when the list documents an ``external_id`` filter
    # (then one request per lookup, else the list is read once per run and kept).
    lookup_params: tuple[tuple[str, str], ...] = ()
    external_id_filter: bool = False
    adopt_match: AdoptMatch | None = None  # when the listed objects carry no external_id
    # Entities, beyond ``refs``, whose records' state decides whether Thred accepts this one
    # (a refund needs the invoice's payments). A record Thred refused is re-sent once when a
    # record of an upstream entity (refs and these, transitively) of its business changes.
    retry_after: tuple[str, ...] = ()
    warehouse_only: WarehouseOnly | None = None

    @property
    def depends_on(self) -> tuple[str, ...]:
        parents = {ref.entity for ref in self.refs}
        if self.name != "businesses":
            parents.add("businesses")
        return tuple(sorted(parents))

    def external_id(self, source_id: str) -> str:
        return f"{self.external_prefix}-{source_id}"

    @property
    def retry_on_upstream(self) -> bool:
        """Refused records are re-sent when an upstream record changes (entities with refs)."""
        return bool(self.refs or self.retry_after)


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
        # [inferred] the customers list hides archived customers unless asked (mirrors the
        # vendors list's documented include_archived).
        lookup_params=(("include_archived", "true"),),
        group="thred_ar",
        change_policy=ChangePolicy.DRIFT,
        blocking=True,
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
    ),
    EntitySpec(
        name="refunds",
        label="refund",
        external_prefix="refund",
        table=wh.refunds,
        mapper=mappers.map_refund,
        refs=(Ref("invoices", "invoice_id"),),
        retry_after=("invoice_payments",),  # a refund is refused above what is paid
        create_path="invoices/refunds/",
        adopt_match=same_refund,
        group="thred_ar",
        change_policy=ChangePolicy.DRIFT,
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
        external_id_filter=True,  # [doc] partial match; the client compares exactly
        group="thred_ar",
        change_policy=ChangePolicy.UPSERT,
    ),
    EntitySpec(
        name="vendors",
        label="vendor",
        external_prefix="vendor",
        table=wh.vendors,
        mapper=mappers.map_vendor,
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
    ),
)

BY_NAME: dict[str, EntitySpec] = {spec.name: spec for spec in ENTITIES}


def get(name: str) -> EntitySpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(BY_NAME)}") from None


def dependants(name: str) -> list[tuple[EntitySpec, Ref]]:
    """Every (entity, reference) whose ``refs`` point at entity ``name``."""
    return [(spec, ref) for spec in ENTITIES for ref in spec.refs if ref.entity == name]


def upstream(name: str) -> frozenset[str]:
    """Entities whose records' state can decide whether Thred accepts a record of ``name``:
    its parents and ``retry_after``, transitively (``businesses`` included)."""
    found: set[str] = set()
    pending = [name]
    while pending:
        spec = get(pending.pop())
        for parent in (*spec.depends_on, *spec.retry_after):
            if parent not in found:
                found.add(parent)
                pending.append(parent)
    found.discard(name)
    return frozenset(found)


def sync_order(specs: Iterable[EntitySpec] = ENTITIES) -> list[EntitySpec]:
    """Topological order of the registry (parents first), stable in declaration order."""
    pending = list(specs)
    done: set[str] = set()
    ordered: list[EntitySpec] = []
    while pending:
        # retry_after orders too (a refund after the payments it needs) without being a ref.
        ready = [s for s in pending if all(d in done for d in (*s.depends_on, *s.retry_after))]
        if not ready:
            raise ValueError(f"dependency cycle among {[s.name for s in pending]}")
        for spec in ready:
            ordered.append(spec)
            done.add(spec.name)
            pending.remove(spec)
    return ordered
