"""Warehouses for the benchmarks, made with the demo's seed (valid, deterministic data).

B5 needs windows of 100k and 1M invoices: the seed makes a valid base and SQLite copies its
invoices (and their line items) with new ids in one ``INSERT ... SELECT`` each, which takes
seconds where generating them row by row would take minutes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import inspect, text
from thred_devtools.seed import SeedConfig, seed_warehouse

from benchmarks.ledger_loop import sqlite_path
from thred_pipeline.warehouse.db import create_warehouse_engine

# The seed's activity starts on 2026-09-01; this window holds every row it makes.
WINDOW_START = "2026-08-01"
WINDOW_END = "2027-01-01"
WINDOW = (WINDOW_START, WINDOW_END)
AR_ENTITIES = ("businesses", "customers", "invoices", "invoice_payments")
NOTHING_ELSE = {
    "vendors": 4,
    "refunds": 0,
    "refund_payments": 0,
    "payouts": 0,
    "bills": 0,
    "bill_payments": 0,
    "vendor_credits": 0,
}


def seed_ar(url: str, businesses: int, customers: int, invoices: int, payments: int) -> str:
    """Businesses with customers, invoices and payments only (the entities B1-B4 sync)."""
    seed_warehouse(
        url,
        SeedConfig(
            businesses=businesses,
            days=30,
            customers=customers,
            invoices=invoices,
            payments=payments,
            **NOTHING_ELSE,
        ),
    )
    return url


def grow_invoices(url: str, target: int) -> int:
    """Copy the warehouse's invoices (with their lines) until it holds ``target`` of them."""
    if not url.startswith("sqlite"):
        return _grow_postgres(url, target)
    with sqlite3.connect(sqlite_path(url)) as conn:
        base = int(conn.execute("SELECT count(*) FROM invoices").fetchone()[0])
        copies = max(0, -(-target // base) - 1)
        if copies:
            conn.execute(
                "CREATE TEMP TABLE copies AS WITH RECURSIVE n(k) AS "
                "(SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < ?) SELECT k FROM n",
                (copies,),
            )
            invoice_columns = _columns(conn, "invoices")
            conn.execute(
                f"INSERT INTO invoices ({', '.join(invoice_columns)}) "  # noqa: S608
                f"SELECT {_renamed(invoice_columns, {'id', 'invoice_number'}, base)} "
                "FROM invoices, copies"
            )
            line_columns = _columns(conn, "invoice_line_items")
            conn.execute(
                f"INSERT INTO invoice_line_items ({', '.join(line_columns)}) "  # noqa: S608
                f"SELECT {_renamed(line_columns, {'id', 'invoice_id'}, base)} "
                "FROM invoice_line_items, copies"
            )
        conn.execute(
            "DELETE FROM invoices WHERE rowid NOT IN "
            "(SELECT rowid FROM invoices ORDER BY rowid LIMIT ?)",
            (target,),
        )
        conn.execute(
            "DELETE FROM invoice_line_items WHERE invoice_id NOT IN (SELECT id FROM invoices)"
        )
        return int(conn.execute("SELECT count(*) FROM invoices").fetchone()[0])


def _grow_postgres(url: str, target: int) -> int:
    """``grow_invoices`` on PostgreSQL (to check extraction's server-side cursor at scale)."""
    engine = create_warehouse_engine(url)
    try:
        with engine.begin() as conn:
            base = int(conn.execute(text("SELECT count(*) FROM invoices")).scalar_one())
            copies = max(0, -(-target // base) - 1)
            if copies:
                conn.execute(
                    text("CREATE TEMP TABLE copies AS SELECT generate_series(1, :n) AS k"),
                    {"n": copies},
                )
                for table, keyed in (
                    ("invoices", {"id", "invoice_number"}),
                    ("invoice_line_items", {"id", "invoice_id"}),
                ):
                    columns = [c["name"] for c in inspect(conn).get_columns(table)]
                    conn.execute(
                        text(
                            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608
                            f"SELECT {_renamed(columns, keyed, base)} FROM {table}, copies"
                        )
                    )
            conn.execute(
                text(
                    "DELETE FROM invoices WHERE ctid = ANY(ARRAY("
                    "SELECT ctid FROM invoices ORDER BY ctid OFFSET :n))"
                ),
                {"n": target},
            )
            conn.execute(
                text(
                    "DELETE FROM invoice_line_items l WHERE NOT EXISTS "
                    "(SELECT 1 FROM invoices i WHERE i.id = l.invoice_id)"
                )
            )
            count = int(conn.execute(text("SELECT count(*) FROM invoices")).scalar_one())
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return count
    finally:
        engine.dispose()


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _renamed(columns: list[str], keyed: set[str], generation: int) -> str:
    """The select list of a copy: key columns get the generation and copy number appended
    (the generation keeps a second growth from repeating the first one's ids)."""
    suffix = f"'-g{generation}c' || copies.k"
    return ", ".join(f"{c} || {suffix}" if c in keyed else c for c in columns)


def warehouse_file(folder: Path, name: str) -> str:
    return f"sqlite:///{folder / name}.db"
