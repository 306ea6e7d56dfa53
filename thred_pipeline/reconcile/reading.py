"""What both reconcilers read before comparing: the ledger once, and Thred per business.

A business Thred refuses to show is noted (``not_read``) and left out of the comparison —
neither its records nor its balances are then "missing"; the check says it could not look.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from thred_pipeline import entities
from thred_pipeline.entities import EntitySpec
from thred_pipeline.ledger import LedgerRow, SyncLedger
from thred_pipeline.reconcile import thred_side
from thred_pipeline.thred.client import ThredClient
from thred_pipeline.thred.errors import ThredAuthError

T = TypeVar("T")
Pairs = list[tuple[str, Mapping[str, Any]]]  # (warehouse business id, Thred item)
THRED_COLUMNS = ("business_id", "thred_id", "external_id", "source_id")
# The records every other record belongs to.
BUSINESSES = entities.business_root()
IN_BUSINESS = tuple(spec for spec in entities.ENTITIES if not spec.is_business_root)


class LedgerView:
    """The ledger read once: rows per entity and Thred id -> source id maps."""

    def __init__(self, ledger: SyncLedger, specs: Iterable[EntitySpec] = entities.ENTITIES) -> None:
        self.rows: dict[str, dict[str, LedgerRow]] = {}
        self.refs: dict[str, dict[str, str]] = {}
        for spec in specs:
            self._keep(spec.name, {r.source_id: r for r in ledger.iter_rows(spec.name)})

    @classmethod
    def for_window(
        cls, ledger: SyncLedger, spec: EntitySpec, source_ids: Iterable[str]
    ) -> LedgerView:
        """Only the window's rows of ``spec``, beside every row of the businesses and of the
        entities its records refer to (Thred's values name those parents by Thred id): a
        window check reads what its window needs, not the whole ledger."""
        related = {BUSINESSES.name, *(ref.entity for ref in spec.refs)}
        if spec.listed_under is not None:
            related.add(spec.listed_under[0])
        related.discard(spec.name)
        view = cls(ledger, [entities.get(name) for name in sorted(related)])
        view._keep(spec.name, ledger.get_many(spec.name, source_ids))
        return view

    def _keep(self, entity: str, rows: dict[str, LedgerRow]) -> None:
        self.rows[entity] = rows
        self.refs[entity] = {r.thred_id: s for s, r in rows.items() if r.thred_id}

    def thred_business(self, business_id: str) -> str | None:
        row = self.rows[BUSINESSES.name].get(business_id)
        return row.thred_id if row else None


def thred_frame(
    spec: EntitySpec, items: Iterable[tuple[str, Mapping[str, Any]]], ledger: LedgerView
) -> pd.DataFrame:
    """Thred items of one entity as rows with the compared columns; (business, item) pairs."""
    values = spec.reconcile.thred_values
    own = ledger.refs.get(spec.name, {})
    rows = []
    for business_id, item in items:
        thred_id = str(item.get("id")) if item.get("id") else None
        rows.append(
            {
                "business_id": business_id,
                "thred_id": thred_id,
                "external_id": item.get("external_id"),
                "source_id": own.get(thred_id) if thred_id else None,
                **values(item, ledger.refs),
            }
        )
    frame = pd.DataFrame(rows)
    for column in (*THRED_COLUMNS, *(c.column for c in spec.reconcile.columns)):
        if column not in frame.columns:
            frame[column] = None
    return frame.astype(object)


@dataclass
class ThredReader:
    """Reads Thred for a set of businesses; a business Thred refuses is noted, not fatal."""

    client: ThredClient
    ledger: LedgerView
    not_read: dict[str, str]

    async def partner_businesses(self) -> Pairs:
        """The partner's businesses in Thred, each under the warehouse id it maps to (if any)."""
        pairs: Pairs = []
        refs = self.ledger.refs[BUSINESSES.name]
        async for item in self.client.iter_pages(BUSINESSES.create_path):
            thred_id = str(item.get("id"))
            pairs.append((refs.get(thred_id) or f"thred:{thred_id}", item))
        return pairs

    async def items(
        self,
        spec: EntitySpec,
        business_id: str,
        thred_business: str,
        in_scope: set[str] | None = None,
        parents: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Thred's items of one entity; ``in_scope``: the records compared (None: all).

        A nested list is read under ``parents`` (Thred ids) when given, else under every
        parent Thred lists."""
        parent_ids = list(parents or ())
        if spec.listed_under is not None and parents is None:
            parent = entities.get(spec.listed_under[0])
            listed = await thred_side.list_items(self.client, thred_business, parent)
            parent_ids = [str(p["id"]) for p in listed if p.get("id")]
        items = await thred_side.list_items(
            self.client, thred_business, spec, parent_ids=parent_ids
        )
        if spec.reconcile.unlisted_by_detail:
            items += await self._unlisted(spec, business_id, thred_business, items, in_scope)
        return items

    async def _unlisted(
        self,
        spec: EntitySpec,
        business_id: str,
        thred_business: str,
        listed: list[dict[str, Any]],
        in_scope: set[str] | None,
    ) -> list[dict[str, Any]]:
        """Records the list left out (the docs do not say whether it shows archived ones),
        read by the Thred id the ledger holds."""
        seen = {str(i.get("id")) for i in listed}
        found = []
        for source_id, row in self.ledger.rows[spec.name].items():
            if in_scope is not None and source_id not in in_scope:
                continue
            if row.business_id == business_id and row.thred_id and row.thred_id not in seen:
                item = await thred_side.get_detail(self.client, thred_business, spec, row.thred_id)
                if item is not None:
                    found.append(item)
        return found

    async def books(
        self, business_id: str, thred_business: str
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
        """One business's whole books: every entity's items, and each side's aging report."""
        items = {
            spec.name: await self.items(spec, business_id, thred_business) for spec in IN_BUSINESS
        }
        aging = {
            side.name: await thred_side.read_aging(
                self.client, thred_business, side.name, entities.get(side.party).label
            )
            for side in entities.BALANCES
        }
        return items, aging

    async def guarded(self, business_id: str, work: Awaitable[T]) -> T | None:
        """The work's result; ``None`` when Thred refuses this business (noted in not_read)."""
        try:
            return await work
        except ThredAuthError as exc:
            if exc.business_id is None:
                raise
            self.not_read[business_id] = (
                f"Thred refused access to business {business_id} ({exc.status}, "
                f"{exc.error_code}): not compared"
            )
            return None
