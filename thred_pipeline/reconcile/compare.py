"""Warehouse records against Thred's, one entity at a time: every difference, with its record,
business and money.

Each warehouse record must be in Thred with the same documented values, and Thred must hold
nothing the warehouse does not have. The ledger labels each difference (``explain``), nothing
more. Party balances are compared in ``parties``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from thred_pipeline.core.records import Status
from thred_pipeline.entities import Compared, EntitySpec
from thred_pipeline.entities.thred_values import Unreadable
from thred_pipeline.ledger import LedgerRow
from thred_pipeline.reconcile.explain import explain
from thred_pipeline.reconcile.findings import Cause, Kind, Where, difference, plain, whole


class RecordComparison:
    """One entity: the warehouse frame, Thred's items and the ledger, compared once."""

    def __init__(
        self,
        spec: EntitySpec,
        expected: pd.DataFrame,
        thred: pd.DataFrame,
        ledger: Mapping[str, LedgerRow],
        as_of: pd.Timestamp,
        check: str,
    ) -> None:
        self.spec = spec
        self.rule = spec.reconcile
        self.expected = expected
        self.thred = thred
        self.ledger = ledger
        self.as_of = as_of
        self.check = check
        self.rows: list[dict[str, Any]] = []
        self.matched = 0
        self.warehouse_only: dict[str, list[str]] = {}  # column -> source ids

    def _where(
        self,
        business_id: str,
        source_id: str | None,
        thred_id: str | None,
        external_id: str | None = None,
    ) -> Where:
        if external_id is None and source_id is not None:
            external_id = f"{self.spec.external_prefix}-{source_id}"
        return Where(self.check, self.spec.name, business_id, source_id, external_id, thred_id)

    def run(self, *, all_extras: bool = True) -> list[dict[str, Any]]:
        """Compare; ``all_extras=False`` (a window) reports only duplicates of its records."""
        ours = set(self.expected["source_id"])
        self._extras(ours, all_extras)
        found = self.thred[self.thred["source_id"].isin(ours)]
        merged = self.expected.merge(
            found, on="source_id", how="left", suffixes=("", "_thred"), indicator=True
        )
        for row in merged.to_dict("records"):
            if row["_merge"] == "left_only":
                self._missing(row)
            else:
                self.matched += 1
                self._fields(row)
        return self.rows

    def _extras(self, ours: set[str], all_extras: bool) -> None:
        label = self.spec.label
        our_external = {f"{self.spec.external_prefix}-{s}" for s in ours}
        headline = self.rule.headline
        for row in self.thred.to_dict("records"):
            source_id = row["source_id"]
            if source_id in ours:
                continue
            external = row.get("external_id")
            if source_id is None and external in our_external:
                kind = Kind.DUPLICATE
                why = (
                    f"a second {label} under our external_id; the ledger holds another "
                    "Thred id for it"
                )
            elif not all_extras:
                continue
            elif source_id is None:
                kind, why = Kind.EXTRA, f"a {label} in Thred that this pipeline never created"
            else:
                kind = Kind.EXTRA
                why = (
                    f"synced from warehouse record {source_id}, which is no longer in the "
                    "warehouse (or its business is inactive)"
                )
            money = whole(row.get(headline)) if headline else None
            where = self._where(row["business_id"], source_id, row["thred_id"], external)
            self.rows.append(
                difference(where, kind, Cause.UNEXPLAINED, why, thred=money, money=money or 0)
            )

    def _missing(self, row: dict[str, Any]) -> None:
        ledger_row = self.ledger.get(row["source_id"])
        cause, why = explain(ledger_row, row["version"], self.as_of)
        if (
            ledger_row is not None
            and ledger_row.status is Status.SYNCED
            and cause is Cause.UNEXPLAINED
        ):
            why = f"the ledger says Thred holds it (Thred id {ledger_row.thred_id}); Thred does not"
        headline = self.rule.headline
        money = whole(row.get(headline)) if headline else None
        thred_id = ledger_row.thred_id if ledger_row else None
        self.rows.append(
            difference(
                self._where(row["business_id"], row["source_id"], thred_id),
                Kind.MISSING,
                cause,
                why,
                field=headline,
                expected=money,
                money=money or 0,
            )
        )

    def _fields(self, row: dict[str, Any]) -> None:
        record_money = 0  # fields of one record restate the same money: count it once
        for compared in self.rule.columns:
            want = plain(row[compared.column])
            got = plain(row.get(f"{compared.column}_thred"))
            if got == want and not isinstance(got, Unreadable) and want is not None:
                continue
            money, record_money = _at_stake(compared, want, got, record_money)
            unreachable = self.rule.warehouse_only.get(compared.measure)
            if _is_different(want, got) and unreachable is not None and want == unreachable:
                self.warehouse_only.setdefault(compared.column, []).append(row["source_id"])
                continue
            self._field_difference(row, compared.column, want, got, money)

    def _field_difference(
        self, row: dict[str, Any], column: str, want: Any, got: Any, money: int
    ) -> None:
        cause, why = explain(self.ledger.get(row["source_id"]), row["version"], self.as_of)
        kind = Kind.DIFFERENT if _is_different(want, got) else Kind.UNREADABLE
        if want is None:
            why = f"the warehouse value cannot be read; {why}"
        elif cause is Cause.UNEXPLAINED:
            why = "Thred's value differs from the version the ledger says it confirmed"
        where = self._where(row["business_id"], row["source_id"], plain(row.get("thred_id")))
        self.rows.append(
            difference(where, kind, cause, why, field=column, expected=want, thred=got, money=money)
        )


def _is_different(want: Any, got: Any) -> bool:
    """Both sides readable and unequal (else the difference is "cannot compare")."""
    return not isinstance(got, Unreadable) and want is not None


def _at_stake(compared: Compared, want: Any, got: Any, counted: int) -> tuple[int, int]:
    """The money a field difference puts at stake beyond what the record's other fields
    already did, and the record's new running figure."""
    if not compared.money:
        return 0, counted
    w, g = whole(want), whole(got)
    money = abs(g - w) if w is not None and g is not None else (w or 0)
    return max(0, money - counted), max(money, counted)
