"""The expected side of reconciliation: each entity's records as its declaration reads them
from the warehouse (``spec.reconcile.warehouse``), never from the ledger or the payloads sent.

Scope (documented in docs/reliability.md): every record of every entity that belongs to an
*active* business; inactive businesses are reported once, at the business level. A record's
version is its own ``updated_at`` or a child row's, whichever is later.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Engine, Table

from thred_pipeline import entities
from thred_pipeline.entities import EntitySpec
from thred_pipeline.warehouse.source import ChildTable
from thred_pipeline.warehouse.text_reads import TextReads, cents, timestamps


class WarehouseBooks:
    """Reads the warehouse once per reconciliation and hands out one frame per entity."""

    def __init__(self, engine: Engine) -> None:
        self.reads = TextReads(engine)
        self._frames: dict[str, pd.DataFrame] = {}

    def businesses(self) -> pd.DataFrame:
        """Every business, active or not (``active`` column), with its version."""
        return self._records(entities.business_root())

    def active_businesses(self) -> set[str]:
        frame = self.businesses()
        return set(frame.loc[frame["active"], "source_id"])

    def frame(self, spec: EntitySpec) -> pd.DataFrame:
        """Expected values of every record of the entity that belongs to an active business."""
        frame = self._records(spec)
        in_scope = frame["business_id"].isin(self.active_businesses())
        return frame[in_scope].reset_index(drop=True)

    def allocations(self, table: Table, parent: str, document: str) -> pd.DataFrame:
        """Settlement allocations: settlement source id, document source id, amount."""
        rows = self.reads.read(table, (parent, document, "amount_cents"))
        return pd.DataFrame(
            {
                "settlement_id": rows[parent].astype(str),
                "document_id": rows[document].astype(str),
                "amount_cents": cents(rows["amount_cents"]),
            }
        )

    def _records(self, spec: EntitySpec) -> pd.DataFrame:
        if spec.name not in self._frames:
            frame = spec.reconcile.warehouse(self.reads)
            frame["version"] = self._versions(spec.children, frame)
            self._frames[spec.name] = frame.drop(columns=["updated_at"])
        return self._frames[spec.name]

    def _versions(self, children: Iterable[ChildTable], base: pd.DataFrame) -> pd.Series:
        """A record's version: its own updated_at or a child row's, whichever is later."""
        version = timestamps(base["updated_at"])
        version.index = base["source_id"]
        for child in children:
            rows = self.reads.read(child.table, (child.parent_column, "updated_at"))
            if rows.empty:
                continue
            latest = timestamps(rows["updated_at"]).groupby(rows[child.parent_column]).max()
            version = pd.concat([version, latest.reindex(version.index)], axis=1).max(axis=1)
        return version.reset_index(drop=True)
