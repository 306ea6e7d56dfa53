"""The ledger's table: one row per (entity, source id) recording what Thred has confirmed.

Ledgers created before the ids were widened (VARCHAR 128/255) are widened by
``SyncLedger.create_schema`` on PostgreSQL with the literal statements of ``WIDEN_SQL``;
SQLite does not enforce lengths.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Longest id stored as it is. Thred's external_id is at most 255 characters, prefix included, so
# every id that can be synced fits, with room; (entity, source_id) stays well inside
# PostgreSQL's btree entry limit even in 4-byte UTF-8.
LEDGER_ID_LENGTH = 512
ERROR_CODE_LENGTH = 64
ERROR_MESSAGE_LENGTH = 4000  # longer messages are cut (never cutting the record's full id)
ID_COLUMNS = ("source_id", "business_id", "external_id", "thred_id")
# Widening an older PostgreSQL ledger: one literal statement per column, so no SQL text is
# ever assembled at run time (test_security checks the package for that).
WIDEN_SQL = {
    "source_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN source_id TYPE varchar(512)",
    "business_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN business_id TYPE varchar(512)",
    "external_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN external_id TYPE varchar(512)",
    "thred_id": "ALTER TABLE thred_sync_ledger ALTER COLUMN thred_id TYPE varchar(512)",
}
# Columns added since the first ledgers, added to an older one (both dialects), literally too.
ADD_SQL = {
    "inputs_hash": "ALTER TABLE thred_sync_ledger ADD COLUMN inputs_hash VARCHAR(64)",
    "mapped_amount_cents": "ALTER TABLE thred_sync_ledger ADD COLUMN mapped_amount_cents BIGINT",
}

ledger_table = Table(
    "thred_sync_ledger",
    metadata,
    Column("entity", String(64), primary_key=True),
    Column("source_id", String(LEDGER_ID_LENGTH), primary_key=True),
    Column("business_id", String(LEDGER_ID_LENGTH), nullable=False),
    Column("external_id", String(LEDGER_ID_LENGTH), nullable=False),
    Column("thred_id", String(LEDGER_ID_LENGTH)),
    Column("status", String(16), nullable=False),
    Column("intended_hash", String(64)),  # hash of the payload last attempted
    Column("confirmed_hash", String(64)),  # hash of the payload Thred confirmed
    Column("terminal_done", Boolean, nullable=False, default=False),  # voided / archived
    Column("source_updated_at", DateTime(timezone=True)),  # warehouse version last seen
    Column("confirmed_updated_at", DateTime(timezone=True)),  # warehouse version Thred holds
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_code", String(ERROR_CODE_LENGTH)),
    Column("error_message", Text),
    Column("error_details", Text),  # JSON
    Column("confirmed_body", Text),  # JSON of the payload Thred confirmed, to explain drift
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("status_since", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("synced_at", DateTime(timezone=True)),
    # What the mapper read (row, child rows, parents, the business's reference data, the
    # mapping code), bound to the confirmed payload's hash: while both match, the record
    # would map to what Thred holds, so a no-change run does not map it again.
    Column("inputs_hash", String(64)),
    Column("mapped_amount_cents", BigInteger),  # its money as mapped, for run metadata
)
Index("ix_ledger_entity_status", ledger_table.c.entity, ledger_table.c.status)
Index("ix_ledger_entity_business", ledger_table.c.entity, ledger_table.c.business_id)
