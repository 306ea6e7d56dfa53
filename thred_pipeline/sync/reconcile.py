"""Reconciliation: prove that Thred holds what the warehouse says, to the record and the penny.

Every measure compares an *independent* computation from the warehouse (raw rows, not the
payloads we sent) with what Thred reports, so a mapper bug, a duplicate, a lost write or a
value changed inside Thred all show up. Only records Thred holds at their latest warehouse
version count. A record Thred holds nothing of (never sent, deferred or rejected before its
creation) is absent on both sides and left out; one whose state is unknowable (outcome
uncertain, or Thred holds an older version: changed after the window, drift, a rejected
update) makes what depends on it "not comparable" for that run: counted and named, never
silently compared. A record's version is the latest ``updated_at`` of its row and its child
rows (lines, allocations, payout items), the same version the engine confirms, so a platform
that edits a line without bumping the parent is not mistaken for a Thred-side difference.

Measures (``SUPPORTED_MEASURES``; the registry says which entity runs which):

- ``count``: Thred holds exactly the records the sync created; no warehouse row was skipped.
- ``customer_balance`` / ``ar_outstanding``, ``vendor_balance`` / ``ap_outstanding``: each
  party's open balance (documents minus allocated settlements), against the party list and
  the aging report.
- ``payments_total``: per payment, total, allocated, unallocated (and the fee for invoice
  payments).
- ``refund_liability``: per refund, refunded, paid out and remaining (Σ refunds - Σ refund
  payments, the liability Thred carries), with the per-business total in the metrics.
- ``payout_totals``: per payout, gross payments, refunds, fee, paid out, expected net and
  variance, and how many payments and refund payments it settles.
- ``vendor_credit_applied``: per vendor credit, total, applied and unapplied.

Each money measure reads Thred once per business (one list pass) and the warehouse with one
query per table.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, func, select

from thred_pipeline import entities
from thred_pipeline.entities import EntitySpec
from thred_pipeline.sync.ledger import LedgerRow, SyncLedger
from thred_pipeline.sync.money import line_net_cents
from thred_pipeline.sync.records import Status, TimeWindow, utc
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.errors import ThredAuthError
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.extract import Warehouse, lenient_columns

MISMATCH_LIMIT = 50
DETAIL_LIMIT = 10  # not-comparable records listed in ``CheckOutcome.details``


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
        per_record = _PER_RECORD.get((measure, spec.name))
        if per_record is not None:
            return await self._per_record(spec, measure, per_record, client)
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
        partner_listed: set[str] | None = None
        unreadable: dict[str, str] = {}
        for business_id, thred_business in self._thred_businesses().items():
            created = {r.external_id for r in ours.get(business_id, []) if r.thred_id}
            if spec.partner_scoped:
                if partner_listed is None:
                    partner_listed = await _external_ids(client, spec.create_path, None, None)
                actual = len(created & partner_listed)
                for ext in sorted(created - partner_listed):
                    out.add(
                        {"business": business_id, "external_id": ext, "problem": "missing in Thred"}
                    )
                ledger_total += len(created)
                thred_total += actual
                continue
            paths = self._list_paths(spec, business_id, thred_business)
            params = dict(spec.list_params) or None
            listed: set[str] | None = None
            try:
                actual = 0
                for path in paths:
                    actual += await client.get_count(
                        path, business_id=thred_business, params=params
                    )
                if actual != len(created):
                    listed = set()
                    for path in paths:
                        listed |= await _external_ids(client, path, thred_business, params)
            except ThredAuthError as exc:
                unreadable[business_id] = _refused(exc)
                continue
            ledger_total += len(created)
            thred_total += actual
            if listed is not None:
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
        _note_unreadable(out, unreadable)
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

    # --- versions ----------------------------------------------------------------------------

    def _versions(self, spec: EntitySpec) -> dict[str, datetime]:
        """Each record's latest warehouse version: its own updated_at or a child row's."""
        t = spec.table
        with self.warehouse.engine.connect() as conn:
            versions = {
                str(r.id): utc(r.updated_at) for r in conn.execute(select(t.c.id, t.c.updated_at))
            }
            for child in spec.children:
                c = child.table
                parent = c.c[child.parent_column]
                query = select(parent, func.max(c.c.updated_at)).group_by(parent)
                for parent_id, latest in conn.execute(query):
                    key = str(parent_id)
                    if key in versions and latest is not None:
                        versions[key] = max(versions[key], utc(latest))
        return versions

    def _presence(self, entity: str) -> dict[str, bool | None]:
        """Every warehouse record of the entity: in Thred at its latest version (True), absent
        on both sides (False), or unknowable (None) — see ``_in_thred``."""
        rows = {r.source_id: r for r in self.ledger.iter_rows(entity)}
        versions = self._versions(entities.get(entity))
        return {i: _in_thred(rows.get(i), version) for i, version in versions.items()}

    # --- balances ----------------------------------------------------------------------------

    async def _party_balance(
        self, spec: EntitySpec, measure: str, side: _Side, client: ThredClient
    ) -> CheckOutcome:
        """Every party Thred holds for us, documents or not: expected outstanding vs Thred's."""
        out = CheckOutcome(spec.name, measure, passed=True, summary="")
        expected, blockers = self._expected_balances(side)
        parties = _by_business(r for r in self.ledger.iter_rows(side.party) if r.thred_id)
        compared = not_comparable = 0
        total_expected = total_thred = 0
        unreadable: dict[str, str] = {}
        for business_id, thred_business in self._thred_businesses().items():
            business_parties = expected.get(business_id, {})
            rows = {r.source_id: r for r in parties.get(business_id, [])}
            if not rows and not business_parties:
                continue
            try:
                if measure == side.aging_measure:
                    actual, aging_total = await _aging(client, thred_business, side)
                else:
                    actual = await _party_outstanding(client, thred_business, side)
                    aging_total = None
            except ThredAuthError as exc:
                unreadable[business_id] = _refused(exc)
                not_comparable += len(set(rows) | set(business_parties))
                continue
            all_settled = True
            for party_id in sorted(set(rows) | set(business_parties)):
                row = rows.get(party_id)
                if row is None or blockers.get(party_id):
                    not_comparable += 1
                    all_settled = False
                    continue
                want = business_parties.get(party_id, 0)
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
            "blocked_records": sum(len(b) for b in blockers.values()),
        }
        out.passed = not out.mismatches
        out.summary = (
            f"{compared} {side.party_label}s compared, {len(out.mismatches)} mismatched; "
            f"{not_comparable} not comparable yet (records pending, deferred or quarantined)"
        )
        out.details = _blocked_details(blockers)
        _note_unreadable(out, unreadable)
        return out

    def _expected_balances(
        self, side: _Side
    ) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
        """Outstanding per party from raw warehouse rows, plus why a party is not comparable."""
        documents = self._documents(side)
        doc_state = self._presence(side.document)
        blockers: dict[str, list[str]] = defaultdict(list)
        expected: dict[str, dict[str, int]] = defaultdict(dict)
        doc_party: dict[str, tuple[str, str]] = {}
        for doc in documents:
            doc_party[doc.id] = (doc.business_id, doc.party_id)
            expected[doc.business_id].setdefault(doc.party_id, 0)
            state = doc_state.get(doc.id, False)
            if state is None or (state and doc.unreadable):
                blockers[doc.party_id].append(f"{side.document} {doc.id}")
            if state is not True or doc.voided:
                continue
            expected[doc.business_id][doc.party_id] += doc.total_cents
        for entity, alloc_table, parent_col, doc_col in side.settlements:
            settled = self._presence(entity)
            for a in self._rows(alloc_table, parent_col, doc_col, "amount_cents"):
                owner = doc_party.get(str(a[doc_col]))
                if owner is None:
                    continue
                business, party = owner
                settlement_id = str(a[parent_col])
                state = settled.get(settlement_id, False)
                if state is None:
                    blockers[party].append(f"{entity} {settlement_id}")
                if state is True:
                    expected[business][party] -= int(a["amount_cents"])
        return expected, blockers

    def _documents(self, side: _Side) -> list[_Document]:
        docs: dict[str, _Document] = {}
        d, lines = side.document_table, side.line_table
        with self.warehouse.engine.connect() as conn:
            engine = self.warehouse.engine
            for row in conn.execute(select(*lenient_columns(engine, d))).mappings():
                docs[str(row["id"])] = _Document(
                    id=str(row["id"]),
                    business_id=str(row["business_id"]),
                    party_id=str(row[side.party_column]),
                    voided=bool(side.void_column and row.get(side.void_column) is not None),
                    total_cents=-int(row.get("additional_discount_cents") or 0),
                )
            for line in conn.execute(select(*lenient_columns(engine, lines))).mappings():
                doc = docs.get(str(line[side.line_parent]))
                if doc is None:
                    continue
                try:
                    net = line_net_cents(
                        Decimal(str(line["quantity"])),
                        int(line["unit_price_cents"]),
                        int(line.get("discount_cents") or 0),
                    )
                    doc.total_cents += net + int(line["tax_amount_cents"] or 0)
                except (ArithmeticError, TypeError, ValueError):
                    doc.unreadable = True
        return list(docs.values())

    # --- per-record money --------------------------------------------------------------------

    async def _per_record(
        self, spec: EntitySpec, measure: str, how: _RecordMeasure, client: ThredClient
    ) -> CheckOutcome:
        """Each comparable record's amounts against the same record in Thred's list."""
        out = CheckOutcome(spec.name, measure, passed=True, summary="")
        expectation = how.expect(self, spec)
        expected, blockers = expectation.values, expectation.blockers
        ledger_rows = {r.source_id: r for r in self.ledger.iter_rows(spec.name)}
        compared = not_comparable = 0
        total_expected = total_thred = 0
        unreadable: dict[str, str] = {}
        for business_id, thred_business in self._thred_businesses().items():
            wanted = expected.get(business_id, {})
            if not wanted:
                continue
            listed: dict[str, Mapping[str, Any]] = {}
            try:
                async for item in client.iter_pages(
                    f"businesses/{thred_business}/{spec.create_path}", business_id=thred_business
                ):
                    if item.get("external_id"):
                        listed[str(item["external_id"])] = item
            except ThredAuthError as exc:
                unreadable[business_id] = _refused(exc)
                not_comparable += len(wanted)
                continue
            for source_id, values in sorted(wanted.items()):
                row = ledger_rows.get(source_id)
                if row is None or row.thred_id is None or blockers.get(source_id):
                    not_comparable += 1
                    continue
                found = listed.get(row.external_id)
                if found is None:
                    out.add(
                        {
                            "business": business_id,
                            how.label: row.external_id,
                            "problem": "missing in Thred",
                        }
                    )
                    continue
                compared += 1
                for f in how.fields:
                    want = values[f.name]
                    got = f.read(found)
                    if f.name == how.headline:
                        total_expected += want
                        total_thred += got or 0
                    if got != want:
                        out.add(
                            {
                                "business": business_id,
                                how.label: row.external_id,
                                "field": f.name,
                                "expected": want,
                                "thred": got,
                                "diff": None if got is None else got - want,
                            }
                        )
        out.metrics = {
            "records_compared": compared,
            "records_not_comparable": not_comparable,
            "expected_cents": total_expected,
            "thred_cents": total_thred,
            "diff_cents": total_thred - total_expected,
            "mismatches": len(out.mismatches),
            "blocked_records": sum(len(b) for b in blockers.values()),
        }
        out.passed = not out.mismatches
        out.summary = (
            f"{compared} {how.label}s compared ({how.headline}: {total_expected} expected, "
            f"{total_thred} in Thred), {len(out.mismatches)} mismatches; "
            f"{not_comparable} not comparable yet (records pending, deferred or quarantined)"
        )
        out.details = _blocked_details(blockers)
        _note_unreadable(out, unreadable)
        return out

    def _rows(self, table: Table, *columns: str) -> list[dict[str, Any]]:
        query = select(*(table.c[c] for c in columns))
        with self.warehouse.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def _expect_payments(self, spec: EntitySpec) -> _Expectation:
        """Per payment: total, allocated, unallocated (and fee) from its row and allocations."""
        invoice_side = spec.name == "invoice_payments"
        table, alloc, parent = (
            (wh.payments, wh.payment_allocations, "payment_id")
            if invoice_side
            else (wh.bill_payments, wh.bill_payment_allocations, "bill_payment_id")
        )
        total_key = "total_amount_cents" if invoice_side else "amount_cents"
        state = self._presence(spec.name)
        allocated: dict[str, int] = defaultdict(int)
        for a in self._rows(alloc, parent, "amount_cents"):
            allocated[str(a[parent])] += int(a["amount_cents"])
        columns: tuple[str, ...] = ("id", "business_id", "amount_cents")
        if invoice_side:
            columns = (*columns, "processing_fee_cents")
        out = _Expectation()
        for p in self._rows(table, *columns):
            pid, total = str(p["id"]), int(p["amount_cents"])
            values = {
                total_key: total,
                "allocated_amount_cents": allocated[pid],
                "unallocated_amount_cents": total - allocated[pid],
            }
            if invoice_side:
                values["processing_fee_cents"] = int(p["processing_fee_cents"] or 0)
            out.put(str(p["business_id"]), pid, values, state.get(pid, False), spec.name)
        return out

    def _expect_refunds(self, spec: EntitySpec) -> _Expectation:
        """Per refund: refunded, paid back, remaining — the refund liability Thred carries."""
        state = self._presence("refunds")
        paid_state = self._presence("refund_payments")
        paid: dict[str, int] = defaultdict(int)
        waiting: dict[str, list[str]] = defaultdict(list)
        for rp in self._rows(wh.refund_payments, "id", "refund_id", "amount_cents"):
            refund_id, rp_id = str(rp["refund_id"]), str(rp["id"])
            rp_state = paid_state.get(rp_id, False)
            if rp_state is None:
                waiting[refund_id].append(f"refund_payments {rp_id}")
            elif rp_state:
                paid[refund_id] += int(rp["amount_cents"])
        out = _Expectation()
        for r in self._rows(wh.refunds, "id", "business_id", "amount_cents"):
            rid, amount = str(r["id"]), int(r["amount_cents"])
            values = {
                "refunded_amount": amount,
                "paid_amount_cents": paid[rid],
                "remaining_amount_cents": amount - paid[rid],
            }
            out.put(str(r["business_id"]), rid, values, state.get(rid, False), "refunds")
            out.block(rid, waiting.get(rid, []))
        return out

    def _expect_payouts(self, spec: EntitySpec) -> _Expectation:
        """Per payout: what it settles (gross, refunds) and what should have reached the bank."""
        state = self._presence("payouts")
        member_state = {
            "invoice_payments": self._presence("invoice_payments"),
            "refund_payments": self._presence("refund_payments"),
        }
        amount = {
            "invoice_payments": {
                str(p["id"]): int(p["amount_cents"])
                for p in self._rows(wh.payments, "id", "amount_cents")
            },
            "refund_payments": {
                str(p["id"]): int(p["amount_cents"])
                for p in self._rows(wh.refund_payments, "id", "amount_cents")
            },
        }
        members: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for item in self._rows(wh.payout_items, "payout_id", "payment_id", "refund_payment_id"):
            payout = members[str(item["payout_id"])]
            if item["payment_id"]:
                payout.append(("invoice_payments", str(item["payment_id"])))
            if item["refund_payment_id"]:
                payout.append(("refund_payments", str(item["refund_payment_id"])))
        out = _Expectation()
        columns = ("id", "business_id", "paid_out_amount_cents", "fee_cents")
        for p in self._rows(wh.payouts, *columns):
            pid = str(p["id"])
            settled = {"invoice_payments": [0, 0], "refund_payments": [0, 0]}  # [cents, count]
            waiting: list[str] = []
            for entity, member in members.get(pid, []):
                found = member_state[entity].get(member, False)
                if found is None:
                    waiting.append(f"{entity} {member}")
                elif found:  # Thred lists only members it holds
                    settled[entity][0] += amount[entity].get(member, 0)
                    settled[entity][1] += 1
            (gross, payments), (refunds, refund_payments) = (
                settled["invoice_payments"],
                settled["refund_payments"],
            )
            paid_out, fee = int(p["paid_out_amount_cents"]), int(p["fee_cents"] or 0)
            expected_net = gross - refunds - fee  # no additional refunds are synced
            values = {
                "paid_out_amount_cents": paid_out,
                "fee_cents": fee,
                "gross_payments_amount_cents": gross,
                "total_refunds_amount_cents": refunds,
                "additional_refunds_amount_cents": 0,
                "expected_net_amount_cents": expected_net,
                "amount_variance_cents": paid_out - expected_net,
                "payment_count": payments,
                "refund_payment_count": refund_payments,
            }
            out.put(str(p["business_id"]), pid, values, state.get(pid, False), "payouts")
            out.block(pid, waiting)
        return out

    def _expect_vendor_credits(self, spec: EntitySpec) -> _Expectation:
        """Per vendor credit: its total, what is applied to bills, and what is left."""
        state = self._presence("vendor_credits")
        totals: dict[str, int] = defaultdict(int)
        for line in self._rows(wh.vendor_credit_lines, "vendor_credit_id", "amount_cents"):
            totals[str(line["vendor_credit_id"])] += int(line["amount_cents"])
        applied: dict[str, int] = defaultdict(int)
        for a in self._rows(wh.vendor_credit_allocations, "vendor_credit_id", "amount_cents"):
            applied[str(a["vendor_credit_id"])] += int(a["amount_cents"])
        out = _Expectation()
        for c in self._rows(wh.vendor_credits, "id", "business_id"):
            cid = str(c["id"])
            values = {
                "total_amount": totals[cid],
                "applied_amount": applied[cid],
                "unapplied_amount": totals[cid] - applied[cid],
            }
            out.put(str(c["business_id"]), cid, values, state.get(cid, False), "vendor_credits")
        return out


@dataclass
class _Expectation:
    """Expected amounts of the records Thred should hold, and why others cannot be compared."""

    values: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )  # business -> source id -> field -> amount
    blockers: dict[str, list[str]] = field(default_factory=dict)  # source id -> records

    def put(
        self,
        business_id: str,
        source_id: str,
        values: dict[str, int],
        state: bool | None,
        entity: str,
    ) -> None:
        if state is False:  # absent on both sides: nothing to compare
            return
        self.values[business_id][source_id] = values
        if state is None:
            self.block(source_id, [f"{entity} {source_id}"])

    def block(self, source_id: str, records: list[str]) -> None:
        if records:
            self.blockers.setdefault(source_id, []).extend(records)


@dataclass(frozen=True)
class _Field:
    """One amount of a record as Thred reports it: the first key present, else derived."""

    name: str
    keys: tuple[str, ...] = ()
    derive: Callable[[Mapping[str, Any]], int | None] | None = None

    def read(self, item: Mapping[str, Any]) -> int | None:
        for key in self.keys or (self.name,):
            value = _int(item.get(key))
            if value is not None:
                return value
        return self.derive(item) if self.derive is not None else None


@dataclass(frozen=True)
class _RecordMeasure:
    label: str
    headline: str  # the field summed into the metrics
    fields: tuple[_Field, ...]
    expect: Callable[[Reconciler, EntitySpec], _Expectation]


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return None


def _sum_of(key: str, *names: str) -> Callable[[Mapping[str, Any]], int | None]:
    def derive(item: Mapping[str, Any]) -> int | None:
        rows = item.get(key)
        if not isinstance(rows, list):
            return None
        total = 0
        for row in rows:
            value = next((_int(row.get(n)) for n in names if _int(row.get(n)) is not None), None)
            if value is None:
                return None
            total += value
        return total

    return derive


def _difference(minuend: _Field, subtrahend: _Field) -> Callable[[Mapping[str, Any]], int | None]:
    def derive(item: Mapping[str, Any]) -> int | None:
        a, b = minuend.read(item), subtrahend.read(item)
        return None if a is None or b is None else a - b

    return derive


_PAY_TOTAL = _Field("total_amount_cents", ("total_amount_cents", "total_amount"))
_BILL_PAY_TOTAL = _Field("amount_cents", ("amount_cents",))
_ALLOCATED = _Field("allocated_amount_cents", ("allocated_amount_cents", "allocated_amount"))
_REFUNDED = _Field("refunded_amount", ("refunded_amount", "amount_cents"))
_REFUND_PAID = _Field(
    "paid_amount_cents",
    ("paid_amount_cents",),
    _sum_of("refund_payments", "refunded_amount_cents", "refunded_amount"),
)
_CREDIT_TOTAL = _Field("total_amount")
_CREDIT_APPLIED = _Field("applied_amount")

_PER_RECORD: dict[tuple[str, str], _RecordMeasure] = {
    ("payments_total", "invoice_payments"): _RecordMeasure(
        "payment",
        "total_amount_cents",
        (
            _PAY_TOTAL,
            _ALLOCATED,
            _Field(
                "unallocated_amount_cents",
                ("unallocated_amount_cents", "unallocated_amount"),
                _difference(_PAY_TOTAL, _ALLOCATED),
            ),
            _Field("processing_fee_cents", ("processing_fee_cents", "processing_fee")),
        ),
        Reconciler._expect_payments,
    ),
    ("payments_total", "bill_payments"): _RecordMeasure(
        "bill payment",
        "amount_cents",
        (
            _BILL_PAY_TOTAL,
            _ALLOCATED,
            _Field(
                "unallocated_amount_cents",
                ("unallocated_amount_cents",),
                _difference(_BILL_PAY_TOTAL, _ALLOCATED),
            ),
        ),
        Reconciler._expect_payments,
    ),
    ("refund_liability", "refunds"): _RecordMeasure(
        "refund",
        "remaining_amount_cents",
        (
            _REFUNDED,
            _REFUND_PAID,
            _Field(
                "remaining_amount_cents",
                ("remaining_amount_cents",),
                _difference(_REFUNDED, _REFUND_PAID),
            ),
        ),
        Reconciler._expect_refunds,
    ),
    ("payout_totals", "payouts"): _RecordMeasure(
        "payout",
        "amount_variance_cents",
        (
            _Field("paid_out_amount_cents"),
            _Field("fee_cents"),
            _Field("gross_payments_amount_cents"),
            _Field("total_refunds_amount_cents"),
            _Field("additional_refunds_amount_cents"),
            _Field("expected_net_amount_cents"),
            _Field("amount_variance_cents"),
            _Field("payment_count", derive=lambda item: _len(item.get("payments"))),
            _Field("refund_payment_count", derive=lambda item: _len(item.get("refund_payments"))),
        ),
        Reconciler._expect_payouts,
    ),
    ("vendor_credit_applied", "vendor_credits"): _RecordMeasure(
        "vendor credit",
        "unapplied_amount",
        (
            _CREDIT_TOTAL,
            _CREDIT_APPLIED,
            _Field("unapplied_amount", derive=_difference(_CREDIT_TOTAL, _CREDIT_APPLIED)),
        ),
        Reconciler._expect_vendor_credits,
    ),
}


def _len(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


@dataclass
class _Document:
    id: str
    business_id: str
    party_id: str
    voided: bool
    total_cents: int
    unreadable: bool = False  # a line holds text where money or a quantity belongs


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
    settlements: tuple[tuple[str, Table, str, str], ...]  # entity, allocations, parent, doc
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
    settlements=(("invoice_payments", wh.payment_allocations, "payment_id", "invoice_id"),),
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
        ("bill_payments", wh.bill_payment_allocations, "bill_payment_id", "bill_id"),
        ("vendor_credits", wh.vendor_credit_allocations, "vendor_credit_id", "bill_id"),
    ),
    list_path="vendors/",
    aging_path="insights/ap-aging/",
    aging_key="vendors",
    aging_measure="ap_outstanding",
)


def _confirmed(row: LedgerRow | None, version: datetime) -> bool:
    """Thred holds this exact warehouse version of the record."""
    return (
        row is not None
        and row.status is Status.SYNCED
        and row.confirmed_updated_at is not None
        and row.confirmed_updated_at == version
    )


def _in_thred(row: LedgerRow | None, version: datetime) -> bool | None:
    """True: Thred holds this warehouse version. False: Thred holds nothing of it (never sent,
    deferred, or rejected before creation), so it is absent on both sides. None: unknowable
    (outcome uncertain, or Thred holds an older version) — what depends on it is not compared."""
    if _confirmed(row, version):
        return True
    if row is None:
        return False
    if row.thred_id is None and row.status in (Status.DEFERRED, Status.REJECTED):
        return False
    return None


def _refused(exc: ThredAuthError) -> str:
    """One business's credentials refused: report it for that business, never raise.

    The engine pauses only that business; failing every entity's checks instead would block
    the other businesses' downstream syncs. The partner's own credentials refused (no business
    id) stop everything, as they should.
    """
    if exc.business_id is None:
        raise exc
    return f"Thred refused access ({exc.status}, {exc.error_code}): not compared"


def _note_unreadable(out: CheckOutcome, unreadable: Mapping[str, str]) -> None:
    out.metrics["businesses_not_readable"] = len(unreadable)
    if unreadable:
        out.details["businesses_not_readable"] = dict(unreadable)
        out.summary += f"; {len(unreadable)} business(es) not readable (access refused)"


def _blocked_details(blockers: Mapping[str, list[str]]) -> dict[str, Any]:
    """Why records are not comparable: the first few, each with its first blocking records."""
    blocked = [(k, b) for k, b in sorted(blockers.items()) if b]
    return {k: b[:5] for k, b in blocked[:DETAIL_LIMIT]}


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
    "payments_total",
    "refund_liability",
    "payout_totals",
    "vendor_credit_applied",
)


def supported(spec: EntitySpec) -> tuple[str, ...]:
    """The entity's declared measures that this module implements."""
    return tuple(m for m in spec.measures if m in SUPPORTED_MEASURES)
