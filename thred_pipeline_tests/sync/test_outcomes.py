"""Typed outcomes: the counters Dagster plots, and what a setback is recorded as."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from thred_pipeline.core.records import Status, TimeWindow
from thred_pipeline.sync.outcomes import EntityRunResult, Outcome, Setback

WINDOW = TimeWindow(datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 2, tzinfo=UTC))


def test_metrics_keys_are_stable_and_marks_are_not_records() -> None:
    result = EntityRunResult("invoices", WINDOW)
    result.add("biz-1", Outcome.CREATED)
    result.add("biz-1", Outcome.TERMINAL)  # the same invoice, voided
    result.add("biz-2", Outcome.DEFERRED, {"source_id": "inv-9", "reason": "parent"})
    result.add("biz-2", Outcome.RELEASED)
    result.late["customers"][Outcome.TERMINAL.value] += 2

    metrics = result.metrics()
    assert list(metrics)[:10] == [
        "created",
        "updated",
        "unchanged",
        "terminal",
        "terminal_waiting",
        "released",
        "deferred",
        "rejected",
        "drift",
        "unknown",
    ]
    assert metrics["records"] == 2 and metrics["businesses"] == 2
    assert metrics["late_terminals"] == 2
    # Callers read the counters by plain name.
    assert result.counts["created"] == 1 and dict(result.per_business["biz-2"]) == {
        "deferred": 1,
        "released": 1,
    }
    assert result.samples["deferred"] == [{"source_id": "inv-9", "reason": "parent"}]


def test_samples_are_bounded() -> None:
    result = EntityRunResult("invoices", WINDOW)
    for n in range(50):
        result.add("biz-1", Outcome.REJECTED, {"source_id": f"inv-{n}"})
    assert result.counts["rejected"] == 50 and len(result.samples["rejected"]) == 20


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome.DEFERRED, Status.DEFERRED),
        (Outcome.REJECTED, Status.REJECTED),
        (Outcome.UNKNOWN, Status.UNKNOWN),
        (Outcome.DRIFT, Status.DRIFT),
        (Outcome.TERMINAL_WAITING, Status.SYNCED),  # synced, with the void/archive waiting
    ],
)
def test_a_setback_is_recorded_with_its_ledger_status(outcome: Outcome, status: Status) -> None:
    assert Setback(outcome, "code", "message").outcome.ledger_status is status


@pytest.mark.parametrize("outcome", [Outcome.CREATED, Outcome.UNCHANGED, Outcome.RELEASED])
def test_success_is_not_a_setback(outcome: Outcome) -> None:
    with pytest.raises(ValueError, match="not a setback"):
        Setback(outcome, "code", "message")
