"""Behaviour of ThredClient against a real HTTP server on 127.0.0.1 (see conftest.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import pytest

from thred_pipeline.thred import (
    ThredAuthError,
    ThredConfigError,
    ThredError,
    ThredNotFoundError,
    ThredTransientError,
    ThredValidationError,
)
from thred_pipeline_tests.thred.conftest import (
    API_KEY,
    PARTNER_ID,
    FakeThred,
    Harness,
    Reply,
    Seen,
    TokenOnlyServer,
)

pytestmark = pytest.mark.anyio

BUSINESSES = "/v1/platform/businesses/"
B1, B2 = "11111111-aaaa-4bbb-8ccc-000000000001", "22222222-aaaa-4bbb-8ccc-000000000002"


def invoices(bid: str) -> str:
    return f"/v1/platform/businesses/{bid}/invoices/"


class Zero:
    def uniform(self, a: float, b: float) -> float:
        return a


# -- tokens ---------------------------------------------------------------------------------


async def test_partner_token_is_fetched_once_and_used_as_bearer(
    fake: FakeThred, harness: Harness
) -> None:
    for _ in range(3):
        response = await harness.client.request("GET", "businesses/")
        assert response.status_code == 200
        assert response.body == {"ok": True, "path": BUSINESSES}

    [token_call] = fake.token_hits()
    basic = base64.b64encode(f"{PARTNER_ID}:{API_KEY}".encode()).decode()
    assert token_call.headers["authorization"] == f"Basic {basic}"
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_call.body.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": [PARTNER_ID],
    }
    [(partner_token, scope)] = fake.issued
    assert scope is None
    assert {s.bearer for s in fake.hits("GET", BUSINESSES)} == {partner_token}
    assert harness.client.stats.token_fetches == 1


async def test_token_is_renewed_margin_seconds_before_expiry(
    fake: FakeThred, harness: Harness
) -> None:
    client, clock = harness.client, harness.clock
    await client.request("GET", "businesses/")
    clock.advance(3600 - 300 - 1)  # still inside the margin-adjusted lifetime
    await client.request("GET", "businesses/")
    assert len(fake.token_hits()) == 1
    clock.advance(2)  # now within 300 s of expiry
    await client.request("GET", "businesses/")
    assert len(fake.token_hits()) == 2
    newest = fake.issued[-1][0]
    assert fake.hits("GET", BUSINESSES)[-1].bearer == newest


async def test_short_lived_token_is_not_refetched_on_every_call(
    fake: FakeThred, harness: Harness
) -> None:
    fake.token_lifetime_s = 60  # shorter than the 300 s margin
    await harness.client.request("GET", "businesses/")
    await harness.client.request("GET", "businesses/")
    assert len(fake.token_hits()) == 1
    harness.clock.advance(31)  # past half the lifetime
    await harness.client.request("GET", "businesses/")
    assert len(fake.token_hits()) == 2


async def test_business_tokens_are_per_business(fake: FakeThred, harness: Harness) -> None:
    client = harness.client
    await client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)
    await client.request("GET", f"businesses/{B2}/invoices/", business_id=B2)
    await client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)

    partner_token = next(t for t, scope in fake.issued if scope is None)
    assert len(fake.token_hits()) == 1
    for bid in (B1, B2):
        [call] = fake.token_hits(bid)
        assert call.bearer == partner_token  # business tokens are minted with the partner's
    tokens = {scope: t for t, scope in fake.issued}
    assert tokens[B1] != tokens[B2]
    assert {s.bearer for s in fake.hits("GET", invoices(B1))} == {tokens[B1]}
    assert {s.bearer for s in fake.hits("GET", invoices(B2))} == {tokens[B2]}


async def test_concurrent_callers_share_one_token_fetch(fake: FakeThred, harness: Harness) -> None:
    client = harness.client
    calls = [
        client.request("GET", f"businesses/{bid}/invoices/", business_id=bid)
        for bid in (B1, B2) * 15
    ]
    await asyncio.gather(*calls)
    assert len(fake.token_hits()) == 1
    assert len(fake.token_hits(B1)) == 1
    assert len(fake.token_hits(B2)) == 1
    assert len(fake.hits("GET", invoices(B1))) == 15


async def test_waiters_share_a_failed_token_fetch(fake: FakeThred, harness: Harness) -> None:
    fake.queue("POST", f"/v1/platform/{B1}/oauth2/token/", Reply(403, delay_s=0.1))
    calls = [
        harness.client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)
        for _ in range(5)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ThredAuthError) for r in results), results
    assert len(fake.token_hits(B1)) == 1  # not one fetch per waiting caller


async def test_401_renews_the_token_once_and_retries(fake: FakeThred, harness: Harness) -> None:
    client = harness.client
    await client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)
    fake.revoke_tokens()  # server forgets every token: business and partner

    response = await client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)

    assert response.status_code == 200
    # business token: first fetch, a 401 with the revoked partner token, a fresh one.
    assert len(fake.token_hits(B1)) == 3
    assert len(fake.token_hits()) == 2
    assert [s.bearer is not None for s in fake.hits("GET", invoices(B1))] == [True] * 3
    assert harness.sleeper.delays == []  # auth renewal is not a backoff retry


async def test_persistent_401_raises_auth_error(fake: FakeThred, harness: Harness) -> None:
    unauthorized = Reply(401, {"error": "Token expired", "error_code": "invalid_token"})
    fake.queue("GET", invoices(B1), unauthorized, unauthorized)
    with pytest.raises(ThredAuthError) as info:
        await harness.client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)
    err = info.value
    assert (err.status, err.error_code, err.business_id) == (401, "invalid_token", B1)
    assert len(fake.hits("GET", invoices(B1))) == 2
    assert len(fake.token_hits(B1)) == 2


async def test_403_is_auth_error_and_not_retried(fake: FakeThred, harness: Harness) -> None:
    fake.queue(
        "POST", invoices(B1), Reply(403, {"error": "nope", "error_code": "permission_denied"})
    )
    with pytest.raises(ThredAuthError) as info:
        await harness.client.request(
            "POST", f"businesses/{B1}/invoices/", business_id=B1, json={"external_id": "i-1"}
        )
    assert info.value.error_code == "permission_denied"
    assert len(fake.hits("POST", invoices(B1))) == 1
    assert harness.sleeper.delays == []


async def test_wrong_credentials_are_a_config_error_without_retry(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, api_key="sk_test_wrong_key_000000000")
    with pytest.raises(ThredConfigError) as info:
        await harness.client.request("GET", "businesses/")
    err = info.value
    assert not isinstance(err, ThredError)  # per-record handlers must not swallow it
    assert (err.reason, err.settings) == (
        "credentials_refused",
        ("THRED_PARTNER_ID", "THRED_API_KEY"),
    )
    assert "/v1/platform/oauth2/token/" in str(err) and "HTTP 401" in str(err)
    assert len(fake.token_hits()) == 1
    assert fake.hits("GET", BUSINESSES) == []
    assert harness.sleeper.delays == []


async def test_unknown_business_token_is_not_found(fake: FakeThred, harness: Harness) -> None:
    fake.queue(
        "POST",
        f"/v1/platform/{B1}/oauth2/token/",
        Reply(404, {"error": "no such business", "error_code": "business_not_found"}),
    )
    with pytest.raises(ThredNotFoundError) as info:
        await harness.client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)
    assert (info.value.error_code, info.value.business_id) == ("business_not_found", B1)


async def test_token_scoped_to_another_business_is_refused(
    fake: FakeThred, harness: Harness
) -> None:
    fake.queue(
        "POST",
        f"/v1/platform/{B1}/oauth2/token/",
        Reply(200, {"access_token": "tok_" + "x" * 32, "expires_in": 3600, "business_id": B2}),
    )
    with pytest.raises(ThredAuthError) as info:
        await harness.client.request("GET", f"businesses/{B1}/invoices/", business_id=B1)
    assert info.value.error_code == "token_scope_mismatch"
    assert fake.hits("GET", invoices(B1)) == []


# -- permanent errors -------------------------------------------------------------------------


async def test_400_is_validation_error_with_details_and_never_retried(
    fake: FakeThred, harness: Harness
) -> None:
    body = {
        "error": "Invalid request",
        "error_code": "validation_error",
        "details": {"email": ["Enter a valid email address."]},
    }
    fake.queue("POST", BUSINESSES, Reply(400, body))
    with pytest.raises(ThredValidationError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "biz-1"})
    err = info.value
    assert (err.status, err.error_code, err.message) == (400, "validation_error", "Invalid request")
    assert err.details == {"email": ["Enter a valid email address."]}
    assert (err.method, err.path) == ("POST", BUSINESSES)
    assert len(fake.hits("POST", BUSINESSES)) == 1
    assert harness.sleeper.delays == []
    assert harness.client.stats.retries == 0


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, ThredNotFoundError), (409, ThredValidationError), (422, ThredValidationError)],
)
async def test_other_4xx_are_final(
    fake: FakeThred, harness: Harness, status: int, cls: type[ThredError]
) -> None:
    fake.queue("GET", BUSINESSES, Reply(status, {"error": "x", "error_code": f"code_{status}"}))
    with pytest.raises(cls) as info:
        await harness.client.request("GET", "businesses/")
    assert info.value.status == status
    assert len(fake.hits("GET", BUSINESSES)) == 1


# -- transient errors and retries ---------------------------------------------------------------


async def test_503_then_201_retries_post_with_same_idempotency_key(
    fake: FakeThred, harness: Harness
) -> None:
    path = f"/v1/platform/businesses/{B1}/invoices/payments/"
    fake.queue("POST", path, Reply(503), Reply(201, {"id": "pay-1"}))
    payload = {"amount_cents": 1250, "currency": "GBP"}
    response = await harness.client.request(
        "POST",
        f"businesses/{B1}/invoices/payments/",
        business_id=B1,
        json=payload,
        idempotency_key="pay-42",
    )
    assert (response.status_code, response.created, response.body) == (201, True, {"id": "pay-1"})
    attempts = fake.hits("POST", path)
    assert [s.headers["idempotency-key"] for s in attempts] == ["pay-42", "pay-42"]
    assert [json.loads(s.body) for s in attempts] == [payload, payload]
    assert harness.sleeper.delays == [0.5]  # full jitter window [0, base*2**0]
    assert harness.client.stats.retries == 1


async def test_idempotent_replay_is_200_not_created(fake: FakeThred, harness: Harness) -> None:
    fake.queue("POST", BUSINESSES, Reply(200, {"id": "b-1", "_meta": {"created": False}}))
    response = await harness.client.request("POST", "businesses/", json={"external_id": "x"})
    assert (response.status_code, response.created) == (200, False)


async def test_5xx_exhaustion_is_uncertain(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, max_attempts=4)
    fake.route("POST", BUSINESSES, lambda _: Reply(500, {"error": "oops"}))
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b"})
    err = info.value
    assert (err.status, err.attempts, err.outcome_uncertain) == (500, 4, True)
    assert len(fake.hits("POST", BUSINESSES)) == 4
    assert harness.sleeper.delays == [0.5, 1.0, 2.0]


async def test_429_exhaustion_is_certain_and_counts_retry_after_zero(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, rng=Zero())
    fake.route("POST", BUSINESSES, lambda _: Reply(429, headers={"Retry-After": "0"}))
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b"})
    assert (info.value.status, info.value.outcome_uncertain) == (429, False)
    assert len(fake.hits("POST", BUSINESSES)) == 6  # every Retry-After: 0 retry is counted
    assert harness.sleeper.delays == [0.05] * 5  # never a zero-delay busy loop


async def test_retry_after_zero_still_backs_off_exponentially(
    fake: FakeThred, harness: Harness
) -> None:
    fake.queue("GET", BUSINESSES, *[Reply(429, headers={"Retry-After": "0"})] * 3)
    await harness.client.request("GET", "businesses/")
    assert harness.sleeper.delays == [0.5, 1.0, 2.0]  # MaxJitter: the backoff still grows


async def test_retry_after_seconds_is_honoured(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, rng=Zero())
    fake.queue("GET", BUSINESSES, Reply(429, headers={"Retry-After": "2"}))
    await harness.client.request("GET", "businesses/")
    assert harness.sleeper.delays == [2.0]


async def test_retry_after_http_date_is_honoured(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, rng=Zero())
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    fake.queue("GET", BUSINESSES, Reply(503, headers={"Retry-After": when}))
    await harness.client.request("GET", "businesses/")
    [delay] = harness.sleeper.delays
    assert 3.5 <= delay <= 5.0  # HTTP-dates have one-second resolution


async def test_retry_after_is_capped_by_backoff_max(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, backoff_max_s=10)
    fake.queue("GET", BUSINESSES, Reply(429, headers={"Retry-After": "3600"}))
    await harness.client.request("GET", "businesses/")
    assert harness.sleeper.delays == [10]


async def test_retry_budget_stops_before_max_attempts(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, backoff_base_s=4, retry_budget_s=10, max_attempts=10)
    fake.route("GET", BUSINESSES, lambda _: Reply(503))
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("GET", "businesses/")
    # waits 4 (t=4), then the next wait of 8 would end at 12 > 10: give up.
    assert harness.sleeper.delays == [4]
    assert len(fake.hits("GET", BUSINESSES)) == 2
    assert info.value.attempts == 2
    assert "budget" in info.value.message


async def test_uncertainty_is_sticky_across_attempts(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, max_attempts=3)
    fake.queue("POST", BUSINESSES, Reply(502), Reply(429), Reply(429))
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b"})
    # The last answer was a 429, but the 502 may have been processed.
    assert (info.value.status, info.value.outcome_uncertain) == (429, True)


async def test_read_timeout_is_retried_then_uncertain(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, timeout_s=0.2, max_attempts=2)
    await harness.client.request("GET", "businesses/")  # warm the token
    fake.queue("POST", BUSINESSES, Reply(201, delay_s=1.0), Reply(201, delay_s=1.0))
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b"})
    err = info.value
    assert (err.status, err.outcome_uncertain, err.attempts) == (None, True, 2)
    assert "ReadTimeout" in err.message
    assert err.__cause__ is None and err.__context__ is None


async def test_read_timeout_then_success(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url, timeout_s=0.2)
    fake.queue("GET", BUSINESSES, Reply(200, delay_s=1.0))
    response = await harness.client.request("GET", "businesses/")
    assert response.status_code == 200
    assert harness.client.stats.retries == 1
    assert harness.client.stats.transport_errors == 1


async def test_connection_refused_is_certain(
    token_only_server: TokenOnlyServer, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(token_only_server.base_url, max_attempts=3)
    await harness.client.check_connection()  # the partner token is cached
    token_only_server.stop()  # now nothing listens on that port
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b"})
    err = info.value
    assert (err.outcome_uncertain, err.attempts, err.status) == (False, 3, None)
    assert err.path == BUSINESSES
    assert len(harness.sleeper.delays) == 2


async def test_dropped_connection_is_uncertain(
    drop_server: str, harness_factory: Callable[..., Harness]
) -> None:
    from thred_pipeline_tests.thred.conftest import _DropHandler

    harness = harness_factory(drop_server, max_attempts=2)
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b"})
    err = info.value
    assert (err.outcome_uncertain, err.attempts) == (True, 2)
    assert _DropHandler.dropped == 2
    assert err.__cause__ is None and err.__context__ is None


async def test_non_json_2xx_is_uncertain(fake: FakeThred, harness: Harness) -> None:
    fake.queue("POST", BUSINESSES, Reply(201, text="<html>gateway ok</html>"))
    with pytest.raises(ThredTransientError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b"})
    assert (info.value.error_code, info.value.outcome_uncertain) == ("invalid_response", True)


async def test_empty_2xx_body_is_none(fake: FakeThred, harness: Harness) -> None:
    fake.queue("DELETE", BUSINESSES + "b-1/", Reply(204, text=""))
    response = await harness.client.request("DELETE", "businesses/b-1/")
    assert (response.status_code, response.body) == (204, None)


# -- pagination ----------------------------------------------------------------------------------


def paginated(total: int, *, style: str = "both") -> Callable[[Seen], Reply]:
    items = [{"id": f"c-{i}"} for i in range(total)]

    def handler(seen: Seen) -> Reply:
        page = int(seen.query["page"][0])
        size = int(seen.query["page_size"][0])
        pages = max(1, math.ceil(total / size))
        chunk = items[(page - 1) * size : page * size]
        body: dict[str, Any] = {"count": total, "results": chunk}
        if style in ("both", "page_info"):
            body["page_info"] = {
                "total_count": total,
                "current_page": page,
                "total_pages": pages,
                "page_size": size,
            }
        if style in ("both", "next"):
            body["next"] = f"https://evil.invalid/?page={page + 1}" if page < pages else None
            body["previous"] = None
        return Reply(200, body)

    return handler


@pytest.mark.parametrize("style", ["both", "page_info", "next", "bare"])
async def test_iter_pages_walks_every_page(fake: FakeThred, harness: Harness, style: str) -> None:
    path = f"/v1/platform/businesses/{B1}/customers/"
    fake.route("GET", path, paginated(250, style=style))
    items = [
        item
        async for item in harness.client.iter_pages(
            f"businesses/{B1}/customers/", business_id=B1, params={"status": "active"}
        )
    ]
    assert [i["id"] for i in items] == [f"c-{i}" for i in range(250)]
    hits = fake.hits("GET", path)
    assert [h.query["page"] for h in hits] == [["1"], ["2"], ["3"]]
    assert all(h.query["page_size"] == ["100"] and h.query["status"] == ["active"] for h in hits)


async def test_iter_pages_exact_multiple_and_empty(fake: FakeThred, harness: Harness) -> None:
    fake.route("GET", BUSINESSES, paginated(200, style="bare"))
    assert len([i async for i in harness.client.iter_pages("businesses/")]) == 200
    assert len(fake.hits("GET", BUSINESSES)) == 3  # the third page is empty and ends it
    fake.route("GET", BUSINESSES, paginated(0))
    assert [i async for i in harness.client.iter_pages("businesses/")] == []


async def test_iter_pages_rejects_bad_page_size(harness: Harness) -> None:
    with pytest.raises(ValueError):
        async for _ in harness.client.iter_pages("businesses/", page_size=101):
            pass


async def test_get_count(fake: FakeThred, harness: Harness) -> None:
    fake.route("GET", BUSINESSES, paginated(42))
    assert await harness.client.get_count("businesses/", params={"country": "GB"}) == 42
    [hit] = fake.hits("GET", BUSINESSES)
    assert hit.query == {"country": ["GB"], "page": ["1"], "page_size": ["1"]}


# -- stats -----------------------------------------------------------------------------------


async def test_stats_are_plain_numbers(fake: FakeThred, harness: Harness) -> None:
    client = harness.client
    fake.queue("POST", BUSINESSES, Reply(503), Reply(201, {"id": "b"}))
    await client.request("POST", "businesses/", json={"external_id": "b"})
    await client.request("GET", "businesses/")
    fake.queue("GET", BUSINESSES, Reply(400))
    with pytest.raises(ThredValidationError):
        await client.request("GET", "businesses/")

    stats = client.stats
    assert stats.requests == 3
    assert stats.requests_by_method == {"POST": 1, "GET": 2}
    assert stats.writes == 1
    assert stats.retries == 1
    assert stats.token_fetches == 1
    assert stats.http_attempts == 5  # token + 2 POST + 2 GET
    assert stats.responses_by_status == {200: 2, 201: 1, 400: 1, 503: 1}
    assert stats.elapsed_s > 0
    metrics = stats.as_metrics()
    assert metrics["thred_requests_get"] == 2
    assert metrics["thred_status_503"] == 1
    assert all(type(v) in (int, float) for v in metrics.values())


async def test_base_url_may_include_the_api_prefix(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(fake.base_url + "/v1/platform/")
    await harness.client.request("GET", "businesses/")
    assert len(fake.hits("GET", BUSINESSES)) == 1
