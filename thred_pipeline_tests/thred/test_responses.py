"""What the client makes of an answer: error bodies, statuses, redirects, query strings.

Through ``httpx.MockTransport``: these are shapes a real Thred rarely sends on demand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from thred_pipeline.thred import (
    ThredClient,
    ThredError,
    ThredTransientError,
    ThredValidationError,
)
from thred_pipeline_tests.thred.conftest import FakeClock, MaxJitter, Sleeper, make_settings

pytestmark = pytest.mark.anyio

TOKEN = {"access_token": "t" * 40, "token_type": "Bearer", "expires_in": 3600}


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
