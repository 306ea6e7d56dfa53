"""The run tags the sensors read: a run's partition, its range, and the days it covers."""

from __future__ import annotations

import pytest

from thred_pipeline.sensors.runs import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    env_int,
    partition_days,
    partition_label,
    range_label,
)

DAY = {PARTITION_TAG: "2026-03-01"}
RANGE = {RANGE_START_TAG: "2026-02-27", RANGE_END_TAG: "2026-03-02"}
ONE_DAY_RANGE = {RANGE_START_TAG: "2026-03-01", RANGE_END_TAG: "2026-03-01"}


def test_a_partition_run_is_its_day() -> None:
    assert partition_label(DAY) == "2026-03-01"
    assert partition_days(DAY) == ["2026-03-01"]
    assert range_label(DAY) is None


def test_a_range_run_covers_every_day_of_its_range_across_a_month_end() -> None:
    assert partition_label(RANGE) == "2026-02-27...2026-03-02"
    assert partition_days(RANGE) == ["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]
    assert partition_label(ONE_DAY_RANGE) == "2026-03-01"
    assert partition_days(ONE_DAY_RANGE) == ["2026-03-01"]


def test_a_run_without_partition_covers_no_day() -> None:
    assert partition_label({}) is None
    assert partition_days({RANGE_START_TAG: "2026-03-01"}) == []  # half a range is none


def test_env_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THRED_TEST_RUNS", raising=False)
    assert env_int("THRED_TEST_RUNS", 7) == 7
    monkeypatch.setenv("THRED_TEST_RUNS", " 3 ")
    assert env_int("THRED_TEST_RUNS", 7) == 3
    monkeypatch.setenv("THRED_TEST_RUNS", "0")
    with pytest.raises(ValueError, match="THRED_TEST_RUNS must be at least 1, got 0"):
        env_int("THRED_TEST_RUNS", 7, minimum=1)
    monkeypatch.setenv("THRED_TEST_RUNS", "many")
    with pytest.raises(ValueError, match="THRED_TEST_RUNS must be a whole number, got 'many'"):
        env_int("THRED_TEST_RUNS", 7)
