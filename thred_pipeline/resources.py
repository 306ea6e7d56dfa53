"""Dagster resources: thin, EnvVar-configured wrappers that build the engine's parts."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import dagster as dg
from pydantic import PrivateAttr, SecretStr

from thred_pipeline import config
from thred_pipeline.ledger import SyncLedger
from thred_pipeline.reconcile import BooksReconciler, SeverityPolicy, WindowReconciler
from thred_pipeline.sync.engine import SyncEngine, SyncOptions
from thred_pipeline.thred.settings import ThredSettings
from thred_pipeline.warehouse.extract import Warehouse

Opened = TypeVar("Opened")


class _DatabaseResource(dg.ConfigurableResource):  # type: ignore[type-arg,misc]
    """A database URL, opened once per resource instance: opening checks the database."""

    url: str
    _opened: Any = PrivateAttr(default=None)

    def _open_once(self, open_url: Callable[[str], Opened]) -> Opened:
        if self._opened is None:
            self._opened = open_url(self.url)
        opened: Opened = self._opened
        return opened

    def __repr__(self) -> str:
        # The URL may carry the database password.
        return f"{type(self).__name__}(url={config.masked_url(self.url)!r})"

    __str__ = __repr__


class WarehouseResource(_DatabaseResource):
    """Read-only access to the platform warehouse (any SQLAlchemy URL)."""

    def warehouse(self) -> Warehouse:
        return self._open_once(config.open_warehouse)


class LedgerResource(_DatabaseResource):
    """The sync ledger database (PostgreSQL in production, SQLite embedded)."""

    def ledger(self) -> SyncLedger:
        return self._open_once(config.open_ledger)


class ThredResource(dg.ConfigurableResource):  # type: ignore[type-arg,misc]
    """Partner credentials for Thred; the key only ever lives in a SecretStr."""

    base_url: str
    partner_id: str
    api_key: str
    timeout_s: float = 30.0
    max_attempts: int = 6  # per request, the first included: retries end sooner with fewer
    verify_tls: bool = True
    allow_insecure_tls: bool = False  # both must be set to turn verification off (logged)
    # Known request limit per business, requests/s; None: the rate governor finds it from 429s.
    rate_per_business: float | None = None
    rate_burst: int | None = None  # None: a tenth of a second's worth of the current rate

    def settings(self) -> ThredSettings:
        return ThredSettings(
            base_url=self.base_url,
            partner_id=self.partner_id,
            api_key=SecretStr(self.api_key),
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            verify_tls=self.verify_tls,
            allow_insecure_tls=self.allow_insecure_tls,
            rate_per_business=self.rate_per_business,
            rate_burst=self.rate_burst,
        )

    def __repr__(self) -> str:
        return f"ThredResource(base_url={self.base_url!r}, partner_id={self.partner_id!r})"

    __str__ = __repr__  # pydantic's own __str__ would print the key


class SyncResource(dg.ConfigurableResource):  # type: ignore[type-arg,misc]
    """How the engine runs: lookback, concurrency, full refresh."""

    lookback_hours: float = 2.0
    concurrency: int = 10
    chunk_size: int = 500
    full_refresh: bool = False

    def options(self) -> SyncOptions:
        return SyncOptions(
            lookback=timedelta(hours=self.lookback_hours),
            chunk_size=self.chunk_size,
            concurrency=self.concurrency,
            full_refresh=self.full_refresh,
        )


def build_engine(
    warehouse: WarehouseResource,
    ledger: LedgerResource,
    thred: ThredResource,
    sync: SyncResource,
) -> SyncEngine:
    return SyncEngine(warehouse.warehouse(), ledger.ledger(), thred.settings(), sync.options())


class ReconcileResource(dg.ConfigurableResource):  # type: ignore[type-arg,misc]
    """The severity policy of the books checks (see docs/reliability.md).

    ``error_above_cents``: explained differences (quarantined, deferred, in flight) are a WARN
    until the money they put at stake in one business exceeds this many minor units; then the
    check is an ERROR. -1 (the default) never escalates them; unexplained ones are always ERROR.
    """

    error_above_cents: int = -1

    def policy(self) -> SeverityPolicy:
        return SeverityPolicy(self.error_above_cents if self.error_above_cents >= 0 else None)


def build_window_reconciler(
    warehouse: WarehouseResource, ledger: LedgerResource, thred: ThredResource
) -> WindowReconciler:
    return WindowReconciler(warehouse.warehouse(), ledger.ledger(), thred.settings())


def build_books_reconciler(
    warehouse: WarehouseResource,
    ledger: LedgerResource,
    thred: ThredResource,
    reconcile: ReconcileResource,
) -> BooksReconciler:
    return BooksReconciler(
        warehouse.warehouse(), ledger.ledger(), thred.settings(), policy=reconcile.policy()
    )


def default_resources() -> dict[str, Any]:
    """Every setting comes from the environment at run time (see README)."""
    return {
        "warehouse": WarehouseResource(url=dg.EnvVar("THRED_WAREHOUSE_URL")),
        "ledger": LedgerResource(url=dg.EnvVar("THRED_LEDGER_URL")),
        "thred": ThredResource(
            base_url=dg.EnvVar("THRED_BASE_URL"),
            partner_id=dg.EnvVar("THRED_PARTNER_ID"),
            api_key=dg.EnvVar("THRED_API_KEY"),
        ),
        "sync": SyncResource(),
        # Optional, so not an EnvVar (which would make it required): read when the code loads.
        "reconcile": ReconcileResource(
            error_above_cents=int(os.environ.get("THRED_RECONCILE_ERROR_ABOVE_CENTS", "-1"))
        ),
    }
