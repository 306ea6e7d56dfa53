"""The double-entry ledger behind every document.

Each document posts one balanced journal entry keyed by ``_key`` (``invoice:<id>``,
``invoice_void:<id>``, ...); changing the document re-posts (replaces) that entry. Lines
carry tags (``invoice_id``, ``customer_id``, ``bill_id``, ``vendor_id``, ...), and a store
hook keeps running debit/credit sums per account and per (account, tag) so invoice and bill
outstanding, customer and vendor balances and account balances are O(1) reads that can
never disagree with the journal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.store import Obj, Store

__all__ = ["Balances", "EntryBuilder", "create_chart", "post_entry", "remove_entry"]

JE = "journal_entries"
ACCOUNTS = "accounts"


class Balances:
    """Store hook: running [debit, credit] sums over journal lines."""

    def __init__(self) -> None:
        self._sums: dict[tuple[str, ...], list[int]] = {}

    def clear(self) -> None:
        self._sums.clear()

    def on_change(self, old: Obj | None, new: Obj | None) -> None:
        if old is not None:
            self._apply(old, -1)
        if new is not None:
            self._apply(new, 1)

    def _apply(self, entry: Obj, sign: int) -> None:
        scope = entry["_scope"]
        for ln in entry["lines"]:
            code = ln["account"]
            keys: list[tuple[str, ...]] = [(scope, code)]
            keys.extend((scope, code, k, v) for k, v in ln.get("tags", {}).items())
            for key in keys:
                sums = self._sums.setdefault(key, [0, 0])
                sums[0] += sign * ln["debit"]
                sums[1] += sign * ln["credit"]

    def debit_credit(
        self, scope: str, code: str, tag: tuple[str, str] | None = None
    ) -> tuple[int, int]:
        key = (scope, code) if tag is None else (scope, code, tag[0], tag[1])
        sums = self._sums.get(key)
        return (0, 0) if sums is None else (sums[0], sums[1])

    def net_debit(self, scope: str, code: str, tag: tuple[str, str] | None = None) -> int:
        d, c = self.debit_credit(scope, code, tag)
        return d - c


class EntryBuilder:
    """Collects lines; a negative amount flips to the other side, zero is dropped."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def dr(self, code: str, amount: int, description: str = "", **tags: str | None) -> None:
        self._add(code, amount, 0, description, tags)

    def cr(self, code: str, amount: int, description: str = "", **tags: str | None) -> None:
        self._add(code, 0, amount, description, tags)

    def _add(
        self, code: str, debit: int, credit: int, description: str, tags: dict[str, str | None]
    ) -> None:
        if debit < 0 or credit < 0:
            debit, credit = -credit, -debit
        if debit == 0 and credit == 0:
            return
        self.lines.append(
            {
                "account": code,
                "debit": debit,
                "credit": credit,
                "description": description,
                "tags": {k: v for k, v in tags.items() if v},
            }
        )

    def balanced(self) -> bool:
        debit = sum(int(ln["debit"]) for ln in self.lines)
        return debit == sum(int(ln["credit"]) for ln in self.lines)


def post_entry(
    store: Store,
    scope: str,
    key: str,
    source_type: str,
    source_id: str,
    entry_date: str,
    memo: str,
    builder: EntryBuilder,
    now: str,
) -> Obj:
    """Create or replace the journal entry ``key`` of a document."""
    if not builder.balanced():
        raise ValueError(f"unbalanced journal entry {key}: {builder.lines}")
    old = store.find(scope, JE, "_key", key)
    entry: Obj = {
        "id": old["id"] if old else store.new_id(),
        "_scope": scope,
        "_key": key,
        "business_id": scope,
        "entry_number": old["entry_number"] if old else None,
        "entry_date": entry_date,
        "memo": memo,
        "source_type": source_type,
        "source_id": source_id,
        "status": "approved",
        "is_posted": True,
        "created_by": "system",
        "lines": builder.lines,
        "created_at": old["created_at"] if old else now,
        "updated_at": now,
    }
    if old is not None:
        entry["_seq"] = old["_seq"]
    else:
        entry["_seq"] = store.next_seq()
        entry["entry_number"] = f"JE-{entry['_seq']:07d}"
    return store.put(JE, entry)


def remove_entry(store: Store, scope: str, key: str) -> None:
    old = store.find(scope, JE, "_key", key)
    if old is not None:
        store.delete(JE, old["id"])


def entries_of_source(store: Store, source_id: str) -> list[Obj]:
    return store.lookup("je_by_source", source_id)


def create_chart(store: Store, scope: str, currency: str, now: str) -> None:
    """The default chart of accounts of a new business."""
    for spec in rules.CHART_OF_ACCOUNTS:
        store.put(
            ACCOUNTS,
            {
                "id": store.new_id(),
                "_scope": scope,
                "_key": spec.code,
                "business_id": scope,
                "code": spec.code,
                "name": spec.name,
                "account_type": spec.account_type,
                "account_subtype": spec.account_subtype,
                "parent_account_code": None,
                "currency": currency,
                "description": "",
                "is_cash_account": spec.is_cash_account,
                "is_active": True,
                "is_system": True,
                "created_at": now,
                "updated_at": now,
            },
        )


def account_by_code(store: Store, scope: str, code: str) -> Obj | None:
    return store.find(scope, ACCOUNTS, "_key", code)


def natural_balance(account_type: str, debit: int, credit: int) -> int:
    return debit - credit if account_type in rules.DEBIT_NORMAL_TYPES else credit - debit


def iter_lines(
    store: Store,
    scope: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Iterator[tuple[Obj, dict[str, Any]]]:
    """Journal lines of a business whose entry date lies in [start, end]."""
    for entry in store.scan(scope, JE):
        day = dt.date.fromisoformat(entry["entry_date"])
        if start is not None and day < start:
            continue
        if end is not None and day > end:
            continue
        for ln in entry["lines"]:
            yield entry, ln
