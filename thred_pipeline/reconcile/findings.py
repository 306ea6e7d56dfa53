"""What reconciliation reports: differences between the warehouse and Thred, and their verdict.

A difference is a statement about Thred's books: a record missing in Thred, a record Thred
holds that the warehouse does not, an amount or a state that differs, a duplicate. The ledger
only *explains* it (``Cause``); an explanation never removes a difference, it only chooses the
severity (see ``SeverityPolicy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd


class Kind(StrEnum):
    MISSING = "missing in Thred"
    EXTRA = "extra in Thred"
    DIFFERENT = "different in Thred"
    DUPLICATE = "duplicate in Thred"
    UNREADABLE = "cannot compare"


class Cause(StrEnum):
    """Why a difference exists, as far as the ledger and the warehouse can tell."""

    UNEXPLAINED = "unexplained"  # nothing we know of accounts for it: Thred lost or changed it
    QUARANTINED = "quarantined"  # the record was refused (bad source data or Thred's rule)
    WAITING = "waiting"  # deferred behind another record, or a void/archive waiting its turn
    IN_FLIGHT = "in flight"  # outcome uncertain, or changed after the synced window
    DRIFT = "drift"  # changed after creation in a way Thred cannot apply
    INACTIVE = "business inactive"  # the warehouse marks the business inactive: not synced


EXPLAINED = frozenset(Cause) - {Cause.UNEXPLAINED}

COLUMNS = (
    "check",
    "entity",
    "business_id",
    "source_id",
    "external_id",
    "thred_id",
    "kind",
    "field",
    "expected",
    "thred",
    "money_cents",
    "cause",
    "explanation",
)


def differences_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of differences as a frame with the stable ``COLUMNS`` (empty frames keep them)."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["money_cents"] = frame["money_cents"].fillna(0).astype("int64")
    return frame


@dataclass(frozen=True)
class SeverityPolicy:
    """How a failing check is graded; a difference never makes a check pass.

    - Any unexplained difference: ERROR (and a blocking check stops dependants).
    - Every difference explained (quarantined, waiting, in flight, drift, inactive): WARN —
      unless ``error_above_cents`` is set and the explained money at stake in one business
      exceeds it, then ERROR. Per-partition checks use no threshold, so one bad
      record never blocks the other records' dependants; the engine holds back its own children.
    """

    error_above_cents: int | None = None

    def severity(self, differences: pd.DataFrame) -> str | None:
        if differences.empty:
            return None
        if (differences["cause"] == Cause.UNEXPLAINED.value).any():
            return "ERROR"
        if self.error_above_cents is not None:
            at_stake = differences.groupby("business_id")["money_cents"].sum()
            if (at_stake > self.error_above_cents).any():
                return "ERROR"
        return "WARN"


@dataclass
class CheckReport:
    """One check's verdict: passed only when ``differences`` is empty."""

    name: str
    entity: str | None
    description: str
    differences: pd.DataFrame
    metrics: dict[str, int | float] = field(default_factory=dict)
    severity: str | None = None  # None when passed
    not_read: dict[str, str] = field(default_factory=dict)  # business -> why Thred was not read
    notes: list[str] = field(default_factory=list)  # facts that are not differences in the books

    @property
    def passed(self) -> bool:
        return self.differences.empty and not self.not_read

    def summary(self) -> str:
        notes = "".join(f"; {n}" for n in self.notes)
        if self.passed:
            return f"{self.description}: equal{notes}"
        parts = []
        if not self.differences.empty:
            by_kind = self.differences["kind"].value_counts()
            kinds = ", ".join(f"{n} {k}" for k, n in by_kind.items())
            money = int(self.differences["money_cents"].sum())
            unexplained = int((self.differences["cause"] == Cause.UNEXPLAINED.value).sum())
            parts.append(f"{kinds}; {money} minor units at stake; {unexplained} unexplained")
        if self.not_read:
            parts.append(f"{len(self.not_read)} business(es) could not be read from Thred")
        return f"{self.description}: " + "; ".join(parts) + notes
