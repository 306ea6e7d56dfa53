"""What reconciliation reports: differences between the warehouse and Thred, and their verdict.

A difference is a statement about Thred's books: a record missing in Thred, a record Thred
holds that the warehouse does not, an amount or a state that differs, a duplicate. The ledger
only *explains* it (``Cause``); an explanation never removes a difference, it only chooses the
severity (see ``SeverityPolicy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

from thred_pipeline.entities import Balances
from thred_pipeline.entities.thred_values import Unreadable


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


# A check's metadata: numbers Dagster can plot, and a few words (how Thred was read).
Metric = int | float | str

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


def plain(value: Any) -> Any:
    """Frame cells as plain Python values (``pd.NA``/NaN -> None, numpy ints -> int)."""
    if isinstance(value, Unreadable):
        return value
    if value is None or (not isinstance(value, str | bool) and pd.isna(value)):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def whole(value: Any) -> int | None:
    """A cell as an integer amount, or None when it is not one."""
    value = plain(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _shown(value: Any) -> Any:
    value = plain(value)
    return repr(value) if isinstance(value, Unreadable) else value


@dataclass(frozen=True)
class Where:
    """The record (or party, or business total) a difference is about."""

    check: str
    entity: str
    business_id: str
    source_id: str | None = None
    external_id: str | None = None
    thred_id: str | None = None


def difference(
    where: Where,
    kind: Kind,
    cause: Cause,
    explanation: str,
    *,
    field: str | None = None,
    expected: Any = None,
    thred: Any = None,
    money: int = 0,
) -> dict[str, Any]:
    """One row of ``COLUMNS``: unreadable values shown as such, money as a positive amount."""
    return {
        "check": where.check,
        "entity": where.entity,
        "business_id": where.business_id,
        "source_id": where.source_id,
        "external_id": where.external_id,
        "thred_id": where.thred_id,
        "kind": kind.value,
        "field": None if field is None else str(field),  # a Measure as its column name
        "expected": _shown(expected),
        "thred": _shown(thred),
        "money_cents": abs(money),
        "cause": cause.value,
        "explanation": explanation,
    }


def balance_check_name(side: Balances) -> str:
    """The books check of one side's party balances: "ar_balances", "ap_balances"."""
    return f"{side.name}_balances"


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
    metrics: dict[str, Metric] = field(default_factory=dict)
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


def finish_check(
    name: str,
    entity: str | None,
    description: str,
    rows: list[dict[str, Any]],
    policy: SeverityPolicy,
    metrics: Mapping[str, Metric],
    not_read: Mapping[str, str],
    not_read_severity: str = "ERROR",
) -> CheckReport:
    """A check's report; a business Thred would not show makes it fail, never pass."""
    differences = differences_frame(rows)
    report = CheckReport(
        name, entity, description, differences, dict(metrics), None, dict(not_read)
    )
    if not report.passed:
        severity = policy.severity(differences)
        if not_read and severity != "ERROR":
            severity = not_read_severity
        report.severity = severity
    report.metrics.update(_difference_metrics(differences))
    report.metrics["businesses_not_read"] = len(not_read)
    return report


def note_warehouse_only(check: CheckReport, noted: Mapping[str, list[str]]) -> None:
    """Values Thred cannot take (e.g. archived vendors): counted and named, not differences."""
    for column, ids in sorted(noted.items()):
        check.metrics[f"{column}_in_warehouse_only"] = len(ids)
        shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        check.notes.append(
            f"{len(ids)} {column} in the warehouse only, as Thred documents no way to set it "
            f"({shown})"
        )


def _difference_metrics(differences: pd.DataFrame) -> dict[str, int | float]:
    kinds = differences["kind"].value_counts()
    return {
        "differences": len(differences),
        "missing_in_thred": int(kinds.get(Kind.MISSING.value, 0)),
        "extra_in_thred": int(kinds.get(Kind.EXTRA.value, 0)),
        "different": int(kinds.get(Kind.DIFFERENT.value, 0)),
        "duplicates": int(kinds.get(Kind.DUPLICATE.value, 0)),
        "cannot_compare": int(kinds.get(Kind.UNREADABLE.value, 0)),
        "unexplained": int((differences["cause"] == Cause.UNEXPLAINED.value).sum()),
        "money_at_stake_cents": int(differences["money_cents"].sum()),
    }
