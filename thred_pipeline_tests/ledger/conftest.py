"""The ledger on both backends: a SQLite file, or a fresh PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from thred_pipeline_tests.sync.conftest import BACKENDS, Backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", "", f"sqlite:///{tmp_path / 'ledger.db'}")
    url: str = request.getfixturevalue("postgres_url")
    return Backend("postgres", url, url)
