"""What "nothing lost, nothing duplicated" means, as code shared by the reliability tests.

The bad-input catalogue, the security test and the chaos suite all end with the same audit:

- every warehouse record of every entity has a ledger row (nothing silently skipped);
- its status is the one the data implies: ``synced`` unless the test made it bad (then it is
  ``rejected`` or ``deferred`` as the test says), or a parent it needs is not in Thred (then
  it waits, ``deferred``) — computed independently of the engine from the warehouse's own
  references (:func:`expected_statuses`);
- the sandbox holds exactly one object per external_id, and per entity exactly as many
  objects as the ledger says were created.

Everything here talks to real parts: SQLite files, the sandbox over HTTP.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine, text
from thred_devtools.seed import SeedConfig, generate, load

from thred_pipeline import entities
from thred_pipeline.config import DEMO_API_KEY, DEMO_PARTNER_ID
from thred_pipeline.core.records import Status, TimeWindow
from thred_pipeline.ledger import LedgerRow, SyncLedger
from thred_pipeline.sync.engine import EntityRunResult, SyncEngine, SyncOptions
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.extract import Warehouse

PARTNER_ID, API_KEY = DEMO_PARTNER_ID, DEMO_API_KEY
Key = tuple[str, str]  # (entity, source id)


# --- warehouse ------------------------------------------------------------------------------


def seed_file(path: Path, config: SeedConfig) -> Path:
    """A seeded SQLite warehouse file, to be copied per test (cheaper than re-seeding)."""
    engine = create_warehouse_engine(f"sqlite:///{path}")
    try:
        load(engine, generate(config))
    finally:
        engine.dispose()
    return path


def copy_warehouse(template: Path, folder: Path) -> str:
    target = folder / "warehouse.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def sql(engine: Engine, statement: str, **params: Any) -> int:
    """Run one corrupting statement with bound parameters; returns the affected row count."""
    with engine.begin() as conn:
        return int(conn.execute(text(statement), params).rowcount or 0)


def loosen(engine: Engine, table: str) -> None:
    """Rebuild a SQLite table without its primary key and NOT NULL constraints.

    A warehouse *view* (or a replicated table) often has neither; this lets a test store what
    such a source can hand us: NULLs in required columns, the same id twice.
    """
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE TABLE "{table}__loose" AS SELECT * FROM "{table}"')
        conn.exec_driver_sql(f'DROP TABLE "{table}"')
        conn.exec_driver_sql(f'ALTER TABLE "{table}__loose" RENAME TO "{table}"')


def _scalar_rows(engine: Engine, statement: str) -> list[tuple[Any, ...]]:
    # Raw text, not the typed contract tables: a corrupted column must not stop the audit.
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(statement)]


def warehouse_parents(engine: Engine) -> dict[Key, set[Key]]:
    """Every warehouse record of every entity, with the records it needs in Thred first."""
    records: dict[Key, set[Key]] = {}
    for spec in entities.sync_order():
        table = spec.table.name
        own = [ref for ref in spec.refs if ref.child is None]
        columns = ", ".join(
            ['"id"', *([] if spec.name == "businesses" else ['"business_id"'])]
            + [f'"{ref.column}"' for ref in own]
        )
        for row in _scalar_rows(engine, f'SELECT {columns} FROM "{table}"'):
            key = (spec.name, str(row[0]))
            parents = records.setdefault(key, set())
            if spec.name != "businesses":
                parents.add(("businesses", str(row[1])))
            for ref, value in zip(own, row[2:], strict=True):
                if value not in (None, ""):
                    parents.add((ref.entity, str(value)))
        for ref in spec.refs:
            if ref.child is None:
                continue
            child = next(c for c in spec.children if c.key == ref.child)
            statement = (
                f'SELECT "{child.parent_column}", "{ref.column}" FROM "{child.table.name}" '
                f'WHERE "{ref.column}" IS NOT NULL AND "{ref.column}" != \'\''
            )
            for parent_id, value in _scalar_rows(engine, statement):
                key = (spec.name, str(parent_id))
                if key in records:  # an orphan child row belongs to nothing
                    records[key].add((ref.entity, str(value)))
    return records


def expected_statuses(engine: Engine, explicit: Mapping[Key, Status]) -> dict[Key, Status]:
    """What the ledger must say for every warehouse record after a complete sync.

    ``explicit`` names the records a test broke on purpose; everything that (transitively)
    needs one of them, or a parent missing from the warehouse, waits as ``deferred``.
    """
    parents = warehouse_parents(engine)
    expected: dict[Key, Status] = {}
    for spec in entities.sync_order():
        for key in sorted(k for k in parents if k[0] == spec.name):
            if key in explicit:
                expected[key] = explicit[key]
            elif all(expected.get(p) is Status.SYNCED for p in parents[key]):
                expected[key] = Status.SYNCED
            else:
                expected[key] = Status.DEFERRED
    return expected


# --- sandbox --------------------------------------------------------------------------------


def sandbox_stats(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/_sandbox/stats", timeout=30)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def sandbox_objects(stats: Mapping[str, Any]) -> Counter[str]:
    """Objects per collection over every scope (collections are named like the entities)."""
    totals: Counter[str] = Counter()
    for collections in stats["objects"].values():
        for collection, n in collections.items():
            totals[collection] += int(n)
    return totals


def sandbox_faults(base_url: str, **settings: Any) -> None:
    """Replace the sandbox's fault settings (``{}`` turns every fault off)."""
    response = httpx.post(
        f"{base_url}/_sandbox/faults", json={"reset": True, **settings}, timeout=30
    )
    response.raise_for_status()


class TokenRevoker:
    """Revokes every token the sandbox issued, every ``every_s``, while a run is going on."""

    def __init__(self, base_url: str, every_s: float) -> None:
        self.base_url = base_url
        self.every_s = every_s
        self.revocations = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as http:
            while not self._stop.wait(self.every_s):
                http.post("/_sandbox/expire-tokens", json={}).raise_for_status()
                self.revocations += 1

    def __enter__(self) -> TokenRevoker:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(60)  # bounded by its HTTP timeout (10 s a request)
        assert not self._thread.is_alive(), "the token revoker did not stop"


class Outages:
    """Every ``every_s``, Thred answers every request 503 for ``length_s`` (then ``faults``).

    A short total outage is what exhausts a client's retries for real: writes end ``unknown``
    and Dagster's step retry (and, failing that, the next run) must resolve them.
    """

    def __init__(
        self, base_url: str, faults: Mapping[str, Any], every_s: float, length_s: float
    ) -> None:
        self.base_url = base_url
        self.faults = dict(faults)
        self.every_s = every_s
        self.length_s = length_s
        self.outages = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        down = {**self.faults, "error_503_rate": 1.0}
        for key in ("error_500_rate", "error_502_rate", "hang_rate", "drop_after_commit_rate"):
            down[key] = 0.0
        while not self._stop.wait(self.every_s):
            sandbox_faults(self.base_url, **down)
            self.outages += 1
            self._stop.wait(self.length_s)
            sandbox_faults(self.base_url, **self.faults)

    def __enter__(self) -> Outages:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        # Wait until the thread is done: it must not put the faults back after this returns.
        self._stop.set()
        self._thread.join(120)  # bounded by its HTTP timeouts (30 s a request)
        assert not self._thread.is_alive(), "the outage thread did not stop"


# --- the audit ------------------------------------------------------------------------------


@dataclass
class Audit:
    """The invariants after a sync, with everything needed to explain a failure."""

    records: int = 0
    expected: Counter[str] = field(default_factory=Counter)
    ledger: Counter[str] = field(default_factory=Counter)
    lost: list[Key] = field(default_factory=list)
    wrong: list[tuple[Key, str, str, str | None]] = field(default_factory=list)
    unexplained: list[Key] = field(default_factory=list)
    duplicates: int = 0
    count_mismatch: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def problems(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("lost", "wrong", "unexplained", "count_mismatch"):
            value = getattr(self, name)
            if value:
                out[name] = value if isinstance(value, dict) else value[:20]
        if self.duplicates:
            out["duplicates"] = self.duplicates
        return out

    def assert_ok(self) -> None:
        assert not self.problems, self.problems


def ledger_rows(ledger: SyncLedger) -> dict[Key, LedgerRow]:
    return {(r.entity, r.source_id): r for r in ledger.iter_rows()}


def audit(
    engine: Engine, ledger: SyncLedger, base_url: str, explicit: Mapping[Key, Status]
) -> Audit:
    expected = expected_statuses(engine, explicit)
    rows = ledger_rows(ledger)
    out = Audit(records=len(expected))
    out.expected.update(s.value for s in expected.values())
    out.ledger.update(r.status.value for r in rows.values())
    for key, status in sorted(expected.items()):
        row = rows.get(key)
        if row is None:
            out.lost.append(key)
            continue
        if row.status is not status:
            out.wrong.append((key, status.value, row.status.value, row.error_message))
        if row.status is not Status.SYNCED and not (row.error_code and row.error_message):
            out.unexplained.append(key)
    stats = sandbox_stats(base_url)
    out.duplicates = int(stats["duplicate_external_ids"])
    objects = sandbox_objects(stats)
    for spec in entities.sync_order():
        created = sum(n for n in ledger.created_counts(spec.name).values())
        if objects.get(spec.name, 0) != created:
            out.count_mismatch[spec.name] = (created, objects.get(spec.name, 0))
    return out


# --- a world for engine-level tests ---------------------------------------------------------


class World:
    """A warehouse copy, a fresh ledger and a (reset) sandbox: one test's private universe."""

    def __init__(self, folder: Path, template: Path, sandbox_url: str, config: SeedConfig):
        self.folder = folder
        self.config = config
        self.sandbox_url = sandbox_url
        httpx.post(f"{sandbox_url}/_sandbox/reset", timeout=30).raise_for_status()
        self.warehouse_url = copy_warehouse(template, folder)
        self.ledger_url = f"sqlite:///{folder / 'ledger.db'}"
        self.wh = create_warehouse_engine(self.warehouse_url)
        self.ledger = SyncLedger.from_url(self.ledger_url)
        self.settings = ThredSettings(
            base_url=sandbox_url,
            partner_id=PARTNER_ID,
            api_key=SecretStr(API_KEY),
            backoff_base_s=0.01,
            backoff_max_s=0.05,
            max_attempts=3,
        )

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.config.window_start, self.config.window_end)

    def sql(self, statement: str, **params: Any) -> int:
        return sql(self.wh, statement, **params)

    def loosen(self, table: str) -> None:
        loosen(self.wh, table)

    def engine(self) -> SyncEngine:
        return SyncEngine(
            Warehouse(self.wh),
            self.ledger,
            self.settings,
            SyncOptions(lookback=timedelta(0), concurrency=8),
        )

    def sync(self, names: Iterable[str] | None = None) -> dict[str, EntityRunResult]:
        engine = self.engine()
        wanted = set(names) if names is not None else None
        return {
            spec.name: engine.sync_entity(spec, self.window)
            for spec in entities.sync_order()
            if wanted is None or spec.name in wanted
        }

    def audit(self, explicit: Mapping[Key, Status]) -> Audit:
        return audit(self.wh, self.ledger, self.sandbox_url, explicit)

    def close(self) -> None:
        self.ledger.engine.dispose()
        self.wh.dispose()
