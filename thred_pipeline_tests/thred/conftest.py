"""Fixtures for the Thred client tests: a real scripted HTTP server on 127.0.0.1.

``FakeThred`` is a tiny Starlette app run by uvicorn in a thread. It implements just enough
of Thred to exercise the client for real (Basic-auth partner tokens, business tokens bound
to one business, bearer checks) and lets a test queue exact replies per (method, path):
``fake.queue("GET", "/v1/platform/businesses/", Reply(503), Reply(200, {...}))``.

Retry delays go through ``Sleeper``, which records them and advances a ``FakeClock``
instead of sleeping, so backoff and budget tests run in milliseconds.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from thred_pipeline.thred import ThredClient, ThredSettings

PARTNER_ID = "3f2b9c1e-partner-0001"
API_KEY = "sk_test_9QeT4uVn7Lx2Rz8WpK3mHd6Y"
PREFIX = "/v1/platform/"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Reply:
    """One scripted response. ``text`` sends a raw non-JSON body instead of ``json``."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    text: str | None = None


@dataclass
class Seen:
    """A request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None


class FakeThred:
    """Scripted Thred stand-in (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.base_url = ""
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.token_lifetime_s: float = 3600
            self.tokens: dict[str, str | None] = {}  # token -> business id (None = partner)
            self.issued: list[tuple[str, str | None]] = []
            self.queued: dict[tuple[str, str], deque[Reply]] = {}
            self.routes: dict[tuple[str, str], Callable[[Seen], Reply]] = {}
            self.seen: list[Seen] = []

    # -- scripting -------------------------------------------------------------------
    def queue(self, method: str, path: str, *replies: Reply) -> None:
        with self._lock:
            self.queued.setdefault((method, path), deque()).extend(replies)

    def route(self, method: str, path: str, handler: Callable[[Seen], Reply]) -> None:
        with self._lock:
            self.routes[(method, path)] = handler

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def hits(self, method: str, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path == path]

    def token_hits(self, business_id: str | None = None) -> list[Seen]:
        if business_id is None:
            return self.hits("POST", PREFIX + "oauth2/token/")
        return self.hits("POST", f"{PREFIX}{business_id}/oauth2/token/")

    # -- HTTP ------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        seen = Seen(
            method=request.method,
            path=request.url.path,
            query=parse_qs(request.url.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        with self._lock:
            self.seen.append(seen)
            pending = self.queued.get((seen.method, seen.path))
            reply = pending.popleft() if pending else None
            handler = self.routes.get((seen.method, seen.path))
        if reply is None:
            reply = self._default(seen, handler)
        if reply.delay_s:
            await anyio.sleep(reply.delay_s)
        if reply.text is not None:
            return Response(reply.text, status_code=reply.status, headers=reply.headers)
        body = reply.json if reply.json is not None else {"ok": True, "path": seen.path}
        return JSONResponse(body, status_code=reply.status, headers=reply.headers)

    def _default(self, seen: Seen, handler: Callable[[Seen], Reply] | None) -> Reply:
        parts = seen.path[len(PREFIX) :].strip("/").split("/")
        if seen.path == PREFIX + "oauth2/token/":
            return self._partner_token(seen)
        if len(parts) == 3 and parts[1:] == ["oauth2", "token"]:
            return self._business_token(seen, parts[0])
        with self._lock:
            scope = self.tokens.get(seen.bearer or "", "missing")
        if scope == "missing":
            return Reply(401, {"error": "Invalid token", "error_code": "invalid_token"})
        if scope is not None and (len(parts) < 2 or parts[:2] != ["businesses", scope]):
            return Reply(403, {"error": "Wrong business", "error_code": "permission_denied"})
        if handler is not None:
            return handler(seen)
        return Reply(200, {"ok": True, "path": seen.path})

    def _issue(self, business_id: str | None) -> str:
        token = f"tok_{secrets.token_hex(16)}"
        with self._lock:
            self.tokens[token] = business_id
            self.issued.append((token, business_id))
        return token

    def _partner_token(self, seen: Seen) -> Reply:
        expected = base64.b64encode(f"{PARTNER_ID}:{API_KEY}".encode()).decode()
        form = parse_qs(seen.body.decode())
        if seen.headers.get("authorization") != f"Basic {expected}":
            return Reply(401, {"error": "Bad credentials", "error_code": "invalid_client"})
        if form.get("grant_type") != ["client_credentials"] or form.get("client_id") != [
            PARTNER_ID
        ]:
            return Reply(400, {"error": "bad grant", "error_code": "invalid_request"})
        token = self._issue(None)
        return Reply(
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime_s},
        )

    def _business_token(self, seen: Seen, business_id: str) -> Reply:
        with self._lock:
            scope = self.tokens.get(seen.bearer or "", "missing")
        if scope != "missing" and scope is not None:
            return Reply(403, {"error": "need partner token", "error_code": "permission_denied"})
        if scope == "missing":
            return Reply(401, {"error": "Invalid token", "error_code": "invalid_token"})
        token = self._issue(business_id)
        return Reply(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime_s,
                "scope": "business_access",
                "business_id": business_id,
            },
        )

    def app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=methods)])


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeThred]:
    fake = FakeThred()
    server, thread, port = _serve(fake.app())
    fake.base_url = f"http://127.0.0.1:{port}"
    yield fake
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def fake(_fake_server: FakeThred) -> FakeThred:
    _fake_server.reset()
    return _fake_server


class _DropHandler(BaseHTTPRequestHandler):
    """Answers token requests, then closes every other connection without a response."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.endswith("/oauth2/token/"):
            body = json.dumps(
                {"access_token": "tok_" + "d" * 32, "token_type": "Bearer", "expires_in": 3600}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        type(self).dropped += 1
        self.close_connection = True  # return without writing: the socket just closes

    dropped = 0
    do_GET = do_POST = do_PUT = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def drop_server() -> Iterator[str]:
    """Base URL of a server that accepts a request and hangs up without answering."""
    _DropHandler.dropped = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _DropHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


class TokenOnlyServer:
    """``drop_server``'s handler on its own port: tokens are served, other requests dropped.

    ``stop()`` closes it, so that a client holding its token then finds nothing listening.
    """

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _DropHandler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.stopped = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)


@pytest.fixture
def token_only_server() -> Iterator[TokenOnlyServer]:
    server = TokenOnlyServer()
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeper:
    """Injected sleep: records each delay and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        await anyio.sleep(0)


class MaxJitter:
    """RNG stub returning the top of every jitter window, so delays are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class Harness:
    client: ThredClient
    clock: FakeClock
    sleeper: Sleeper


def make_settings(base_url: str, **overrides: Any) -> ThredSettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "partner_id": PARTNER_ID,
        "api_key": API_KEY,
        "timeout_s": 2.0,
        "connect_timeout_s": 1.0,
    }
    values.update(overrides)
    return ThredSettings(**values)


@pytest.fixture
async def harness_factory() -> AsyncIterator[Callable[..., Harness]]:
    """Build clients against any base URL; all are closed at the end of the test."""
    made: list[ThredClient] = []

    def build(base_url: str, *, rng: Any = None, **overrides: Any) -> Harness:
        clock = FakeClock()
        sleeper = Sleeper(clock)
        client = ThredClient(
            make_settings(base_url, **overrides),
            sleep=sleeper,
            rng=rng or MaxJitter(),
            clock=clock,
        )
        made.append(client)
        return Harness(client, clock, sleeper)

    yield build
    for client in made:
        await client.aclose()


@pytest.fixture
def harness(fake: FakeThred, harness_factory: Callable[..., Harness]) -> Harness:
    return harness_factory(fake.base_url)


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    """Base URL of a real Thred sandbox for this session (its demo partner is built in)."""
    from thred_devtools.sandbox import SandboxConfig, start_sandbox

    with start_sandbox(SandboxConfig()) as running:
        yield running.url
