"""The sandbox's runtime state: store, ledger balances, token secret, counters.

One ``Sandbox`` object per app; route handlers reach it through ``request.app.state``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

from thred_devtools.sandbox.config import DuplicateExternalId, SandboxConfig
from thred_devtools.sandbox.faults import FaultController
from thred_devtools.sandbox.ledger import Balances
from thred_devtools.sandbox.store import Obj, Store
from thred_devtools.sandbox.tokens import load_secret

__all__ = ["Sandbox", "now_iso", "today"]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _alloc_ids(field: str) -> Any:
    def keys(obj: Obj) -> list[str]:
        return [a[field] for a in obj.get("allocations", [])]

    return keys


def _field(name: str) -> Any:
    def keys(obj: Obj) -> list[str]:
        value = obj.get(name)
        return [value] if isinstance(value, str) else []

    return keys


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.balances = Balances()
        s = self.store
        s.register_hook("journal_entries", self.balances)
        s.register_index("je_by_source", "journal_entries", _field("source_id"))
        s.register_index("invoices_by_customer", "invoices", _field("customer_id"))
        s.register_index("payments_by_invoice", "invoice_payments", _alloc_ids("invoice_id"))
        s.register_index("payments_by_customer", "invoice_payments", _field("customer_id"))
        s.register_index("refunds_by_invoice", "refunds", _field("invoice_id"))
        s.register_index("refund_payments_by_refund", "refund_payments", _field("refund_id"))
        s.register_index(
            "payouts_by_member",
            "payouts",
            lambda o: [*o.get("payment_ids", []), *o.get("refund_payment_ids", [])],
        )
        s.register_index("bills_by_vendor", "bills", _field("vendor_id"))
        s.register_index("bill_payments_by_bill", "bill_payments", _alloc_ids("bill_id"))
        s.register_index("vendor_credits_by_bill", "vendor_credits", _alloc_ids("bill_id"))
        s.register_index("idempotency_by_object", "idempotency", _field("object_id"))
        s.open()
        self.secret = load_secret(config.data_dir)
        self.faults = FaultController(config.faults)
        self._counter_lock = threading.Lock()
        self.request_counts: Counter[tuple[str, str, int]] = Counter()
        self.alias_usage: Counter[str] = Counter()

    @property
    def extended_fields(self) -> bool:
        """True: answer with the inferred fields too; False (default): strict, documented only."""
        override = self.faults.config.extended_fields
        return self.config.extended_fields if override is None else override

    @property
    def duplicate_external_id(self) -> DuplicateExternalId:
        """How a create repeating an external_id is answered: "replay" (200) or "conflict"."""
        override = self.faults.config.duplicate_external_id
        return self.config.duplicate_external_id if override is None else override

    def count_request(self, method: str, route: str, status: int) -> None:
        with self._counter_lock:
            self.request_counts[(method, route, status)] += 1

    def note_alias(self, name: str) -> None:
        with self._counter_lock:
            self.alias_usage[name] += 1

    def close(self) -> None:
        self.store.close()
