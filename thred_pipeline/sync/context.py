"""What a chunk's mappers may look up: parents' Thred ids, flagged parents, and each
business's Thred id and reference data (tax codes, chart of accounts), read once per run."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select

from thred_pipeline import entities
from thred_pipeline.core.records import SourceRecord, TaxCode
from thred_pipeline.entities import EntitySpec
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.sync.gate import Gate
from thred_pipeline.sync.run import BusinessState, Run
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.errors import ThredAuthError
from thred_pipeline.thred.paths import chart_of_accounts_path, tax_codes_path
from thred_pipeline.warehouse.extract import Warehouse

IN_BATCH = 500  # ids per IN (...) clause


class ContextReader:
    def __init__(self, warehouse: Warehouse, ledger: SyncLedger, concurrency: int) -> None:
        self.warehouse = warehouse
        self.ledger = ledger
        self.concurrency = concurrency

    def parent_thred_ids(
        self, spec: EntitySpec, records: Sequence[SourceRecord]
    ) -> dict[tuple[str, str], str]:
        """(entity, source id) -> Thred id of every parent the records reference."""
        wanted: dict[str, set[str]] = defaultdict(set)
        root = entities.business_root().name
        for record in records:
            if not spec.is_business_root:
                wanted[root].add(record.business_id)
            for ref in spec.refs:
                rows = record.children.get(ref.child, []) if ref.child else [record.row]
                for row in rows:
                    value = row.get(ref.column)
                    if value not in (None, ""):
                        wanted[ref.entity].add(str(value))
        found: dict[tuple[str, str], str] = {}
        for entity, ids in wanted.items():
            for source_id, thred_id in self.ledger.thred_ids(entity, ids).items():
                found[(entity, source_id)] = thred_id
        return found

    def flagged_parents(self, spec: EntitySpec, records: Sequence[SourceRecord]) -> frozenset[str]:
        """Parents of the records whose flag is set in the warehouse (``spec.flagged_parents``:
        invoices read which of their customers are tax-exempt)."""
        declared = spec.flagged_parents
        if declared is None:
            return frozenset()
        ids = sorted({str(r.row[declared.column]) for r in records if r.row.get(declared.column)})
        if not ids:
            return frozenset()
        t = declared.table
        found: set[str] = set()
        with self.warehouse.engine.connect() as conn:
            for start in range(0, len(ids), IN_BATCH):
                rows = conn.execute(
                    select(t.c.id).where(
                        t.c.id.in_(ids[start : start + IN_BATCH]), t.c[declared.flag].is_(True)
                    )
                )
                found.update(str(r.id) for r in rows)
        return frozenset(found)

    async def business_state(self, run: Run, business_id: str) -> BusinessState:
        """The business's state for this run, with Thred's reference data when the entity's
        mapper needs it (credentials refused: the business is paused for the run)."""
        state = run.businesses.get(business_id)
        if state is None:
            state = self.new_state(business_id, not run.spec.is_business_root)
            state.semaphore = self._gate(run, state)
            run.businesses[business_id] = state
        if (
            run.spec.reference_data
            and state.thred_id
            and state.tax_codes is None
            and not state.paused
        ):
            try:
                codes, accounts = await asyncio.gather(
                    _tax_codes(run.client, state.thred_id),
                    _account_ids(run.client, state.thred_id),
                )
                state.tax_codes, state.account_ids = codes, accounts
            except ThredAuthError as exc:
                state.paused = f"auth refused: {exc}"
        return state

    def _gate(self, run: Run, state: BusinessState) -> Gate:
        """At most ``concurrency`` in flight, fewer while the business's governor window
        (its Thred token scope's) is smaller."""
        governor = run.client.governor
        return Gate(self.concurrency, lambda: governor.window(state.thred_id))

    def new_state(self, business_id: str, with_thred_id: bool) -> BusinessState:
        state = BusinessState(business_id)
        row = self.warehouse.business(business_id)
        currency = row.get("base_currency") if row else None
        state.base_currency = currency if isinstance(currency, str) else ""
        if with_thred_id:
            state.thred_id = self.business_thred_id(business_id)
        return state

    def business_thred_id(self, business_id: str) -> str | None:
        return self.ledger.thred_ids(entities.business_root().name, [business_id]).get(business_id)


async def _tax_codes(client: ThredClient, thred_business_id: str) -> dict[str, TaxCode]:
    response = await client.request(
        "GET", tax_codes_path(thred_business_id), business_id=thred_business_id
    )
    codes = response.body.get("tax_codes", []) if isinstance(response.body, dict) else []
    return {
        str(c["code"]): TaxCode(str(c["code"]), Decimal(str(c["rate"])), bool(c["is_active"]))
        for c in codes
    }


async def _account_ids(client: ThredClient, thred_business_id: str) -> dict[str, str]:
    accounts: dict[str, str] = {}
    path = chart_of_accounts_path(thred_business_id)
    async for account in client.iter_pages(path, business_id=thred_business_id):
        accounts[str(account["code"])] = str(account["id"])
    return accounts
