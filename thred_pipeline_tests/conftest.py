"""Shared fixtures: real PostgreSQL databases, SQLite files and a running Thred sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from thred_pipeline_tests.pg import pg_database

PG_ADMIN_URL = os.environ.get(
    "THRED_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    if not _postgres_available():
        if os.environ.get("THRED_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {make_url(PG_ADMIN_URL)!r}")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, uniquely named database, dropped afterwards."""
    with pg_database(postgres_admin_url) as url:
        yield url
