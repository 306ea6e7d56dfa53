"""The retry policy without a network: backoff arithmetic, Retry-After, verdicts, failures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from thred_pipeline.thred.retry import (
    MIN_DELAY_S,
    RetryPolicy,
    backoff_cap,
    classify_transport_error,
    compute_delay,
    parse_retry_after,
)
from thred_pipeline_tests.thred.conftest import MaxJitter

NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
TOKEN = {"access_token": "t" * 40, "token_type": "Bearer", "expires_in": 3600}


class Zero:
    def uniform(self, a: float, b: float) -> float:
        return a


# -- backoff ------------------------------------------------------------------------------


def test_backoff_cap_doubles_then_caps() -> None:
    caps = [backoff_cap(n, 0.5, 30) for n in range(9)]
    assert caps == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_cap(10_000, 0.5, 30) == 30  # no overflow


def test_full_jitter_draws_from_zero_to_cap() -> None:
    calls: list[tuple[float, float]] = []

    class Spy:
        def uniform(self, a: float, b: float) -> float:
            calls.append((a, b))
            return (a + b) / 2

    delays = [compute_delay(n, base_s=0.5, max_s=30, rng=Spy()) for n in range(4)]
    assert calls == [(0, 0.5), (0, 1), (0, 2), (0, 4)]
    assert delays == [0.25, 0.5, 1, 2]


def test_delay_has_a_floor_and_a_cap() -> None:
    assert compute_delay(0, base_s=0.5, max_s=30, rng=Zero()) == MIN_DELAY_S
    assert compute_delay(20, base_s=0.5, max_s=30, rng=MaxJitter()) == 30
    assert compute_delay(0, base_s=0.5, max_s=0, rng=MaxJitter()) == MIN_DELAY_S


def test_seeded_rng_stays_inside_window() -> None:
    rng = random.Random(7)
    for n in range(12):
        delay = compute_delay(n, base_s=0.5, max_s=30, rng=rng)
        assert MIN_DELAY_S <= delay <= max(MIN_DELAY_S, backoff_cap(n, 0.5, 30))


def test_retry_after_is_a_minimum_and_capped() -> None:
    # The server's wait wins over a smaller jitter...
    assert compute_delay(0, base_s=0.5, max_s=30, rng=Zero(), retry_after_s=2) == 2
    # ...a larger backoff wins over Retry-After: 0 (no zero-delay retry storms)...
    assert compute_delay(3, base_s=0.5, max_s=30, rng=MaxJitter(), retry_after_s=0) == 4
    assert compute_delay(0, base_s=0.5, max_s=30, rng=Zero(), retry_after_s=0) == MIN_DELAY_S
    # ...and nothing exceeds backoff_max_s.
    assert compute_delay(0, base_s=0.5, max_s=30, rng=Zero(), retry_after_s=3600) == 30


# -- Retry-After parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("2", 2.0),
        (" 120 ", 120.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("", None),
        ("soon", None),
        ("nan", None),
        (None, None),
    ],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


def test_parse_retry_after_http_date() -> None:
    future = format_datetime(NOW + timedelta(seconds=7), usegmt=True)
    past = format_datetime(NOW - timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(future, now=NOW) == 7.0
    assert parse_retry_after(past, now=NOW) == 0.0
    # The obsolete RFC 850 / asctime forms are GMT too.
    assert parse_retry_after("Wed Jan 15 12:00:05 2025", now=NOW) == 5.0


# -- the policy object -----------------------------------------------------------------------


POLICY = RetryPolicy(max_attempts=4, backoff_base_s=0.5, backoff_max_s=30, budget_s=10)


def test_verdicts_grow_then_stop_at_max_attempts() -> None:
    verdicts = [POLICY.after_failure(n, spent_s=0, rng=MaxJitter()) for n in (1, 2, 3, 4)]
    assert [v.delay_s for v in verdicts[:3]] == [0.5, 1, 2]
    assert [v.give_up for v in verdicts[:3]] == ["", "", ""]
    assert verdicts[3].give_up == "4 attempts made"


def test_the_budget_stops_a_wait_that_would_end_past_it() -> None:
    assert POLICY.after_failure(1, spent_s=9.5, rng=MaxJitter()).give_up == ""
    late = POLICY.after_failure(2, spent_s=9.5, rng=MaxJitter())
    assert late.give_up.startswith("retry budget 10s would be exceeded")
    server_wait = POLICY.after_failure(1, spent_s=0, rng=Zero(), retry_after_s=11)
    assert server_wait.delay_s == 11 and "budget" in server_wait.give_up


def test_retry_after_is_a_floor_for_the_policy_too() -> None:
    assert POLICY.after_failure(1, spent_s=0, rng=Zero(), retry_after_s=0).delay_s == MIN_DELAY_S
    assert POLICY.after_failure(1, spent_s=0, rng=Zero(), retry_after_s=3).delay_s == 3


@pytest.mark.parametrize(
    ("status", "retried", "uncertain"),
    [
        (429, True, False),
        (500, True, True),
        (502, True, True),
        (503, True, True),
        (504, True, True),
        (501, False, True),
        (400, False, True),
        (409, False, True),
    ],
)
def test_which_statuses_are_retried_and_what_they_leave_open(
    status: int, retried: bool, uncertain: bool
) -> None:
    assert POLICY.retries_status(status) is retried
    if retried:  # a 429 is refused before processing; a 5xx may have been applied
        assert POLICY.status_is_uncertain(status) is uncertain


REQUEST = httpx.Request("POST", "https://thred.invalid/v1/platform/businesses/")


@pytest.mark.parametrize(
    ("exc", "retryable", "uncertain"),
    [
        (httpx.ConnectError("refused", request=REQUEST), True, False),
        (httpx.ConnectTimeout("slow", request=REQUEST), True, False),
        (httpx.PoolTimeout("pool", request=REQUEST), True, False),
        (httpx.ReadTimeout("read", request=REQUEST), True, True),
        (httpx.WriteTimeout("write", request=REQUEST), True, True),
        (httpx.RemoteProtocolError("dropped", request=REQUEST), True, True),
        (httpx.ReadError("reset", request=REQUEST), True, True),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), False, False),
        (httpx.LocalProtocolError("bad header", request=REQUEST), False, False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_transport_errors_say_whether_the_request_may_have_arrived(
    exc: httpx.RequestError, retryable: bool, uncertain: bool
) -> None:
    failure = classify_transport_error(exc)
    assert (failure.retryable, failure.uncertain) == (retryable, uncertain)
    assert failure.description.startswith(type(exc).__name__)
