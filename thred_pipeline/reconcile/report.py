"""The night's verdict, for people: a text summary, a markdown report per business, JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from thred_pipeline import entities
from thred_pipeline.reconcile.findings import (
    COLUMNS,
    CheckReport,
    balance_check_name,
    differences_frame,
)

EXIT_EQUAL = 0
EXIT_UNEXPLAINED = 1
EXIT_EXPLAINED_ONLY = 3
BALANCE_CHECKS = tuple(balance_check_name(side) for side in entities.BALANCES)
SHOWN = 20  # difference rows shown per check in text and markdown


@dataclass
class BooksReport:
    checks: list[CheckReport]
    as_of: datetime
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def differences(self) -> pd.DataFrame:
        frames = [c.differences for c in self.checks if not c.differences.empty]
        if not frames:
            return differences_frame([])
        return pd.concat(frames, ignore_index=True)[list(COLUMNS)]

    @property
    def verdict(self) -> str:
        """PASS (books equal), WARN (every difference explained) or FAIL."""
        severities = {c.severity for c in self.checks if not c.passed}
        if not severities:
            return "PASS"
        return "FAIL" if "ERROR" in severities else "WARN"

    @property
    def exit_code(self) -> int:
        return {"PASS": EXIT_EQUAL, "WARN": EXIT_EXPLAINED_ONLY}.get(self.verdict, EXIT_UNEXPLAINED)

    def money_at_stake(self) -> dict[str, int]:
        """Per business, in minor units: the money its differences put at stake.

        Record checks and balance checks see the same money twice (a missing invoice, and its
        customer's balance), so the business's figure is the larger of the two sums.
        """
        frame = self.differences
        if frame.empty:
            return {}
        balances = frame["check"].isin(BALANCE_CHECKS)
        per_level = pd.concat(
            [
                frame[~balances].groupby("business_id")["money_cents"].sum(),
                frame[balances].groupby("business_id")["money_cents"].sum(),
            ],
            axis=1,
        ).fillna(0)
        return {str(k): int(v) for k, v in per_level.max(axis=1).items()}

    def render_text(self) -> str:
        lines = []
        for check in self.checks:
            flag = "PASS" if check.passed else ("FAIL" if check.severity == "ERROR" else "WARN")
            lines.append(f"{flag} {check.name}: {check.summary()}")
            for business, why in sorted(check.not_read.items()):
                lines.append(f"     {business}: {why}")
            for row in check.differences.head(SHOWN).to_dict("records"):
                lines.append("     " + _one_line(row))
            hidden = len(check.differences) - SHOWN
            if hidden > 0:
                lines.append(f"     … and {hidden} more (--json for all)")
        stake = self.money_at_stake()
        if stake:
            lines.append(
                "money at stake per business (minor units): "
                + ", ".join(f"{b}={m}" for b, m in sorted(stake.items()))
            )
        lines.append(f"verdict: {self.verdict} (as of {self.as_of:%Y-%m-%d %H:%M} UTC)")
        return "\n".join(lines)

    def markdown(self, business_id: str) -> str:
        """One business's differences as a markdown report (Dagster metadata, runbooks)."""
        frame = self.differences
        frame = frame[frame["business_id"] == business_id]
        if frame.empty:
            return f"### Business {business_id}\n\nThred's books equal the warehouse's."
        stake = int(frame["money_cents"].sum())
        out = [
            f"### Business {business_id}",
            "",
            f"{len(frame)} differences, {stake} minor units at stake.",
            "",
            "| check | record | kind | field | warehouse | Thred | money | cause | why |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in frame.head(SHOWN * 5).to_dict("records"):
            cells = [
                row["check"],
                f"{row['entity']} {row['source_id'] or row['thred_id'] or '(business total)'}",
                row["kind"],
                row["field"] or "",
                row["expected"],
                row["thred"],
                row["money_cents"],
                row["cause"],
                row["explanation"],
            ]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(out)

    def to_json(self) -> str:
        return json.dumps(
            {
                "verdict": self.verdict,
                "as_of": self.as_of.isoformat(),
                "money_at_stake": self.money_at_stake(),
                "checks": [
                    {
                        "name": c.name,
                        "passed": c.passed,
                        "severity": c.severity,
                        "summary": c.summary(),
                        "metrics": c.metrics,
                        "not_read": c.not_read,
                        "differences": c.differences.to_dict("records"),
                    }
                    for c in self.checks
                ],
            },
            default=str,
            indent=2,
        )


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _one_line(row: dict[str, Any]) -> str:
    record = row["source_id"] or row["thred_id"]
    what = (
        f"{row['entity']} {record} (business {row['business_id']})"
        if record
        else f"business {row['business_id']}"
    )
    field_part = f" {row['field']}" if row["field"] else ""
    values = ""
    if row["expected"] is not None or row["thred"] is not None:
        values = f": warehouse {row['expected']} vs Thred {row['thred']}"
    money = f", {row['money_cents']} at stake" if row["money_cents"] else ""
    return f"{what}: {row['kind']}{field_part}{values}{money} [{row['cause']}] {row['explanation']}"
