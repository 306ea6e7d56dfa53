"""B4's anchor: the cheapest honest no-change check a developer would write by hand.

For every record of the window: read its row (and its child rows) from the warehouse, hash
it, and look it up in the ledger by key, one indexed ``SELECT`` per record. No mapping, no
HTTP, nothing written. The sync's no-change night does at least this work, so records/s here
is the bar it should reach. Plain ``sqlite3`` on both sides; the ledger's table is found by
its name (``thred_sync_ledger``) and its key columns (``entity``, ``source_id``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# entity in the ledger -> (table, child table, the child's parent column)
ENTITIES: dict[str, tuple[str, str | None, str | None]] = {
    "businesses": ("businesses", None, None),
    "customers": ("customers", None, None),
    "invoices": ("invoices", "invoice_line_items", "invoice_id"),
    "invoice_payments": ("payments", "payment_allocations", "payment_id"),
}
LEDGER_TABLE = "thred_sync_ledger"


@dataclass(frozen=True)
class LoopRun:
    records: int
    found: int
    wall_s: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"the anchor loop reads SQLite files only, not {url}")
    return Path(url.removeprefix("sqlite:///"))


def _rows(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    cursor = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def check_loop(warehouse_url: str, ledger_url: str) -> LoopRun:
    """Read, hash and look up every record; returns how many were found in the ledger."""
    started = time.perf_counter()
    records = found = unchanged = 0
    with (
        sqlite3.connect(sqlite_path(warehouse_url)) as warehouse,
        sqlite3.connect(sqlite_path(ledger_url)) as ledger,
    ):
        lookup = (
            f"SELECT confirmed_hash FROM {LEDGER_TABLE} "  # noqa: S608 - a constant
            "WHERE entity = ? AND source_id = ?"
        )
        for entity, (table, child_table, parent_column) in ENTITIES.items():
            children: dict[str, list[dict[str, Any]]] = defaultdict(list)
            if child_table and parent_column:
                for child in _rows(warehouse, child_table):
                    children[str(child[parent_column])].append(child)
            for row in _rows(warehouse, table):
                row["children"] = children.get(str(row["id"]), [])
                digest = hashlib.sha256(
                    json.dumps(row, sort_keys=True, default=str).encode()
                ).hexdigest()
                held = ledger.execute(lookup, (entity, str(row["id"]))).fetchone()
                records += 1
                if held is not None:
                    found += 1
                    # The comparison is part of the work measured; its answer is not used
                    # (this hash is not the pipeline's, so every record would look changed).
                    unchanged += held[0] == digest
    return LoopRun(records, found, time.perf_counter() - started)
