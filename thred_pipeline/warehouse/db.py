"""Warehouse connections: one place that knows how SQLite and PostgreSQL must be configured.

The pipeline only reads the warehouse, but the same engine factory serves the demo's seed
loader, so SQLite is set up for a reader and a writer at once (WAL, busy timeout) and with
real ``BEGIN`` statements, so that one extraction sees one snapshot even across the separate
child queries it issues per chunk. PostgreSQL sessions run in UTC so that a warehouse that uses
``timestamp without time zone`` for UTC values compares correctly with aware bind parameters.

URLs may carry a password: it is never logged, and errors about malformed URLs do not echo the
value.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError

from thred_pipeline.warehouse.schema import metadata

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "create_schema",
    "create_warehouse_engine",
    "drop_schema",
    "is_postgresql",
    "is_sqlite",
    "parse_url",
    "safe_url",
]

logger = logging.getLogger("thred_pipeline.warehouse")

# A loader or a second reader may hold the write lock briefly; wait rather than fail.
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_CONNECT_TIMEOUT_S = 10


def parse_url(url: str | URL | SecretStr) -> URL:
    """Parse a SQLAlchemy URL without ever putting its text (and password) in an exception."""
    if isinstance(url, URL):
        return url
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    try:
        return make_url(raw)
    except (ArgumentError, ValueError):  # a bad port is a ValueError
        raise ValueError(
            "the warehouse URL is not a valid SQLAlchemy URL (value hidden); expected e.g. "
            "sqlite:///path/warehouse.db or postgresql+psycopg2://user:***@host:5432/db"
        ) from None


def safe_url(url: URL | Engine) -> str:
    """The URL as text for logs and messages, password masked."""
    target = url.url if isinstance(url, Engine) else url
    return target.render_as_string(hide_password=True)


def create_warehouse_engine(url: str | URL | SecretStr, *, echo: bool = False) -> Engine:
    """An Engine for a SQLite file or a PostgreSQL database (psycopg2), configured for extraction.

    ``postgresql://`` URLs are pinned to the psycopg2 driver (SQLAlchemy 2.1 no longer defaults
    to it). Other backends are refused: the extractor's timestamp handling is only tested on
    these two.
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(parsed, echo=echo)
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg2")
        engine = create_engine(
            parsed,
            echo=echo,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": _PG_CONNECT_TIMEOUT_S,
                "application_name": "thred-pipeline",
                "options": "-c timezone=UTC",
            },
        )
    else:
        raise ValueError(
            f"unsupported warehouse backend {backend!r}: use sqlite:/// or postgresql+psycopg2://"
        )
    logger.debug("warehouse engine for %s", safe_url(engine))
    return engine


def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (pysqlite's own is lazy and skips SELECTs),
        # so that the "begin" hook below opens a real snapshot-holding transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def create_schema(engine: Engine) -> None:
    """Create every contract table and index that does not exist yet (idempotent)."""
    metadata.create_all(engine, checkfirst=True)


def drop_schema(engine: Engine) -> None:
    """Drop every contract table (demo and tests only; a production warehouse is never ours)."""
    metadata.drop_all(engine, checkfirst=True)
