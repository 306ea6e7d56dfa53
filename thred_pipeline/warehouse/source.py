"""What extraction reads for one entity: its table, its child tables and how its ids are keyed.

Plain data declared beside each entity (``EntitySpec.source``) and handed to ``Warehouse``, so
the warehouse floor never needs to know what an entity is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table


@dataclass(frozen=True)
class ChildTable:
    """Rows of another table that belong to each record (line items, allocations)."""

    key: str  # the record's ``children`` key: "line_items"
    table: Table
    parent_column: str  # the column holding the record's id
    order_by: str = "id"


@dataclass(frozen=True)
class SourceTable:
    """One entity's rows in the warehouse: the records are extracted with their children."""

    name: str  # the entity, as ``SourceRecord.entity``
    table: Table
    external_prefix: str  # external_id = f"{external_prefix}-{id}": checked at extraction
    children: tuple[ChildTable, ...] = ()

    def external_id(self, source_id: str) -> str:
        return f"{self.external_prefix}-{source_id}"
