"""The contract as SQL text, for platform teams who create the tables with their own tooling.

Rendered from ``schema.metadata`` (never hand-written), so the DDL a platform applies and the
tables the pipeline reads cannot drift apart.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from thred_pipeline.warehouse.schema import metadata

__all__ = ["DIALECTS", "render_ddl"]

DIALECTS: dict[str, type[Dialect]] = {
    "postgresql": postgresql.psycopg2.dialect,
    "sqlite": sqlite.pysqlite.dialect,
}


def render_ddl(dialect: str) -> str:
    """CREATE TABLE / CREATE INDEX statements (IF NOT EXISTS) for ``postgresql`` or ``sqlite``."""
    try:
        target = DIALECTS[dialect.strip().lower()]()
    except KeyError:
        raise ValueError(
            f"unknown dialect {dialect!r}; choose one of: {', '.join(DIALECTS)}"
        ) from None
    statements: list[str] = []
    # Declaration order reads parent-first; there are no foreign keys to order by.
    for table in metadata.tables.values():
        statements.append(str(CreateTable(table, if_not_exists=True).compile(dialect=target)))
        for index in sorted(table.indexes, key=lambda ix: str(ix.name)):
            statements.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=target)))
    header = (
        "-- thred-pipeline warehouse contract "
        f"({dialect.strip().lower()}), generated from thred_pipeline.warehouse.schema.\n"
        "-- Timestamps are UTC. See docs/warehouse-contract.md for every column's meaning.\n"
    )
    return header + "\n" + ";\n\n".join(_tidy(s) for s in statements) + ";\n"


def _tidy(statement: str) -> str:
    lines = statement.strip().splitlines()
    return "\n".join(line.rstrip().replace("\t", "    ") for line in lines)
