"""The demo instance's storage: Dagster's own SQLite storages, each database's engine kept.

Dagster's SQLite run and event-log storages build a new SQLAlchemy engine for every connection
(``NullPool``), and an engine's compiled-statement cache dies with it, so each of the ~11,000
connections of a 30-partition demo also recompiled its statements: about a quarter of the
demo's CPU (issue 8, B6; cProfile of a no-change rerun). These subclasses keep one engine per
database for the life of the instance. Everything else is Dagster's: the same files, schema,
statements and transactions, so ``dagster dev`` (whose instance uses the plain classes) reads
what the demo wrote. Like :class:`thred_devtools.demo.DemoRunLauncher`, they are named in
memory only (``demo_storage_overrides``); the ``dagster.yaml`` a later ``dagster dev`` reads is
not touched, and a ``dagster.yaml`` that configures its own storage is left in charge.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import Connection

# Keys of dagster.yaml that choose a storage: when any is set, the demo does not override it.
STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")
# Run shards whose engines stay open (the index shard is always kept): the demo writes one run
# at a time, so a few cover the run being written and the ones just read back.
KEPT_RUN_SHARDS = 4


class KeptEngineEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` (one database per run plus an index) with engines kept."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> KeptEngineEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # As Dagster's: under the storage's lock, the shard created on first use, one transaction.
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
            for oldest in runs[:-KEPT_RUN_SHARDS]:
                self._engines.pop(oldest).dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    def dispose(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()
        super().dispose()


class KeptEngineRunStorage(SqliteRunStorage):
    """``SqliteRunStorage`` (``runs.db``) with its engine kept."""

    _kept: Engine | None = None

    @classmethod
    def from_config_value(  # type: ignore[override]
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> KeptEngineRunStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        if self._kept is None:
            self._kept = create_engine(self._conn_string)
        with self._kept.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        if self._kept is not None:
            self._kept.dispose()
            self._kept = None
        super().dispose()


def demo_storage_overrides(dagster_home: Path, configured: Mapping[str, Any]) -> dict[str, Any]:
    """Instance overrides naming the kept-engine storages, at Dagster's default SQLite paths
    (those of ``DagsterSqliteStorage`` under ``dagster_home``); none when ``configured`` (the
    home's ``dagster.yaml``) chooses a storage itself."""
    if any(key in configured for key in STORAGE_KEYS):
        return {}
    return {
        "run_storage": {
            "module": __name__,
            "class": KeptEngineRunStorage.__name__,
            "config": {"base_dir": str(dagster_home / "history")},
        },
        "event_log_storage": {
            "module": __name__,
            "class": KeptEngineEventLogStorage.__name__,
            "config": {"base_dir": str(dagster_home / "history" / "runs")},
        },
        "schedule_storage": {
            "module": "dagster._core.storage.schedules",
            "class": "SqliteScheduleStorage",
            "config": {"base_dir": str(dagster_home / "schedules")},
        },
    }
