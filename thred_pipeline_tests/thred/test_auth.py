"""The token flow (``ThredAuth``) and the token cache, driven by hand: no HTTP at all.

httpx drives an auth flow by sending each response into the generator; these tests do the
same with ``httpx.Response`` objects, so every branch of the one 401 renewal path is seen.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from thred_pipeline.thred.auth import ThredAuth
from thred_pipeline.thred.tokens import TokenCache, TokenKey
from thred_pipeline_tests.thred.conftest import FakeClock

pytestmark = pytest.mark.anyio

URL = "https://thred.invalid/v1/platform/businesses/b-1/invoices/"


class Issuer:
    """A token source that numbers its tokens and records which scope asked."""

    def __init__(self, *, lifetime_s: float = 3600, delay_s: float = 0.0) -> None:
        self.asked: list[TokenKey] = []
        self.lifetime_s = lifetime_s
        self.delay_s = delay_s
        self.fail_with: Exception | None = None

    async def __call__(self, scope: TokenKey) -> tuple[str, float]:
        self.asked.append(scope)
        await asyncio.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        return f"tok-{scope}-{len(self.asked)}", self.lifetime_s


def cache_of(issuer: Issuer, clock: FakeClock | None = None, margin_s: float = 300) -> TokenCache:
    return TokenCache(issuer, clock=clock or FakeClock(), margin_s=margin_s)


def bearer(request: httpx.Request) -> str:
    return request.headers["Authorization"].removeprefix("Bearer ")


async def test_the_scope_token_is_added_and_fetched_once() -> None:
    issuer = Issuer()
    auth = ThredAuth(cache_of(issuer), "b-1")
    for _ in range(3):
        flow = auth.async_auth_flow(httpx.Request("GET", URL))
        sent = await flow.__anext__()
        assert bearer(sent) == "tok-b-1-1"
        with pytest.raises(StopAsyncIteration):
            await flow.asend(httpx.Response(200, request=sent))
    assert issuer.asked == ["b-1"]


async def test_a_401_renews_the_token_once_and_sends_again() -> None:
    issuer = Issuer()
    renewals: list[int] = []
    auth = ThredAuth(cache_of(issuer), None, on_renewal=lambda: renewals.append(1))
    flow = auth.async_auth_flow(httpx.Request("POST", URL, content=b"{}"))
    first = await flow.__anext__()
    assert bearer(first) == "tok-None-1"
    again = await flow.asend(httpx.Response(401, request=first, content=b'{"error": "x"}'))
    assert again is first and bearer(again) == "tok-None-2"  # the same request, new token
    # A second 401 ends the flow: httpx returns it and the client raises ThredAuthError.
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(401, request=again))
    assert issuer.asked == [None, None] and renewals == [1]


@pytest.mark.parametrize("status", [200, 403, 404, 503])
async def test_only_a_401_renews(status: int) -> None:
    issuer = Issuer()
    flow = ThredAuth(cache_of(issuer), "b-1").async_auth_flow(httpx.Request("GET", URL))
    sent = await flow.__anext__()
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(status, request=sent))
    assert issuer.asked == ["b-1"]


async def test_a_token_renewed_by_another_task_is_reused() -> None:
    """Two requests get a 401 with the same token: only one new token is fetched."""
    issuer = Issuer()
    auth = ThredAuth(cache_of(issuer), "b-1")
    flows = [auth.async_auth_flow(httpx.Request("GET", URL)) for _ in range(2)]
    sent = [await flow.__anext__() for flow in flows]
    resent = [
        await flow.asend(httpx.Response(401, request=s))
        for flow, s in zip(flows, sent, strict=True)
    ]
    assert {bearer(r) for r in resent} == {"tok-b-1-2"}
    assert issuer.asked == ["b-1", "b-1"]


async def test_the_sync_flow_is_refused() -> None:
    auth = ThredAuth(cache_of(Issuer()), None)
    with pytest.raises(TypeError, match="AsyncClient"):
        auth.sync_auth_flow(httpx.Request("GET", URL))


async def test_auth_and_cache_reprs_hold_no_token() -> None:
    cache = cache_of(Issuer())
    await cache.get("b-1")
    token = cache.peek("b-1")
    assert token is not None and token.value == "tok-b-1-1"
    for text in (repr(cache), repr(token), repr(ThredAuth(cache, "b-1"))):
        assert "tok-" not in text


# -- the cache -------------------------------------------------------------------------------


async def test_concurrent_callers_share_one_fetch_and_its_failure() -> None:
    issuer = Issuer(delay_s=0.01)
    cache = cache_of(issuer)
    tokens = await asyncio.gather(*(cache.get("b-1") for _ in range(10)))
    assert set(tokens) == {"tok-b-1-1"} and issuer.asked == ["b-1"]

    issuer.fail_with = RuntimeError("refused")
    cache.invalidate("b-1")
    results = await asyncio.gather(*(cache.get("b-1") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert issuer.asked == ["b-1", "b-1"]  # the waiters did not each try again

    issuer.fail_with = None  # a later caller (not a waiter) fetches afresh
    assert await cache.get("b-1") == "tok-b-1-3"


async def test_renewal_margin_is_at_most_half_the_lifetime() -> None:
    clock = FakeClock()
    issuer = Issuer(lifetime_s=3600)
    cache = cache_of(issuer, clock)
    await cache.get(None)
    clock.advance(3600 - 300 - 1)
    await cache.get(None)
    assert len(issuer.asked) == 1
    clock.advance(1)  # 300 s before expiry: renewed
    await cache.get(None)
    assert len(issuer.asked) == 2

    issuer.lifetime_s = 60  # shorter than the margin: renewed after half its life
    cache.clear()
    await cache.get(None)
    clock.advance(29)
    await cache.get(None)
    assert len(issuer.asked) == 3
    clock.advance(1)
    await cache.get(None)
    assert len(issuer.asked) == 4


async def test_a_stale_token_is_only_dropped_while_still_current() -> None:
    issuer = Issuer()
    cache = cache_of(issuer)
    old = await cache.get("b-1")
    new = await cache.get("b-1", stale=old)
    cache.invalidate("b-1", stale=old)  # someone else's late 401: the new token stays
    assert cache.peek("b-1") is not None and await cache.get("b-1") == new
