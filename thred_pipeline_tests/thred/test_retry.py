"""Narrow unit tests: backoff arithmetic, Retry-After parsing, path helpers, error mapping."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from thred_pipeline.thred import (
    ThredClient,
    ThredError,
    ThredTransientError,
    ThredValidationError,
    business_resource,
    business_token_path,
    partner_token_path,
    platform_path,
)
from thred_pipeline.thred.retry import (
    MIN_DELAY_S,
    backoff_cap,
    compute_delay,
    parse_retry_after,
)
from thred_pipeline_tests.thred.conftest import FakeClock, MaxJitter, Sleeper, make_settings

pytestmark = pytest.mark.anyio

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


# -- paths ----------------------------------------------------------------------------------


def test_token_paths_are_asymmetric() -> None:
    assert partner_token_path() == "/v1/platform/oauth2/token/"
    assert business_token_path("b-1") == "/v1/platform/b-1/oauth2/token/"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("businesses/", "/v1/platform/businesses/"),
        ("businesses", "/v1/platform/businesses/"),
        ("/businesses/b1/invoices/payments", "/v1/platform/businesses/b1/invoices/payments/"),
        ("/v1/platform/businesses/", "/v1/platform/businesses/"),
    ],
)
def test_platform_path(given: str, expected: str) -> None:
    assert platform_path(given) == expected


@pytest.mark.parametrize(
    "bad",
    ["https://evil.example/businesses/", "//evil/x", "businesses/?page=2", "a/../b", "", "a b"],
)
def test_platform_path_refuses_unsafe(bad: str) -> None:
    with pytest.raises(ValueError):
        platform_path(bad)


def test_business_resource() -> None:
    assert business_resource("b1", "invoices", "payments") == "businesses/b1/invoices/payments/"
    assert business_resource("b1") == "businesses/b1/"
    with pytest.raises(ValueError):
        business_resource("../other", "invoices")


# -- errors ---------------------------------------------------------------------------------


def test_errors_pickle_and_render() -> None:
    err = ThredTransientError(
        "boom", outcome_uncertain=True, attempts=3, status=503, method="POST", path="/v1/x/"
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ThredTransientError
    assert (again.outcome_uncertain, again.attempts, again.status) == (True, 3, 503)
    assert str(again) == "POST /v1/x/: HTTP 503: boom"
    val = ThredValidationError("bad", status=400, error_code="validation_error", details={"a": 1})
    assert pickle.loads(pickle.dumps(val)).details == {"a": 1}
    assert isinstance(val, ThredError)


# -- MockTransport: body shapes and classification ------------------------------------------


def _mock_client(handler: Any, **overrides: Any) -> tuple[ThredClient, Sleeper]:
    clock = FakeClock()
    sleeper = Sleeper(clock)
    client = ThredClient(
        make_settings("https://thred.invalid", **overrides),
        transport=httpx.MockTransport(handler),
        sleep=sleeper,
        rng=MaxJitter(),
        clock=clock,
    )
    return client, sleeper


def _token_or(reply: httpx.Response) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token/"):
            return httpx.Response(200, json=TOKEN)
        return reply

    return handler


@pytest.mark.parametrize(
    ("body", "message", "code", "details"),
    [
        (
            {"error": "Invalid", "error_code": "validation_error", "details": {"email": ["x"]}},
            "Invalid",
            "validation_error",
            {"email": ["x"]},
        ),
        (
            {"error_code": "validation_error", "detail": "Invalid entity_type 'gmbh'"},
            "Invalid entity_type 'gmbh'",
            "validation_error",
            {},
        ),
        (
            {"email": ["Enter a valid email address."]},
            "Bad Request",
            None,
            {"email": ["Enter a valid email address."]},
        ),
    ],
)
async def test_error_body_shapes(
    body: dict[str, Any], message: str, code: str | None, details: dict[str, Any]
) -> None:
    client, _ = _mock_client(_token_or(httpx.Response(400, json=body)))
    async with client:
        with pytest.raises(ThredValidationError) as info:
            await client.request("POST", "businesses/", json={"external_id": "b-1"})
    assert (info.value.message, info.value.error_code, info.value.details) == (
        message,
        code,
        details,
    )


async def test_html_error_page_is_truncated_text() -> None:
    client, _ = _mock_client(_token_or(httpx.Response(418, text="<html>" + "x" * 5000)))
    async with client:
        with pytest.raises(ThredValidationError) as info:
            await client.request("GET", "businesses/")
    assert info.value.message.startswith("<html>")
    assert len(info.value.message) <= 501


async def test_non_retryable_5xx_is_transient_without_retry() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token/"):
            return httpx.Response(200, json=TOKEN)
        calls.append(request.url.path)
        return httpx.Response(501, json={"error": "nope"})

    client, sleeper = _mock_client(handler)
    async with client:
        with pytest.raises(ThredTransientError) as info:
            await client.request("GET", "businesses/")
    assert calls == ["/v1/platform/businesses/"]
    assert sleeper.delays == []
    assert info.value.outcome_uncertain is True


async def test_redirect_is_not_followed() -> None:
    reply = httpx.Response(301, headers={"Location": "https://elsewhere.invalid/"})
    client, _ = _mock_client(_token_or(reply))
    async with client:
        with pytest.raises(ThredError) as info:
            await client.request("GET", "businesses")
    assert info.value.status == 301


async def test_query_params_are_flattened() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth2/token/"):
            return httpx.Response(200, json=TOKEN)
        seen.append(request.url)
        return httpx.Response(200, json={})

    client, _ = _mock_client(handler)
    async with client:
        await client.request(
            "GET",
            "businesses/",
            params={
                "is_archived": False,
                "skip": None,
                "status": ["open", "paid"],
                "since": datetime(2025, 1, 1, tzinfo=UTC),
            },
        )
    assert seen[0].params.multi_items() == [
        ("is_archived", "false"),
        ("status", "open"),
        ("status", "paid"),
        ("since", "2025-01-01T00:00:00Z"),
    ]
