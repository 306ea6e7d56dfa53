"""``Sender.build`` builds exactly the request ``httpx.AsyncClient.build_request`` would.

``Sender.build`` merges the client's defaults once instead of on every request (issue 8
CPU); these tests hold it to httpx's own result, header for header and in order, so the
bytes on the wire do not change. Nothing is sent here: the requests are only built.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from thred_pipeline.thred.governor import RateGovernor
from thred_pipeline.thred.responses import Redactor
from thred_pipeline.thred.sending import Sender, http_client, rate_limits, retry_policy
from thred_pipeline.thred.stats import ThredClientStats
from thred_pipeline_tests.thred.conftest import make_settings

BODY = b'{"external_id":"inv-1","amount":1250}'


async def _sender(base_url: str, **overrides: Any) -> Sender:
    settings = make_settings(base_url, **overrides)
    stats = ThredClientStats()
    return Sender(
        http=http_client(settings, None, stats),
        policy=retry_policy(settings),
        governor=RateGovernor(rate_limits(settings), clock=lambda: 0.0),
        stats=stats,
        redactor=Redactor("secret"),
        sleep=asyncio.sleep,
        clock=lambda: 0.0,
        rng=random.Random(0),
    )


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    made = await _sender("http://127.0.0.1:8123", timeout_s=7.5, connect_timeout_s=1.5)
    yield made
    await made.http.aclose()


def _as_httpx(sender: Sender, method: str, path: str, **kwargs: Any) -> httpx.Request:
    params = kwargs.pop("params", None)
    return sender.http.build_request(
        method, path, params=tuple(params) if params else None, **kwargs
    )


def _same(ours: httpx.Request, theirs: httpx.Request) -> None:
    assert ours.method == theirs.method
    assert str(ours.url) == str(theirs.url)
    assert ours.url.raw_path == theirs.url.raw_path
    assert ours.headers.raw == theirs.headers.raw  # names as written, values, order
    assert ours.headers.encoding == theirs.headers.encoding
    assert ours.content == theirs.content
    assert ours.extensions == theirs.extensions
    assert isinstance(ours.stream, httpx.ByteStream)
    assert isinstance(theirs.stream, httpx.ByteStream)


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v1/platform/businesses/b1/invoices/", {"content": BODY}),
    (
        "POST",
        "/v1/platform/businesses/b1/invoices/",
        {"content": BODY, "headers": {"Content-Type": "application/json"}},
    ),
    (
        "put",
        "/v1/platform/businesses/b1/invoices/42/",
        {
            "content": BODY,
            "headers": {"Content-Type": "application/json", "Idempotency-Key": "k-1"},
        },
    ),
    ("POST", "/v1/platform/businesses/b1/token/", {}),
    ("PATCH", "/v1/platform/businesses/b1/invoices/42/", {"content": b""}),
    ("DELETE", "/v1/platform/businesses/b1/invoices/42/", {}),
    ("GET", "/v1/platform/businesses/", {}),
    (
        "GET",
        "/v1/platform/businesses/b1/invoices/",
        {"params": [("page", "2"), ("page_size", "100"), ("status", "a b&c"), ("x", "1")]},
    ),
    # A request's own header replaces a default of the same name (any case) and follows.
    ("GET", "/v1/platform/businesses/", {"headers": {"accept": "text/plain", "X-One": "1"}}),
    ("POST", "/v1/platform/oauth/token/", {"content": b"a=b", "headers": {"HOST": "elsewhere"}}),
    ("POST", "/v1/platform/x/", {"content": BODY, "headers": {"content-length": "99"}}),
    ("POST", "/v1/platform/x/", {"headers": {"Transfer-Encoding": "chunked"}}),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path", "kwargs"), CASES)
async def test_build_is_httpx_build_request(
    sender: Sender, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    for _ in range(2):  # the second time from the URL cache
        ours = sender.build(method, path, **kwargs)
        _same(ours, _as_httpx(sender, method, path, **kwargs))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "base_url", ["https://api.thred.example", "http://127.0.0.1:80/v1/platform/", "http://[::1]:9"]
)
async def test_build_matches_on_any_base_url(base_url: str) -> None:
    sender = await _sender(base_url)
    try:
        for method, path, kwargs in CASES:
            _same(sender.build(method, path, **kwargs), _as_httpx(sender, method, path, **kwargs))
    finally:
        await sender.http.aclose()


@pytest.mark.anyio
async def test_requests_do_not_share_headers_or_extensions(sender: Sender) -> None:
    first = sender.build("POST", "/v1/platform/x/", content=BODY)
    first.headers["Authorization"] = "Bearer t"
    first.extensions["timeout"]["read"] = 0.0
    second = sender.build("POST", "/v1/platform/x/", content=BODY)
    assert "Authorization" not in second.headers
    assert second.extensions["timeout"] == {"connect": 1.5, "read": 7.5, "write": 7.5, "pool": 7.5}


@pytest.mark.anyio
async def test_a_header_http_cannot_carry_fails_as_in_httpx(sender: Sender) -> None:
    with pytest.raises(UnicodeEncodeError):
        sender.http.build_request("GET", "http://x/", headers={"X-Key": "café"})
    with pytest.raises(UnicodeEncodeError):
        sender.build("GET", "/v1/platform/x/", headers={"X-Key": "café"})


@pytest.mark.anyio
async def test_a_client_with_default_params_is_left_to_httpx() -> None:
    sender = await _sender("http://127.0.0.1:8123")
    try:
        sender.http.params = httpx.QueryParams({"always": "1"})
        fallback = Sender(
            http=sender.http,
            policy=sender.policy,
            governor=sender.governor,
            stats=sender.stats,
            redactor=sender.redactor,
            sleep=sender.sleep,
            clock=sender.clock,
            rng=sender.rng,
        )
        assert fallback.defaults is None
        built = fallback.build("GET", "/v1/platform/x/", params=[("page", "1")])
        assert built.url.params == httpx.QueryParams([("always", "1"), ("page", "1")])
        _same(built, _as_httpx(fallback, "GET", "/v1/platform/x/", params=[("page", "1")]))
    finally:
        await sender.http.aclose()
