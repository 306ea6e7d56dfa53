"""Reconciliation: prove that Thred holds what the warehouse says, to the record and the penny.

Every measure compares an *independent* computation from the warehouse (raw rows, not the
payloads we sent) with what Thred reports, so a mapper bug, a duplicate, a lost write or a
value changed inside Thred all show up. Records whose latest warehouse version is not yet
confirmed in Thred (deferred, quarantined, changed after the window) make their customer or
vendor "not comparable" for that run: they are counted and named, never silently compared.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, select

from thred_pipeline.entities import EntitySpec
from thred_pipeline.sync.ledger import LedgerRow, SyncLedger
from thred_pipeline.sync.money import line_net_cents
from thred_pipeline.sync.records import Status, TimeWindow, utc
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.extract import Warehouse

MISMATCH_LIMIT = 50


@dataclass
class CheckOutcome:
    """One reconciliation measure for one entity; ``mismatches`` name the records."""

    entity: str
    measure: str
    passed: bool
    summary: str
    metrics: dict[str, int | float] = field(default_factory=dict)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # context, e.g. why not comparable

    def add(self, mismatch: dict[str, Any]) -> None:
        if len(self.mismatches) < MISMATCH_LIMIT:
            self.mismatches.append(mismatch)


class Reconciler:
    def __init__(
        self,
        warehouse: Warehouse,
        ledger: SyncLedger,
        thred_settings: ThredSettings,
        *,
        client_factory: Callable[[ThredSettings], ThredClient] | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.ledger = ledger
        self.thred_settings = thred_settings
        self._client_factory = client_factory or ThredClient

    def check(self, spec: EntitySpec, measure: str, window: TimeWindow) -> CheckOutcome:
        return self.check_all(spec, window, (measure,))[0]

    def check_all(
        self, spec: EntitySpec, window: TimeWindow, measures: Iterable[str] | None = None
    ) -> list[CheckOutcome]:
        """Every measure of the entity, sharing one client (and its tokens)."""
        wanted = tuple(measures) if measures is not None else supported(spec)
        return asyncio.run(self._check_all(spec, window, wanted))

    async def _check_all(
        self, spec: EntitySpec, window: TimeWindow, measures: tuple[str, ...]
    ) -> list[CheckOutcome]:
        async with self._client_factory(self.thred_settings) as client:
            return [await self._measure(spec, m, window, client) for m in measures]

    async def _measure(
        self, spec: EntitySpec, measure: str, window: TimeWindow, client: ThredClient
    ) -> CheckOutcome:
        if measure == "count":
            return await self._count(spec, window, client)
        if measure in ("customer_balance", "ar_outstanding"):
            return await self._party_balance(spec, measure, AR, client)
        if measure in ("vendor_balance", "ap_outstanding"):
            return await self._party_balance(spec, measure, AP, client)
        raise ValueError(f"unknown reconciliation measure {measure!r} for {spec.name}")

    # --- counts ------------------------------------------------------------------------------

    async def _count(
        self, spec: EntitySpec, window: TimeWindow, client: ThredClient
    ) -> CheckOutcome:
        """Thred holds exactly the records we created, and no warehouse row was left behind."""
        out = CheckOutcome(spec.name, "count", passed=True, summary="")
        ours = _by_business(self.ledger.iter_rows(spec.name))
        thred_total = 0
        ledger_total = 0
        for business_id, thred_business in self._thred_businesses().items():
            created = {r.external_id for r in ours.get(business_id, []) if r.thred_id}
            ledger_total += len(created)
            if spec.partner_scoped:
                listed = await _external_ids(client, "businesses/", None, None)
                actual = len(created & listed)
                if actual != len(created):
                    for ext in sorted(created - listed):
                        out.add(
                            {
                                "business": business_id,
                                "external_id": ext,
                                "problem": "missing in Thred",
                            }
                        )
                thred_total += actual
                continue
            paths = self._list_paths(spec, business_id, thred_business)
            params = dict(spec.list_params) or None
            actual = 0
            for path in paths:
                actual += await client.get_count(path, business_id=thred_business, params=params)
            thred_total += actual
            if actual != len(created):
                listed: set[str] = set()
                for path in paths:
                    listed |= await _external_ids(client, path, thred_business, params)
                for ext in sorted(created - listed):
                    out.add(
                        {"business": business_id, "external_id": ext, "problem": "missing in Thred"}
                    )
                for ext in sorted(listed - created):
                    out.add(
                        {
                            "business": business_id,
                            "external_id": ext,
                            "problem": "in Thred but not created by this pipeline (duplicate?)",
                        }
                    )
                if not (created - listed) and not (listed - created):
                    out.add(
                        {
                            "business": business_id,
                            "problem": "count differs",
                            "expected": len(created),
                            "thred": actual,
                        }
                    )
        lost = self._never_synced(spec, window, {r.source_id for rs in ours.values() for r in rs})
        for source_id, updated_at in lost[:MISMATCH_LIMIT]:
            out.add(
                {
                    "source_id": source_id,
                    "external_id": spec.external_id(source_id),
                    "problem": f"updated {updated_at:%Y-%m-%d %H:%M} but never synced: "
                    "backfill the partitions before this one",
                }
            )
        statuses = self.ledger.status_counts(spec.name)
        out.metrics = {
            "expected_count": ledger_total,
            "thred_count": thred_total,
            "count_diff": thred_total - ledger_total,
            "never_synced": len(lost),
            **{f"ledger_{k}": v for k, v in statuses.items()},
        }
        out.passed = not out.mismatches
        out.summary = (
            f"{thred_total} {spec.label} records in Thred, {ledger_total} created by the sync"
            + (f"; {len(lost)} warehouse rows never synced" if lost else "")
        )
        return out

    def _never_synced(
        self, spec: EntitySpec, window: TimeWindow, known: set[str]
    ) -> list[tuple[str, datetime]]:
        t = spec.table
        bind = window.end
        if self.warehouse.engine.dialect.name == "sqlite":
            bind = bind.replace(tzinfo=None)
        lost: list[tuple[str, datetime]] = []
        with self.warehouse.engine.connect() as conn:
            rows = conn.execution_options(stream_results=True).execute(
                select(t.c.id, t.c.updated_at).where(t.c.updated_at < bind).order_by(t.c.id)
            )
            for row in rows:
                if str(row.id) not in known:
                    lost.append((str(row.id), utc(row.updated_at)))
        return lost

    def _list_paths(self, spec: EntitySpec, business_id: str, thred_business: str) -> list[str]:
        """Where Thred lists the entity; nested lists (refund payments) live under each parent."""
        prefix = f"businesses/{thred_business}/"
        if spec.listed_under is None:
            return [prefix + spec.create_path]
        parent, param = spec.listed_under
        return [
            prefix + spec.create_path.format(**{param: row.thred_id})
            for row in self.ledger.iter_rows(parent, business_id=business_id)
            if row.thred_id
        ]

    def _thred_businesses(self) -> dict[str, str]:
        return {r.source_id: r.thred_id for r in self.ledger.iter_rows("businesses") if r.thred_id}

    # --- balances ----------------------------------------------------------------------------

    async def _party_balance(
        self, spec: EntitySpec, measure: str, side: _Side, client: ThredClient
    ) -> CheckOutcome:
        out = CheckOutcome(spec.name, measure, passed=True, summary="")
        expected, blockers = self._expected_balances(side)
        party_rows = {r.source_id: r for r in self.ledger.iter_rows(side.party)}
        compared = not_comparable = 0
        total_expected = total_thred = 0
        for business_id, thred_business in self._thred_businesses().items():
            if measure == side.aging_measure:
                actual, aging_total = await _aging(client, thred_business, side)
            else:
                actual, aging_total = await _party_outstanding(client, thred_business, side), None
            business_parties = expected.get(business_id, {})
            all_settled = True
            for party_id, want in sorted(business_parties.items()):
                row = party_rows.get(party_id)
                if row is None or row.thred_id is None or blockers.get(party_id):
                    not_comparable += 1
                    all_settled = False
                    continue
                got = actual.get(row.external_id, 0)
                compared += 1
                total_expected += want
                total_thred += got
                if got != want:
                    out.add(
                        {
                            "business": business_id,
                            side.party_label: row.external_id,
                            "expected_cents": want,
                            "thred_cents": got,
                            "diff_cents": got - want,
                        }
                    )
            if aging_total is not None and all_settled:
                want_total = sum(business_parties.values())
                if aging_total != want_total:
                    out.add(
                        {
                            "business": business_id,
                            "measure": "aging total",
                            "expected_cents": want_total,
                            "thred_cents": aging_total,
                            "diff_cents": aging_total - want_total,
                        }
                    )
        out.metrics = {
            "parties_compared": compared,
            "parties_not_comparable": not_comparable,
            "expected_cents": total_expected,
            "thred_cents": total_thred,
            "diff_cents": total_thred - total_expected,
            "mismatches": len(out.mismatches),
        }
        out.passed = not out.mismatches
        out.summary = (
            f"{compared} {side.party_label}s compared, {len(out.mismatches)} mismatched; "
            f"{not_comparable} not comparable yet (records pending, deferred or quarantined)"
        )
        out.metrics["blocked_records"] = sum(len(b) for b in blockers.values())
        out.details = {p: b[:5] for p, b in sorted(blockers.items())[:10] if b}
        return out

    def _expected_balances(
        self, side: _Side
    ) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
        """Outstanding per party from raw warehouse rows, plus why a party is not comparable."""
        documents = self._documents(side)
        doc_ledger = {r.source_id: r for r in self.ledger.iter_rows(side.document)}
        blockers: dict[str, list[str]] = defaultdict(list)
        expected: dict[str, dict[str, int]] = defaultdict(dict)
        doc_party: dict[str, str] = {}
        for doc in documents:
            doc_party[doc.id] = doc.party_id
            expected[doc.business_id].setdefault(doc.party_id, 0)
            state = _in_thred(doc_ledger.get(doc.id), doc.updated_at)
            if state is not True:
                if state is None:
                    blockers[doc.party_id].append(f"{side.document} {doc.id}")
                continue
            if doc.voided:
                continue
            expected[doc.business_id][doc.party_id] += doc.total_cents
        for entity, table, alloc_table, parent_col, doc_col in side.settlements:
            rows = self._settlements(table, alloc_table, parent_col, doc_col)
            ledger_rows = {r.source_id: r for r in self.ledger.iter_rows(entity)}
            for settlement_id, updated_at, doc_id, amount in rows:
                party = doc_party.get(doc_id)
                if party is None:
                    continue
                business = next(b for b, ps in expected.items() if party in ps)
                state = _in_thred(ledger_rows.get(settlement_id), updated_at)
                if state is not True:
                    if state is None:
                        blockers[party].append(f"{entity} {settlement_id}")
                    continue
                expected[business][party] -= amount
        return expected, blockers

    def _documents(self, side: _Side) -> list[_Document]:
        docs: dict[str, _Document] = {}
        d, lines = side.document_table, side.line_table
        with self.warehouse.engine.connect() as conn:
            for row in conn.execute(select(d)).mappings():
                docs[str(row["id"])] = _Document(
                    id=str(row["id"]),
                    business_id=str(row["business_id"]),
                    party_id=str(row[side.party_column]),
                    updated_at=utc(row["updated_at"]),
                    voided=bool(side.void_column and row.get(side.void_column) is not None),
                    total_cents=-int(row.get("additional_discount_cents") or 0),
                )
            for line in conn.execute(select(lines)).mappings():
                doc = docs.get(str(line[side.line_parent]))
                if doc is None:
                    continue
                net = line_net_cents(
                    Decimal(str(line["quantity"])),
                    int(line["unit_price_cents"]),
                    int(line.get("discount_cents") or 0),
                )
                doc.total_cents += net + int(line["tax_amount_cents"] or 0)
        return list(docs.values())

    def _settlements(
        self, table: Table, alloc_table: Table, parent_col: str, doc_col: str
    ) -> list[tuple[str, datetime, str, int]]:
        query = select(
            table.c.id, table.c.updated_at, alloc_table.c[doc_col], alloc_table.c.amount_cents
        ).join(alloc_table, alloc_table.c[parent_col] == table.c.id)
        with self.warehouse.engine.connect() as conn:
            return [(str(r[0]), utc(r[1]), str(r[2]), int(r[3])) for r in conn.execute(query)]


@dataclass
class _Document:
    id: str
    business_id: str
    party_id: str
    updated_at: datetime
    voided: bool
    total_cents: int


@dataclass(frozen=True)
class _Side:
    """AR or AP: which tables make a party's outstanding balance, and where Thred reports it."""

    party: str
    party_label: str
    party_column: str
    document: str
    document_table: Table
    line_table: Table
    line_parent: str
    void_column: str | None
    settlements: tuple[tuple[str, Table, Table, str, str], ...]
    list_path: str
    aging_path: str
    aging_key: str
    aging_measure: str


AR = _Side(
    party="customers",
    party_label="customer",
    party_column="customer_id",
    document="invoices",
    document_table=wh.invoices,
    line_table=wh.invoice_line_items,
    line_parent="invoice_id",
    void_column="voided_at",
    settlements=(
        ("invoice_payments", wh.payments, wh.payment_allocations, "payment_id", "invoice_id"),
    ),
    list_path="customers/",
    aging_path="insights/ar-aging/",
    aging_key="customers",
    aging_measure="ar_outstanding",
)

AP = _Side(
    party="vendors",
    party_label="vendor",
    party_column="vendor_id",
    document="bills",
    document_table=wh.bills,
    line_table=wh.bill_line_items,
    line_parent="bill_id",
    void_column=None,
    settlements=(
        (
            "bill_payments",
            wh.bill_payments,
            wh.bill_payment_allocations,
            "bill_payment_id",
            "bill_id",
        ),
        (
            "vendor_credits",
            wh.vendor_credits,
            wh.vendor_credit_allocations,
            "vendor_credit_id",
            "bill_id",
        ),
    ),
    list_path="vendors/",
    aging_path="insights/ap-aging/",
    aging_key="vendors",
    aging_measure="ap_outstanding",
)


def _confirmed(row: LedgerRow | None, updated_at: datetime) -> bool:
    """Thred holds this exact warehouse version of the record."""
    return (
        row is not None
        and row.status is Status.SYNCED
        and row.confirmed_updated_at is not None
        and row.confirmed_updated_at == updated_at
    )


def _in_thred(row: LedgerRow | None, updated_at: datetime) -> bool | None:
    """True: Thred holds this warehouse version. False: Thred holds nothing of it (never sent,
    deferred, or rejected before creation), so it is absent on both sides. None: unknowable
    (outcome uncertain, or Thred holds an older version) — its party cannot be compared."""
    if _confirmed(row, updated_at):
        return True
    if row is None:
        return False
    if row.thred_id is None and row.status in (Status.DEFERRED, Status.REJECTED):
        return False
    return None


def _by_business(rows: Iterable[LedgerRow]) -> dict[str, list[LedgerRow]]:
    grouped: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in rows:
        grouped[row.business_id].append(row)
    return grouped


async def _external_ids(
    client: ThredClient, path: str, business: str | None, params: dict[str, Any] | None
) -> set[str]:
    found: set[str] = set()
    async for item in client.iter_pages(path, business_id=business, params=params):
        if item.get("external_id"):
            found.add(str(item["external_id"]))
    return found


async def _party_outstanding(client: ThredClient, business: str, side: _Side) -> dict[str, int]:
    balances: dict[str, int] = {}
    key = (
        "outstanding_balance"  # [inferred] documented on customers; the sandbox adds it to vendors
    )
    async for item in client.iter_pages(
        f"businesses/{business}/{side.list_path}", business_id=business
    ):
        balances[str(item.get("external_id"))] = int(item.get(key) or 0)
    return balances


async def _aging(client: ThredClient, business: str, side: _Side) -> tuple[dict[str, int], int]:
    response = await client.request(
        "GET",
        f"businesses/{business}/{side.aging_path}",
        business_id=business,
        params={"group_by": side.party[:-1]},
    )
    body = response.body if isinstance(response.body, dict) else {}
    per_party = {
        str(item.get(f"{side.party[:-1]}_external_id")): int(item.get("total_outstanding_cents", 0))
        for item in body.get(side.aging_key, [])
    }
    return per_party, int(body.get("total_outstanding_cents", 0))


SUPPORTED_MEASURES = (
    "count",
    "customer_balance",
    "ar_outstanding",
    "vendor_balance",
    "ap_outstanding",
)


def supported(spec: EntitySpec) -> tuple[str, ...]:
    """The entity's declared measures that this module implements."""
    return tuple(m for m in spec.measures if m in SUPPORTED_MEASURES)
