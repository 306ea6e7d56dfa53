"""Configuration mistakes surface as one ``ThredConfigError`` on the first request of a run.

Against the real sandbox (wrong key, wrong partner id), against small real HTTP servers that
are not Thred (``http.server`` answering HTML, 404, 405, 501, JSON that is not a token, a
redirect, a Basic-auth wall), against a port where nothing listens, a TLS handshake with a
plain-HTTP server and a host name that does not resolve.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from thred_pipeline.thred import (
    ThredAuthError,
    ThredConfigError,
    ThredError,
    ThredNotFoundError,
)
from thred_pipeline_tests.thred.conftest import FakeThred, Harness, Reply

pytestmark = pytest.mark.anyio

TOKEN_PATH = "/v1/platform/oauth2/token/"
SANDBOX_PARTNER, SANDBOX_KEY = "demo-partner", "sandbox-demo-key"
WRONG_KEY = "sk_test_wrong_but_secret_7f3a9c"


def _secrets(*keys: str) -> list[str]:
    return [k for k in keys if k]


def key_of(harness: Harness) -> str:
    return harness.client.settings.api_key.get_secret_value()


def assert_one_clean_line(err: ThredConfigError, *, forbidden: list[str]) -> str:
    text = str(err)
    assert "\n" not in text and text.strip() == text and text
    for secret in forbidden:
        assert secret not in text and secret not in repr(err)
    assert any(name in text for name in err.settings)
    return text


# -- the real sandbox --------------------------------------------------------------------------


async def test_sandbox_accepts_the_demo_partner(
    sandbox_url: str, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(sandbox_url, partner_id=SANDBOX_PARTNER, api_key=SANDBOX_KEY)
    await harness.client.check_connection()
    await harness.client.check_connection()  # cached: no second token request
    assert harness.client.stats.token_fetches == 1
    response = await harness.client.request("GET", "businesses/")
    assert response.status_code == 200
    assert harness.client.stats.token_fetches == 1


@pytest.mark.parametrize(
    ("partner_id", "api_key"),
    [(SANDBOX_PARTNER, WRONG_KEY), ("00000000-not-our-partner", SANDBOX_KEY)],
    ids=["wrong-key", "wrong-partner-id"],
)
async def test_sandbox_refuses_wrong_partner_credentials(
    sandbox_url: str, harness_factory: Callable[..., Harness], partner_id: str, api_key: str
) -> None:
    harness = harness_factory(sandbox_url, partner_id=partner_id, api_key=api_key)
    with pytest.raises(ThredConfigError) as info:
        await harness.client.check_connection()
    err = info.value
    assert err.reason == "credentials_refused"
    assert err.settings == ("THRED_PARTNER_ID", "THRED_API_KEY")
    text = assert_one_clean_line(err, forbidden=_secrets(api_key))
    assert "HTTP 401" in text and sandbox_url in text
    assert harness.sleeper.delays == []  # a refusal is final: no retry


async def test_business_requests_surface_the_partner_refusal(
    sandbox_url: str, harness_factory: Callable[..., Harness]
) -> None:
    """The first request of a sync is usually a business token: it must not become a
    per-business ``ThredAuthError`` (which would only pause that business)."""
    harness = harness_factory(sandbox_url, partner_id=SANDBOX_PARTNER, api_key=WRONG_KEY)
    business = "11111111-aaaa-4bbb-8ccc-000000000001"
    calls = [
        harness.client.request("GET", f"businesses/{business}/customers/", business_id=business)
        for _ in range(4)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ThredConfigError) for r in results), results
    assert harness.client.stats.token_fetches == 1  # the waiters shared the one refusal


async def test_a_refused_business_token_stays_a_business_problem(
    fake: FakeThred, harness: Harness
) -> None:
    business = "22222222-aaaa-4bbb-8ccc-000000000002"
    refused = Reply(403, {"error": "not yours", "error_code": "permission_denied"})
    fake.queue("POST", f"/v1/platform/{business}/oauth2/token/", refused)
    with pytest.raises(ThredAuthError) as info:
        await harness.client.request(
            "GET", f"businesses/{business}/customers/", business_id=business
        )
    assert info.value.business_id == business
    fake.queue(
        "POST",
        f"/v1/platform/{business}/oauth2/token/",
        Reply(404, {"error": "no such business", "error_code": "business_not_found"}),
    )
    with pytest.raises(ThredNotFoundError):
        await harness.client.request(
            "GET", f"businesses/{business}/customers/", business_id=business
        )


async def test_key_revoked_mid_run_stops_the_run(fake: FakeThred, harness: Harness) -> None:
    await harness.client.request("GET", "businesses/")
    fake.revoke_tokens()
    fake.queue("POST", TOKEN_PATH, Reply(401, {"error": "revoked", "error_code": "invalid_client"}))
    with pytest.raises(ThredConfigError) as info:
        await harness.client.request("GET", "businesses/")
    assert info.value.reason == "credentials_refused"


# -- servers that are not Thred -------------------------------------------------------------


class NotThred(BaseHTTPRequestHandler):
    """Answers every request with the class-level ``reply`` (status, headers, body)."""

    reply: tuple[int, dict[str, str], bytes] = (200, {}, b"")
    seen: list[str] = []

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append(f"{self.command} {self.path}")
        status, headers, body = self.reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GetOnly(BaseHTTPRequestHandler):
    """A static-file-like server: no do_POST, so http.server itself answers 501."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve_handler() -> Iterator[Callable[[type[BaseHTTPRequestHandler]], str]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        servers.append((httpd, thread))
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd, thread in servers:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


HTML = {"Content-Type": "text/html; charset=utf-8"}
JSON = {"Content-Type": "application/json"}
PAGE = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"


REDIRECT = {"Location": "https://api.example.net/v1/platform/oauth2/token/"}
TEXT = {"Content-Type": "text/plain"}
NOT_THRED = [
    pytest.param((200, HTML, PAGE), "HTML page", id="html-200"),
    pytest.param((404, HTML, PAGE), "HTTP 404", id="html-404"),
    pytest.param((405, JSON, b'{"detail": "Method not allowed"}'), "HTTP 405", id="json-405"),
    pytest.param((200, JSON, b'{"status": "ok"}'), "without access_token", id="json-status"),
    pytest.param((200, JSON, b'{"access_token": "abc"}'), "/token_type", id="no-token-type"),
    pytest.param((200, JSON, b"[1, 2]"), "JSON list", id="list"),
    pytest.param((200, TEXT, b""), "empty body", id="empty"),
    pytest.param((201, TEXT, b"hello"), "not JSON", id="text"),
    pytest.param((301, REDIRECT, b""), "to https://api.example.net;", id="redirect"),
]


@pytest.mark.parametrize(("reply", "expect"), NOT_THRED)
async def test_base_url_that_is_not_thred(
    serve_handler: Callable[[type[BaseHTTPRequestHandler]], str],
    harness_factory: Callable[..., Harness],
    reply: tuple[int, dict[str, str], bytes],
    expect: str,
) -> None:
    handler: type[NotThred] = type("Handler", (NotThred,), {"reply": reply, "seen": []})
    base_url = serve_handler(handler)
    harness = harness_factory(base_url)
    with pytest.raises(ThredConfigError) as info:
        await harness.client.request("GET", "businesses/")
    err = info.value
    assert (err.reason, err.settings) == ("not_thred", ("THRED_BASE_URL",))
    text = assert_one_clean_line(err, forbidden=[key_of(harness)])
    assert f"THRED_BASE_URL={base_url}" in text and expect in text, text
    assert handler.seen == [f"POST {TOKEN_PATH}"]  # nothing else was sent
    assert harness.sleeper.delays == []


async def test_server_without_post_is_not_thred(
    serve_handler: Callable[[type[BaseHTTPRequestHandler]], str],
    harness_factory: Callable[..., Harness],
) -> None:
    harness = harness_factory(serve_handler(GetOnly))
    with pytest.raises(ThredConfigError) as info:
        await harness.client.check_connection()
    assert info.value.reason == "not_thred" and "HTTP 501" in str(info.value)


async def test_basic_auth_wall_that_is_not_thred_names_the_url_too(
    serve_handler: Callable[[type[BaseHTTPRequestHandler]], str],
    harness_factory: Callable[..., Harness],
) -> None:
    reply = (401, {**HTML, "WWW-Authenticate": 'Basic realm="intranet"'}, PAGE)
    base_url = serve_handler(type("Handler", (NotThred,), {"reply": reply, "seen": []}))
    harness = harness_factory(base_url)
    with pytest.raises(ThredConfigError) as info:
        await harness.client.check_connection()
    err = info.value
    assert err.reason == "credentials_refused"
    assert err.settings == ("THRED_PARTNER_ID", "THRED_API_KEY", "THRED_BASE_URL")
    assert "HTML page" in str(err)


async def test_token_endpoint_5xx_stays_transient(fake: FakeThred, harness: Harness) -> None:
    """Thred is there but failing: that is an outage to retry, not a configuration error."""
    fake.queue("POST", TOKEN_PATH, *[Reply(503, {"error": "down"})] * 6)
    with pytest.raises(ThredError) as info:
        await harness.client.check_connection()
    assert info.value.status == 503


# -- nothing answers --------------------------------------------------------------------------


async def test_unreachable_after_bounded_retries(
    closed_port_url: str, harness_factory: Callable[..., Harness]
) -> None:
    harness = harness_factory(closed_port_url, max_attempts=4)
    with pytest.raises(ThredConfigError) as info:
        await harness.client.request("POST", "businesses/", json={"external_id": "b-1"})
    err = info.value
    assert (err.reason, err.settings) == ("unreachable", ("THRED_BASE_URL",))
    text = assert_one_clean_line(err, forbidden=[key_of(harness)])
    assert f"THRED_BASE_URL={closed_port_url}" in text and "4 attempts" in text
    assert len(harness.sleeper.delays) == 3  # the normal retries, then the verdict
    assert harness.client.stats.requests_by_method == {"POST": 1}


async def test_tls_handshake_failure_is_unreachable(
    fake: FakeThred, harness_factory: Callable[..., Harness]
) -> None:
    https_url = fake.base_url.replace("http://", "https://")  # a plain-HTTP server
    harness = harness_factory(https_url, max_attempts=2)
    with pytest.raises(ThredConfigError) as info:
        await harness.client.check_connection()
    assert info.value.reason == "unreachable"
    assert "SSL" in str(info.value) and https_url in str(info.value)
    assert fake.token_hits() == []


async def test_unknown_host_is_unreachable(harness_factory: Callable[..., Harness]) -> None:
    harness = harness_factory("http://thred-host.invalid", max_attempts=2)
    with pytest.raises(ThredConfigError) as info:
        await harness.client.check_connection()
    assert info.value.reason == "unreachable" and "thred-host.invalid" in str(info.value)


# -- the exception itself ---------------------------------------------------------------------


def test_config_error_is_not_a_record_error_and_survives_pickling() -> None:
    assert not issubclass(ThredConfigError, ThredError)
    err = ThredConfigError(
        "THRED_BASE_URL=http://x\nis\tnot Thred", settings=("THRED_BASE_URL",), reason="not_thred"
    )
    assert str(err) == "THRED_BASE_URL=http://x is not Thred"
    for again in (pickle.loads(pickle.dumps(err)), copy.copy(err)):
        assert type(again) is ThredConfigError
        assert (str(again), again.settings, again.reason) == (
            str(err),
            ("THRED_BASE_URL",),
            "not_thred",
        )
    assert json.dumps(str(err))  # plain text, fit for Dagster metadata
