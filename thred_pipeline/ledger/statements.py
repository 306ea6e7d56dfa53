"""The ledger's writes as statements built once per shape, bound to many rows at a time.

Building a SQLAlchemy statement costs far more CPU than executing it (issue 8: the ledger was a
third of a sync's CPU, almost all of it statement construction). A sync writes a handful of
shapes thousands of times, so each shape is built once per dialect and its rows are passed as
parameters: one row or a batch (executemany) run through the same compiled statement.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, case, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from thred_pipeline.ledger.schema import ledger_table

ERROR_COLUMNS = ("error_code", "error_message", "error_details")
SUPPORTED = ("postgresql", "sqlite")


@cache
def upsert(dialect: str, copied: tuple[str, ...], *, attempt: bool, keep_since: bool) -> Executable:
    """INSERT a row met for the first time, else copy ``copied`` onto the stored one.

    ``attempt`` counts one more attempt; ``keep_since``: ``status_since`` moves only when the
    status does ("deferred for 3 days" stays true across runs that defer it again).
    """
    if dialect not in SUPPORTED:
        raise ValueError(f"the ledger runs on SQLite or PostgreSQL, not {dialect}")
    t = ledger_table
    stmt = pg_insert(t) if dialect == "postgresql" else sqlite_insert(t)
    new = stmt.excluded
    changes: dict[str, Any] = {name: new[name] for name in (*copied, "status", "updated_at")}
    if attempt:
        changes["attempts"] = t.c.attempts + 1
    changes["status_since"] = (
        case((t.c.status == new.status, t.c.status_since), else_=new.status_since)
        if keep_since
        else new.status_since
    )
    return stmt.on_conflict_do_update(index_elements=[t.c.entity, t.c.source_id], set_=changes)


@cache
def update_row(columns: tuple[str, ...]) -> Executable:
    """UPDATE ``columns`` (bound as ``v_<name>``) of the row keyed ``k_entity``/``k_source_id``;
    ``status_since`` moves only if the status does (SET sees the old row)."""
    t = ledger_table
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in columns}
    at: Any = bindparam("v_at")
    values["updated_at"] = at
    if "status" in columns:
        values["status_since"] = case((t.c.status == values["status"], t.c.status_since), else_=at)
    key = (t.c.entity == bindparam("k_entity"), t.c.source_id == bindparam("k_source_id"))
    return update(t).where(*key).values(values)
