"""The sync ledger: one row per (entity, source id) recording what Thred has confirmed.

Works on PostgreSQL (production) and SQLite (embedded default) through SQLAlchemy Core. Its
floor is ``core``: the ledger knows records' statuses, not entities, Thred or the engine.

- ``schema``: the table, its column bounds and the PostgreSQL widening statements;
- ``keys``: how any id, code or message becomes storable (so no value fails a write);
- ``rows``: :class:`LedgerRow`, a row as the pipeline reads it;
- ``codes``: the ``error_code`` values the pipeline itself writes;
- ``connect``: the engine from a URL that may hold a password;
- ``reads`` / ``store``: :class:`SyncLedger`, reads and write-ahead writes.
"""

from __future__ import annotations

from thred_pipeline.ledger.codes import LOCAL_CODES, LedgerCode
from thred_pipeline.ledger.connect import create_ledger_engine, ledger_url
from thred_pipeline.ledger.keys import ledger_key
from thred_pipeline.ledger.rows import RETRY_FIRST, LedgerRow
from thred_pipeline.ledger.schema import (
    ERROR_CODE_LENGTH,
    ERROR_MESSAGE_LENGTH,
    ID_COLUMNS,
    LEDGER_ID_LENGTH,
    WIDEN_SQL,
    ledger_table,
    metadata,
)
from thred_pipeline.ledger.store import Intent, SyncLedger

__all__ = [
    "ERROR_CODE_LENGTH",
    "ERROR_MESSAGE_LENGTH",
    "ID_COLUMNS",
    "LEDGER_ID_LENGTH",
    "LOCAL_CODES",
    "RETRY_FIRST",
    "WIDEN_SQL",
    "Intent",
    "LedgerCode",
    "LedgerRow",
    "SyncLedger",
    "create_ledger_engine",
    "ledger_key",
    "ledger_table",
    "ledger_url",
    "metadata",
]
