"""The rendered DDL is the contract: applying it gives tables the loader and extractor accept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from thred_devtools.seed import SeedConfig, generate, load

from thred_pipeline.core.records import TimeWindow
from thred_pipeline.entities import ENTITIES
from thred_pipeline.warehouse import schema
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.ddl import render_ddl
from thred_pipeline.warehouse.extract import Warehouse

from .conftest import ENGINES, pg_database


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_ddl_names_every_table_and_index(dialect):
    ddl = render_ddl(dialect)
    for table in schema.metadata.tables.values():
        assert f"CREATE TABLE IF NOT EXISTS {table.name} (" in ddl
        for column in table.columns:
            assert f"\n    {column.name} " in ddl
        for index in table.indexes:
            assert f"CREATE INDEX IF NOT EXISTS {index.name} ON {table.name}" in ddl
    assert "\t" not in ddl and " \n" not in ddl
    if dialect == "postgresql":
        assert "TIMESTAMP WITH TIME ZONE" in ddl and "NUMERIC(18, 4)" in ddl


def test_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="postgresql, sqlite"):
        render_ddl("oracle")


def _statements(ddl: str) -> list[str]:
    body = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


@pytest.mark.parametrize("engine_name", ENGINES)
def test_applied_ddl_accepts_the_seed_and_extracts(engine_name, request, tmp_path):
    def check(url: str, dialect: str) -> None:
        engine = create_warehouse_engine(url)
        try:
            with engine.begin() as conn:
                for _ in range(2):  # IF NOT EXISTS: re-applying is harmless
                    for statement in _statements(render_ddl(dialect)):
                        conn.exec_driver_sql(statement)
            inspector = inspect(engine)
            assert set(inspector.get_table_names()) == set(schema.metadata.tables)
            for table in schema.metadata.tables.values():
                assert [c["name"] for c in inspector.get_columns(table.name)] == [
                    c.name for c in table.columns
                ]
            config = SeedConfig(businesses=1, invoices=20, payments=10, bills=8)
            data = generate(config)
            load(engine, data, replace=False)
            warehouse = Warehouse(engine)
            start = datetime.combine(config.start, datetime.min.time(), UTC)
            window = TimeWindow(start, start + timedelta(days=config.days))
            for spec in ENTITIES:
                got = [r for chunk in warehouse.iter_changed(spec.source, window) for r in chunk]
                assert len(got) == len(data[spec.table.name]), spec.name
        finally:
            engine.dispose()

    if engine_name == "sqlite":
        check(f"sqlite:///{tmp_path / 'ddl.db'}", "sqlite")
    else:
        with pg_database(request.getfixturevalue("postgres_admin_url"), "thred_wh_ddl") as url:
            check(url, "postgresql")
