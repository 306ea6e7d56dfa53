"""How one Thred object is declared: what to read, how to map it, whom it needs, how to check it.

Each entity module (``businesses``, ``ar``, ``ar_payouts``, ``ap``) declares its objects with
these types, side by side with their mappers and reconciliation rules; the registry
(``entities/__init__.py``) orders them. Everything here is plain data: assets, checks,
extraction, the engine and reconciliation are all generated from it. Nothing here imports
Dagster, sync/ or reconcile/.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import Table

from thred_pipeline.core.records import MapContext, Mapped, SourceRecord
from thred_pipeline.entities.thred_values import Item, RefMap, ThredField
from thred_pipeline.warehouse.source import ChildTable, SourceTable
from thred_pipeline.warehouse.text_reads import WarehouseValues


class ChangePolicy(StrEnum):
    """What a warehouse change to an already-created record becomes in Thred."""

    PUT = "put"  # documented full update (invoices, bills)
    PATCH = "patch"  # documented partial update (businesses)
    UPSERT = "upsert"  # POST with the same external_id updates (payouts)
    DRIFT = "drift"  # no documented update: flag it, never drop it silently


# --- parents ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A parent that must already be in Thred before the record can be created.

    Declared once, on the entity (``EntitySpec.refs``): the sync order, the engine's Thred-id
    lookups and the mapper all read the same object (as dlt's rest_api ``resolve`` params: a
    request parameter resolved from a parent resource's field). A mapper can only resolve a
    parent through a ``Ref`` its entity declares (``Parents``), so a binding cannot be dropped
    from the order and still be used by the mapper (records deferred forever).
    """

    entity: str
    column: str
    child: str | None = None  # the column lives on this child's rows instead of the record


@dataclass(frozen=True)
class ParentFlag:
    """A warehouse flag on a parent that the mapper reads (``MapContext.tax_exempt_customers``).

    The engine reads ``table.flag`` for the parents named in the record's ``column`` and hands
    the flagged ids to the mapper: a tax-exempt customer's invoice may carry no taxed line.
    """

    column: str  # on the record's own row: "customer_id"
    table: Table  # the parent's table: customers
    flag: str  # a boolean column there: "tax_exempt"


class UndeclaredParent(LookupError):
    """A mapper asked for a parent its entity does not declare: a bug in the declaration."""


@dataclass(frozen=True)
class Parents:
    """The parents' Thred ids a mapper may use: only through its entity's declared ``Ref``s."""

    entity: str
    declared: tuple[Ref, ...]
    ctx: MapContext

    def thred_id(self, ref: Ref, source_id: str, field_path: str) -> str:
        """The parent's Thred id; ``ParentNotSynced`` (the record waits) when it has none yet."""
        if ref not in self.declared:
            raise UndeclaredParent(f"{self.entity} does not declare its parent {ref}")
        return self.ctx.parent_id(ref.entity, source_id, field_path)


# (record, context, parents) -> the request body. Pure: validates, then resolves parents last.
EntityMapper = Callable[[SourceRecord, MapContext, Parents], Mapped]


# --- lifecycle ---------------------------------------------------------------------------------


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


# --- reconciliation ----------------------------------------------------------------------------


class Measure(StrEnum):
    """A value reconciliation compares: the same column name on the warehouse and Thred side.

    An enum so that a misspelt measure fails at import instead of being silently skipped.
    """

    ACTIVE = "active"
    BASE_CURRENCY = "base_currency"
    ARCHIVED = "archived"
    OUTSTANDING_BALANCE = "outstanding_balance"
    VOIDED = "voided"
    CUSTOMER_ID = "customer_id"
    VENDOR_ID = "vendor_id"
    INVOICE_ID = "invoice_id"
    REFUND_ID = "refund_id"
    TOTAL_CENTS = "total_cents"
    AMOUNT_CENTS = "amount_cents"
    ALLOCATED_CENTS = "allocated_cents"
    UNALLOCATED_CENTS = "unallocated_cents"
    APPLIED_CENTS = "applied_cents"
    FEE_CENTS = "fee_cents"
    PAID_OUT_AMOUNT_CENTS = "paid_out_amount_cents"
    GROSS_PAYMENTS_AMOUNT_CENTS = "gross_payments_amount_cents"
    TOTAL_REFUNDS_AMOUNT_CENTS = "total_refunds_amount_cents"
    EXPECTED_NET_AMOUNT_CENTS = "expected_net_amount_cents"
    AMOUNT_VARIANCE_CENTS = "amount_variance_cents"
    PAYMENT_COUNT = "payment_count"
    REFUND_PAYMENT_COUNT = "refund_payment_count"


@dataclass(frozen=True)
class Compared:
    """One measure reconciliation compares per record."""

    measure: Measure
    money: bool = True  # a difference puts |thred - expected| at stake

    @property
    def column(self) -> str:
        return self.measure.value


def flag(measure: Measure) -> Compared:
    """A compared measure that is not money (a state or a reference)."""
    return Compared(measure, money=False)


@dataclass(frozen=True)
class Reconciliation:
    """What reconciliation compares for one entity (all of it documented on Thred's side).

    Checked when declared: every compared measure has a Thred reader, the headline and the
    warehouse-only values name measures that are there, and no key is a plain string.
    """

    columns: tuple[Compared, ...]
    thred: Mapping[Measure, ThredField]  # measure -> its value in one Thred item
    warehouse: WarehouseValues  # the expected records, measures as columns
    headline: Measure | None = None  # the record's money: at stake when it is missing or extra
    # measure -> a warehouse value Thred cannot take (no documented endpoint): noted, counted
    # and named in the check's summary, not a difference in the books
    warehouse_only: Mapping[Measure, Any] = field(default_factory=dict)
    # the list may leave some out (archived customers): read by id those the ledger holds
    unlisted_by_detail: bool = False

    def __post_init__(self) -> None:
        named = [c.measure for c in self.columns] + list(self.thred) + list(self.warehouse_only)
        strays = [m for m in (*named, self.headline) if m is not None and type(m) is not Measure]
        if strays:
            raise TypeError(f"reconciliation measures must be Measure members, got {strays!r}")
        unread = [c.column for c in self.columns if c.measure not in self.thred]
        if unread:
            raise ValueError(f"compared without a Thred reader: {unread}")
        compared = {c.measure for c in self.columns}
        if not set(self.warehouse_only) <= compared:
            raise ValueError(f"warehouse-only values of uncompared measures: {self.warehouse_only}")

    def thred_values(self, item: Item, refs: RefMap) -> dict[str, Any]:
        """One Thred item as the measures' values, keyed by column name."""
        return {measure.value: read(item, refs) for measure, read in self.thred.items()}


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
    party_balance: Measure | None = None  # a per-party balance field on Thred's party item


# --- the declaration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EntitySpec:
    name: str
    label: str  # singular, human: "invoice payment"
    external_prefix: str  # external_id = f"{external_prefix}-{source id}", stable forever
    table: Table
    map_record: EntityMapper
    create_path: str  # relative to /v1/platform/businesses/{business}/ (or partner root)
    group: str
    change_policy: ChangePolicy
    reconcile: Reconciliation
    children: tuple[ChildTable, ...] = ()
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
    # The records ARE the businesses every other record belongs to: their Thred id scopes every
    # other request, and other records wait (deferred) until theirs is in Thred.
    is_business_root: bool = False
    flagged_parents: ParentFlag | None = None

    def __post_init__(self) -> None:
        keys = {child.key for child in self.children}
        stray = [ref for ref in self.refs if ref.child is not None and ref.child not in keys]
        if stray:
            raise ValueError(f"{self.name}: refs on undeclared children {stray}")

    def mapper(self, record: SourceRecord, ctx: MapContext) -> Mapped:
        """The record as Thred's request body; parents resolved through ``refs`` only."""
        return self.map_record(record, ctx, Parents(self.name, self.refs, ctx))

    @property
    def source(self) -> SourceTable:
        """What extraction reads for this entity."""
        return SourceTable(self.name, self.table, self.external_prefix, self.children)

    @property
    def depends_on(self) -> tuple[str, ...]:
        parents = {ref.entity for ref in self.refs}
        if not self.is_business_root:
            parents.add(BUSINESSES)
        return tuple(sorted(parents))

    def external_id(self, source_id: str) -> str:
        return f"{self.external_prefix}-{source_id}"

    @property
    def retry_on_upstream(self) -> bool:
        """Refused records are re-sent when an upstream record changes (entities with refs)."""
        return bool(self.refs or self.retry_after)


# The business root's name: every other record belongs to a business and waits for it in Thred.
BUSINESSES = "businesses"
