"""No key, Basic credential or token may appear in logs, exceptions or reprs.

Runs a spread of failing requests with every logger (ours, httpx, httpcore) captured at DEBUG,
including an error body that echoes the Authorization header back, and searches everything
the client produced for every secret the fake server knows about.
"""

from __future__ import annotations

import base64
import logging
import traceback
from collections.abc import Callable

import pytest

from thred_pipeline.thred import ThredConfigError, ThredError
from thred_pipeline_tests.thred.conftest import (
    API_KEY,
    PARTNER_ID,
    FakeThred,
    Harness,
    Reply,
    Seen,
    make_settings,
)

pytestmark = pytest.mark.anyio

B1 = "33333333-aaaa-4bbb-8ccc-000000000003"


def echo_authorization(seen: Seen) -> Reply:
    header = seen.headers.get("authorization", "")
    return Reply(
        400,
        {
            "error": f"header was {header}",
            "error_code": "validation_error",
            "details": {"authorization": [header], "nested": {"again": header}},
        },
    )


async def test_secrets_never_leak(
    fake: FakeThred,
    harness_factory: Callable[..., Harness],
    closed_port_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ThredError | ThredConfigError] = []

    async def attempt(coro: object) -> None:
        try:
            await coro  # type: ignore[misc]
        except (ThredError, ThredConfigError) as exc:
            errors.append(exc)

    h = harness_factory(fake.base_url, max_attempts=3, timeout_s=0.2)
    client = h.client
    bpath = f"businesses/{B1}/invoices/"
    full = f"/v1/platform/{bpath}"

    await client.request("GET", bpath, business_id=B1)  # mint partner + business tokens
    fake.route("POST", full, echo_authorization)
    await attempt(client.request("POST", bpath, business_id=B1, json={"external_id": "i"}))
    fake.route("GET", full, lambda _: Reply(503, {"error": "down"}))
    await attempt(client.request("GET", bpath, business_id=B1))
    fake.queue("PUT", full, Reply(401), Reply(401))
    await attempt(client.request("PUT", bpath, business_id=B1, json={}))
    fake.queue("PATCH", full, Reply(200, delay_s=1), Reply(200, delay_s=1), Reply(200, delay_s=1))
    await attempt(client.request("PATCH", bpath, business_id=B1, json={}))
    fake.revoke_tokens()
    fake.queue("POST", "/v1/platform/oauth2/token/", Reply(401), Reply(401))
    await attempt(client.request("GET", "businesses/"))

    wrong = harness_factory(fake.base_url, api_key="sk_test_WRONG_but_still_secret_1")
    await attempt(wrong.client.request("GET", "businesses/"))
    refused = harness_factory(closed_port_url, max_attempts=2)
    await attempt(refused.client.request("GET", "businesses/"))

    assert len(errors) == 7
    # revoked key, wrong key, nothing listening: the run's settings, not one record
    assert [type(e) for e in errors[-3:]] == [ThredConfigError] * 3
    wrong_key = "sk_test_WRONG_but_still_secret_1"
    secret_values = {
        API_KEY,
        f"{PARTNER_ID}:{API_KEY}",
        base64.b64encode(f"{PARTNER_ID}:{API_KEY}".encode()).decode(),
        wrong_key,
        base64.b64encode(f"{PARTNER_ID}:{wrong_key}".encode()).decode(),
        *(token for token, _ in fake.issued),
    }
    assert len(fake.issued) >= 3

    haystacks = [record.getMessage() for record in caplog.records]
    haystacks += [caplog.text]
    for err in errors:
        haystacks += [str(err), repr(err), "".join(traceback.format_exception(err))]
        haystacks += [repr(getattr(err, "details", {}))]
        assert err.__cause__ is None
        assert err.__context__ is None or isinstance(err.__context__, ThredError)
        assert "\n" not in str(err)
    haystacks += [repr(client), repr(make_settings(fake.base_url)), str(client.stats)]
    haystacks += [repr(client._tokens), repr(client._tokens.cache.peek(B1))]

    assert any("thred retry" in r.getMessage() for r in caplog.records)  # logging did happen
    for secret in secret_values:
        for text in haystacks:
            assert secret not in text, f"secret leaked into: {text[:200]!r}"

    echoed = next(e for e in errors if isinstance(e, ThredError) and e.status == 400)
    assert echoed.message == "header was Bearer <redacted>"
    assert echoed.details["nested"] == {"again": "Bearer <redacted>"}
