"""Opening the ledger's database from a URL that may hold a password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError


def ledger_url(url: str | URL) -> URL:
    """The ledger URL, parsed without echoing it (it may hold a password); ``postgresql://``
    and ``postgres://`` are pinned to psycopg2, the driver that is installed."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):  # a bad port is a ValueError
        raise ValueError(
            "THRED_LEDGER_URL is not a valid SQLAlchemy URL (value hidden); expected e.g. "
            "sqlite:///path/ledger.db or postgresql://user:***@host:5432/db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def create_ledger_engine(url: str | URL) -> Engine:
    """An engine for the ledger; SQLite gets WAL and a busy timeout so readers never block."""
    parsed = ledger_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine
