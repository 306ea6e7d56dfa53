"""Sync fixtures: a small seeded warehouse, a ledger and a real sandbox, on SQLite and PostgreSQL.

Every environment is real: the warehouse and ledger are SQLite files or a PostgreSQL database of
the test's own, Thred is the sandbox over HTTP on 127.0.0.1. Businesses' external ids are per
partner, so an environment always gets a sandbox of its own. The sandbox is strict (it answers
with exactly the fields thred-api.md documents) unless a test asks otherwise, and "the books
are equal" is the project's own verdict: ``thred_pipeline.reconcile.BooksReconciler``, which
compares the warehouse with what Thred lists, never with the ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Table, delete, func, select, update
from thred_devtools.sandbox import SandboxConfig, start_sandbox
from thred_devtools.seed import SeedConfig, generate, load

from thred_pipeline import entities
from thred_pipeline.core.records import Status, TimeWindow
from thred_pipeline.entities import EntitySpec
from thred_pipeline.ledger import SyncLedger, ledger_table
from thred_pipeline.sync.engine import EntityRunResult, SyncEngine, SyncOptions
from thred_pipeline.thred.client import ThredClient, ThredResponse
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse import schema as wh
from thred_pipeline.warehouse.db import create_warehouse_engine
from thred_pipeline.warehouse.extract import Warehouse
from thred_pipeline_tests.pg import pg_database

if TYPE_CHECKING:
    from thred_pipeline.reconcile import BooksReport

# One business with every kind of record: two payouts (one settles a refund payment), partly
# and fully paid refunds, an applied and an unapplied vendor credit, a voided invoice,
# archived customers and vendors, and unpaid invoices.
SMALL = SeedConfig(
    seed=3,
    businesses=1,
    days=7,
    customers=6,
    vendors=4,
    invoices=25,
    payments=18,
    refunds=3,
    refund_payments=2,
    payouts=2,
    bills=8,
    bill_payments=6,
    vendor_credits=2,
)
WINDOW = TimeWindow(SMALL.window_start, SMALL.window_end)
ORDER = [spec.name for spec in entities.sync_order()]
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
PARTNER_ID, API_KEY = "demo-partner", "sandbox-demo-key"

# Sandbox collection per entity (what /_sandbox/stats counts).
COLLECTION = {
    "businesses": "businesses",
    "customers": "customers",
    "vendors": "vendors",
    "invoices": "invoices",
    "bills": "bills",
    "invoice_payments": "invoice_payments",
    "refunds": "refunds",
    "bill_payments": "bill_payments",
    "vendor_credits": "vendor_credits",
    "refund_payments": "refund_payments",
    "payouts": "payouts",
}


def day_window(offset_days: int) -> TimeWindow:
    """A one-day window ``offset_days`` after the seeded data ends: room for later edits."""
    start = SMALL.window_end + timedelta(days=offset_days)
    return TimeWindow(start, start + timedelta(days=1))


@dataclass(frozen=True)
class Backend:
    name: str
    warehouse_url: str
    ledger_url: str


@pytest.fixture(scope="session")
def seed_data() -> dict[str, list[dict[str, Any]]]:
    return generate(SMALL)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Warehouse and ledger URLs of the test's own, on SQLite files or a PostgreSQL database."""
    if request.param == "sqlite":
        return Backend(
            "sqlite",
            f"sqlite:///{tmp_path / 'warehouse.db'}",
            f"sqlite:///{tmp_path / 'ledger.db'}",
        )
    url: str = request.getfixturevalue("postgres_url")
    return Backend("postgres", url, url)


@contextmanager
def module_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """The same, for module-scoped environments (``request.param`` names the backend)."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("sync")
        yield Backend(
            "sqlite", f"sqlite:///{folder / 'warehouse.db'}", f"sqlite:///{folder / 'ledger.db'}"
        )
        return
    admin: str = request.getfixturevalue("postgres_admin_url")
    with pg_database(admin) as url:
        yield Backend("postgres", url, url)


class SyncEnv:
    """A seeded warehouse, a ledger and a fresh sandbox, with helpers to drive and inspect them."""

    def __init__(
        self,
        backend: Backend,
        data: dict[str, list[dict[str, Any]]],
        sandbox: SandboxConfig | None = None,
    ) -> None:
        self.backend = backend
        self.data = data
        self.wh_engine = create_warehouse_engine(backend.warehouse_url)
        load(self.wh_engine, data)
        self.warehouse = Warehouse(self.wh_engine)
        self.ledger = SyncLedger.from_url(backend.ledger_url)
        self.sandbox = start_sandbox(sandbox or SandboxConfig())
        self.settings = ThredSettings(
            base_url=self.sandbox.url,
            partner_id=PARTNER_ID,
            api_key=SecretStr(API_KEY),
            backoff_base_s=0.01,
            backoff_max_s=0.05,
            max_attempts=2,
        )
        self.http = httpx.Client(base_url=self.sandbox.url, timeout=30)

    def close(self) -> None:
        self.http.close()
        self.sandbox.stop()
        self.ledger.engine.dispose()
        self.wh_engine.dispose()

    # --- driving ---------------------------------------------------------------------------

    def engine(
        self,
        options: SyncOptions | None = None,
        client_factory: Callable[[ThredSettings], ThredClient] | None = None,
    ) -> SyncEngine:
        return SyncEngine(
            self.warehouse, self.ledger, self.settings, options, client_factory=client_factory
        )

    def sync(
        self,
        name: str,
        window: TimeWindow = WINDOW,
        options: SyncOptions | None = None,
        client_factory: Callable[[ThredSettings], ThredClient] | None = None,
    ) -> EntityRunResult:
        return self.engine(options, client_factory).sync_entity(entities.get(name), window)

    def sync_all(
        self,
        window: TimeWindow = WINDOW,
        order: list[str] | None = None,
        options: SyncOptions | None = None,
    ) -> dict[str, EntityRunResult]:
        engine = self.engine(options)
        return {name: engine.sync_entity(entities.get(name), window) for name in (order or ORDER)}

    # --- verdicts -------------------------------------------------------------------------

    def books(self) -> BooksReport:
        """The nightly reconciliation: every active business's books, warehouse vs Thred."""
        from thred_pipeline.reconcile import BooksReconciler

        return BooksReconciler(self.warehouse, self.ledger, self.settings).run()

    def assert_books_equal(self) -> None:
        report = self.books()
        differences = report.differences
        shown = differences.head(20).to_string() if not differences.empty else ""
        assert report.verdict == "PASS", f"{report.verdict}:\n{shown}"

    def statuses(self, entity: str) -> dict[str, int]:
        return {k: v for k, v in self.ledger.status_counts(entity).items() if v}

    def all_synced(self) -> dict[str, dict[str, int]]:
        """Entities whose ledger rows are not all ``synced`` (empty when everything is)."""
        return {
            name: counts
            for name in ORDER
            if set(counts := self.statuses(name)) - {Status.SYNCED.value}
        }

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        """Switch the running sandbox (faults, ``duplicate_external_id``, ``extended_fields``)."""
        return self.admin("faults", settings)

    # The sync package's first reconciliation (reads fields the strict sandbox does not send);
    # kept for the suites that still use it.
    # --- Thred -----------------------------------------------------------------------------

    @property
    def thred_business(self) -> str:
        ids = self.ledger.thred_ids("businesses", [b["id"] for b in self.data["businesses"]])
        return ids[self.data["businesses"][0]["id"]]

    def api(self, method: str, path: str, json: Any = None, **params: Any) -> ThredResponse:
        """One call to Thred as the pipeline makes it, scoped to the (first) business."""
        business = self.thred_business

        async def call() -> ThredResponse:
            async with ThredClient(self.settings) as client:
                return await client.request(
                    method,
                    f"businesses/{business}/{path}",
                    business_id=business,
                    json=json,
                    params=params or None,
                )

        return asyncio.run(call())

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        body: dict[str, Any] = self.api("GET", path, **params).body
        return body

    def thred_object(self, name: str, source_id: str) -> dict[str, Any]:
        spec = entities.get(name)
        row = self.ledger.get(name, source_id)
        assert row is not None and row.thred_id, f"{name} {source_id} has no Thred id"
        if name == "refund_payments":
            refund = self.ledger.get("refunds", self.row("refund_payments", source_id)["refund_id"])
            assert refund is not None
            listed = self.get(f"invoices/refunds/{refund.thred_id}/payments/")["results"]
            return next(p for p in listed if p["id"] == row.thred_id)
        path = spec.create_path if spec.name != "businesses" else ""
        if name == "businesses":
            found: dict[str, Any] = self.get("")
            return found
        found = self.get(f"{path}{row.thred_id}/")
        return found

    def thred_stored(self, name: str, source_id: str) -> dict[str, Any]:
        """The object with the sandbox's inferred fields too (totals, balances): a test's
        oracle for what Thred holds, never something the pipeline reads."""
        self.set_faults(extended_fields=True)
        try:
            return self.thred_object(name, source_id)
        finally:
            self.set_faults(extended_fields=None)

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/_sandbox/stats")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def counts(self) -> dict[str, int]:
        """Sandbox object counts per collection, over this env's businesses (and the partner)."""
        out: dict[str, int] = {}
        for collections in self.stats()["objects"].values():
            for collection, n in collections.items():
                out[collection] = out.get(collection, 0) + n
        return out

    def admin(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(f"/_sandbox/{action}", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def tamper(self, collection: str, external_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.admin(
            "tamper",
            {
                "business_id": self.thred_business,
                "collection": collection,
                "external_id": external_id,
                "set": changes,
            },
        )

    # --- warehouse -------------------------------------------------------------------------

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self.data[table])

    def row(self, table: str, row_id: str) -> dict[str, Any]:
        t = wh.metadata.tables[table]
        with self.wh_engine.connect() as conn:
            found = conn.execute(select(t).where(t.c.id == row_id)).mappings().one()
        return dict(found)

    def warehouse_count(self, table: Table) -> int:
        with self.wh_engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def edit(self, table: str, row_id: str, **values: Any) -> None:
        """UPDATE one warehouse row; aware datetimes are stored as the engine expects."""
        t = wh.metadata.tables[table]
        if self.wh_engine.dialect.name == "sqlite":
            values = {
                k: v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
                for k, v in values.items()
            }
        with self.wh_engine.begin() as conn:
            result = conn.execute(update(t).where(t.c.id == row_id).values(**values))
            assert result.rowcount == 1, f"{table} {row_id} not found"

    def wipe_ledger(self, entity: str) -> int:
        with self.ledger.engine.begin() as conn:
            result = conn.execute(delete(ledger_table).where(ledger_table.c.entity == entity))
            return int(result.rowcount or 0)


def spec_of(name: str) -> EntitySpec:
    return entities.get(name)


@pytest.fixture
def env(backend: Backend, seed_data: dict[str, list[dict[str, Any]]]) -> Iterator[SyncEnv]:
    """A fresh, unsynced environment of the test's own."""
    environment = SyncEnv(backend, seed_data)
    try:
        yield environment
    finally:
        environment.close()


@pytest.fixture
def synced(env: SyncEnv) -> SyncEnv:
    """A fresh environment after one complete sync of the seeded window."""
    results = env.sync_all()
    assert not any(r.counts["rejected"] or r.counts["deferred"] for r in results.values())
    return env
