"""How a window check reads Thred: a day's few records of a long history by id, else the list.

A daily window holds a handful of one entity's records of a business whose history holds
thousands. Reading the whole list (``ceil(history / page_size)`` pages) to compare the handful
made the per-partition check grow with history. The ledger knows both sides of the choice: how
many rows of the entity it holds for the business, and the Thred id of each window record. When
fetching the window's records by their documented detail page (concurrently, at most
``DETAIL_CONCURRENCY`` in flight) costs fewer requests than the list's pages, they are read by
id; otherwise by the list. Records listed only under a parent (refund payments: no detail
page) are read from the lists of their window records' parents alone, never fewer requests than
listing every parent and every parent's list.

What a read by id covers: every window record the ledger holds a Thred id for is in Thred with
the same values (missing: the detail page answers 404; different: its values). It cannot see
objects whose Thred id the ledger does not hold — a second object under one of our external_ids,
or one this pipeline never created. Those are the books check's (``BooksReconciler`` reads every
record of every business by list and reports extras and duplicates). A 404 makes that business
read by list again, so a lost record is reported exactly as the list pass reports it, a second
object under its external_id included. A window record without a Thred id in the ledger needs
no request: the comparison reports it missing, with the ledger's reason.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pandas as pd

from thred_pipeline.entities import EntitySpec
from thred_pipeline.ledger import LedgerRow
from thred_pipeline.reconcile import thred_side
from thred_pipeline.reconcile.reading import LedgerView, Pairs, ThredReader
from thred_pipeline.thred.pagination import MAX_PAGE_SIZE

DETAIL_CONCURRENCY = 8  # detail GETs in flight per business: a day's records, not a storm


class ReadMode(StrEnum):
    """How a window check reads Thred: the cheaper way per business, or one way (tests)."""

    AUTO = "auto"
    DETAIL = "detail"
    LIST = "list"


@dataclass(frozen=True)
class BusinessWindow:
    """One business's records of the window, as the ledger knows them."""

    business_id: str
    thred_business: str
    thred_ids: tuple[str, ...]  # the Thred ids the ledger holds for the window's records
    history: int  # the ledger's rows of this entity for the business
    # nested lists (no detail page): the window records' parents' Thred ids; None: unknown
    parents: tuple[str, ...] | None = None

    @property
    def list_requests(self) -> int:
        """The list pass's pages (at least one, even for an empty history)."""
        return max(1, math.ceil(self.history / MAX_PAGE_SIZE))

    def by_detail(self, spec: EntitySpec, mode: ReadMode) -> bool:
        if spec.listed_under is not None:  # no documented detail page: listed under parents
            return False
        if mode is ReadMode.AUTO:
            return len(self.thred_ids) < self.list_requests
        return mode is ReadMode.DETAIL


def business_windows(
    ledger: LedgerView, spec: EntitySpec, expected: pd.DataFrame, history: Mapping[str, int]
) -> list[BusinessWindow]:
    """The window's businesses Thred holds, each with its records' Thred ids and its history
    (``history``: per business, the records of the entity the ledger says Thred holds)."""
    rows = ledger.rows[spec.name]
    windows = []
    for business_id, source_ids in expected.groupby("business_id")["source_id"]:
        thred_business = ledger.thred_business(str(business_id))
        if thred_business is None:
            continue  # its records are missing in Thred, each with its reason
        records = expected.loc[source_ids.index]
        windows.append(
            BusinessWindow(
                str(business_id),
                thred_business,
                _thred_ids(rows, records["source_id"]),
                history.get(str(business_id), 0),
                _parents(ledger, spec, records),
            )
        )
    return sorted(windows, key=lambda w: w.business_id)


def _thred_ids(rows: Mapping[str, LedgerRow], source_ids: Iterable[str]) -> tuple[str, ...]:
    known = (rows.get(s) for s in source_ids)
    return tuple(sorted({row.thred_id for row in known if row is not None and row.thred_id}))


def _parents(ledger: LedgerView, spec: EntitySpec, records: pd.DataFrame) -> tuple[str, ...] | None:
    """The Thred ids of the parents a nested list is read under (refund payments: their
    refunds'), from the parent column of the expected records; None for other entities."""
    if spec.listed_under is None or spec.listed_under[1] not in records.columns:
        return None
    parent, column = spec.listed_under
    return _thred_ids(ledger.rows[parent], records[column].dropna().astype(str))


@dataclass
class WindowRead:
    """Reads one entity's window records from Thred and remembers how (the check's metadata)."""

    reader: ThredReader
    spec: EntitySpec
    mode: ReadMode
    by_detail: int = 0  # businesses read by id
    by_list: int = 0  # businesses read by list (a 404 by id included)
    by_parent: int = 0  # businesses whose nested lists were read under the window's parents
    detail_misses: int = 0  # businesses whose read by id met a 404 and were listed again

    async def pairs(self, windows: list[BusinessWindow], in_scope: set[str]) -> Pairs:
        """Thred's items of the window's records, as (warehouse business id, item) pairs."""
        pairs: Pairs = []
        for window in windows:
            items = await self._business(window, in_scope)
            pairs += [(window.business_id, item) for item in items]
        return pairs

    @property
    def how(self) -> str:
        """``detail``, ``list``, ``parents`` or a mix (``detail+list``): how the check's
        businesses were read."""
        counts = (("detail", self.by_detail), ("parents", self.by_parent), ("list", self.by_list))
        return "+".join(name for name, n in counts if n) or "none"

    async def _business(self, window: BusinessWindow, in_scope: set[str]) -> list[dict[str, Any]]:
        if window.by_detail(self.spec, self.mode):
            found = await self.reader.guarded(window.business_id, self._details(window))
            if found is None:
                return []  # Thred refused the business: noted, not compared
            if all(item is not None for item in found):
                self.by_detail += 1
                return [item for item in found if item is not None]
            self.detail_misses += 1  # read as the list pass reads, so the loss reads the same
        parents = window.parents if self.mode is not ReadMode.LIST else None
        if parents is not None:
            self.by_parent += 1
        else:
            self.by_list += 1
        listed = self.reader.items(
            self.spec, window.business_id, window.thred_business, in_scope, parents
        )
        return await self.reader.guarded(window.business_id, listed) or []

    async def _details(self, window: BusinessWindow) -> list[dict[str, Any] | None]:
        """Every window record by id, at most ``DETAIL_CONCURRENCY`` at once; None on 404.

        All requests finish before the first error (if any) is raised, so none outlives the
        client.
        """
        gate = asyncio.Semaphore(DETAIL_CONCURRENCY)

        async def one(thred_id: str) -> dict[str, Any] | None:
            async with gate:
                return await thred_side.get_detail(
                    self.reader.client, window.thred_business, self.spec, thred_id
                )

        found = await asyncio.gather(*(one(t) for t in window.thred_ids), return_exceptions=True)
        for result in found:
            if isinstance(result, BaseException):
                raise result
        return [r for r in found if not isinstance(r, BaseException)]
