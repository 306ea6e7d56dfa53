"""Warehouse fixtures: the default demo data on a SQLite file and on a real PostgreSQL database.

Seeded warehouses are session-scoped (read-only tests share them); tests that write get a blank
schema of their own. Every fixture parametrised over engines runs on SQLite and, marked
``postgres``, on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from thred_devtools.seed import SeedConfig, generate, load

from thred_pipeline.warehouse.db import create_schema, create_warehouse_engine, drop_schema
from thred_pipeline.warehouse.extract import Warehouse
from thred_pipeline_tests.pg import pg_database

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def default_config() -> SeedConfig:
    return SeedConfig()


@pytest.fixture(scope="session")
def default_data(default_config: SeedConfig) -> dict[str, list[dict[str, Any]]]:
    return generate(default_config)


@pytest.fixture(scope="session")
def sqlite_seeded(
    tmp_path_factory: pytest.TempPathFactory, default_data: dict[str, list[dict[str, Any]]]
) -> Iterator[Warehouse]:
    path: Path = tmp_path_factory.mktemp("wh") / "nested" / "warehouse.db"
    engine = create_warehouse_engine(f"sqlite:///{path}")
    load(engine, default_data)
    warehouse = Warehouse(engine)
    yield warehouse
    engine.dispose()


@pytest.fixture(scope="session")
def pg_seeded_url(
    postgres_admin_url: str, default_data: dict[str, list[dict[str, Any]]]
) -> Iterator[str]:
    with pg_database(postgres_admin_url, "thred_wh_seeded") as url:
        engine = create_warehouse_engine(url)
        load(engine, default_data)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def pg_seeded(pg_seeded_url: str) -> Iterator[Warehouse]:
    warehouse = Warehouse(pg_seeded_url)
    yield warehouse
    warehouse.close()


@pytest.fixture(scope="session", params=ENGINES)
def seeded(request: pytest.FixtureRequest) -> Warehouse:
    """The default demo warehouse, on each engine."""
    name = "sqlite_seeded" if request.param == "sqlite" else "pg_seeded"
    warehouse: Warehouse = request.getfixturevalue(name)
    return warehouse


@pytest.fixture(scope="session")
def pg_scratch_url(postgres_admin_url: str) -> Iterator[str]:
    with pg_database(postgres_admin_url, "thred_wh_scratch") as url:
        yield url


@pytest.fixture(params=ENGINES)
def blank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """An empty contract schema of the test's own, on each engine."""
    engine: Engine
    if request.param == "sqlite":
        engine = create_warehouse_engine(f"sqlite:///{tmp_path / 'blank.db'}")
    else:
        engine = create_warehouse_engine(request.getfixturevalue("pg_scratch_url"))
        drop_schema(engine)
    create_schema(engine)
    yield Warehouse(engine)
    engine.dispose()
