"""Engine factory: SQLite set-up, PostgreSQL driver pinning, and URLs that never leak passwords."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr
from sqlalchemy import inspect, text

from thred_pipeline.warehouse import schema
from thred_pipeline.warehouse.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    create_schema,
    create_warehouse_engine,
    drop_schema,
    safe_url,
)
from thred_pipeline.warehouse.extract import Warehouse

SECRET = "s3cret-Pa55"


def test_sqlite_creates_its_folder_and_uses_wal(tmp_path):
    path = tmp_path / "a" / "b" / "warehouse.db"
    engine = create_warehouse_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
        assert path.parent.is_dir()
    finally:
        engine.dispose()


def test_schema_create_is_idempotent_and_drop_removes_it(tmp_path):
    engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(engine)
    create_schema(engine)
    assert set(inspect(engine).get_table_names()) == set(schema.metadata.tables)
    drop_schema(engine)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


def test_postgresql_urls_are_pinned_to_psycopg2():
    engine = create_warehouse_engine(f"postgresql://reader:{SECRET}@127.0.0.1:5432/wh")
    try:
        assert engine.dialect.driver == "psycopg2"
        assert SECRET not in repr(engine)
        assert SECRET not in safe_url(engine)
        assert SECRET not in repr(Warehouse(engine))
    finally:
        engine.dispose()


def test_secret_str_urls_are_accepted(tmp_path):
    engine = create_warehouse_engine(SecretStr(f"sqlite:///{tmp_path / 'w.db'}"))
    assert engine.dialect.name == "sqlite"
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        f"this is not a url {SECRET}",
        f"mysql+pymysql://user:{SECRET}@127.0.0.1/db",
    ],
)
def test_errors_do_not_echo_the_url(url):
    with pytest.raises(ValueError) as raised:
        create_warehouse_engine(url)
    assert SECRET not in str(raised.value)
    assert raised.value.__cause__ is None


def test_logs_never_carry_the_password(caplog):
    caplog.set_level(logging.DEBUG, logger="thred_pipeline")
    engine = create_warehouse_engine(f"postgresql+psycopg2://u:{SECRET}@127.0.0.1:5432/wh")
    engine.dispose()
    assert "***" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.postgres
def test_postgresql_sessions_run_in_utc(pg_scratch_url):
    engine = create_warehouse_engine(pg_scratch_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW timezone")).scalar() == "UTC"
    finally:
        engine.dispose()
