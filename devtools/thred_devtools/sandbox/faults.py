"""Fault injection for ``/v1/`` routes (never ``/_sandbox/``).

Switches (``FaultConfig``; set at start or at runtime with ``POST /_sandbox/faults``):

- ``latency_ms`` + uniform ``jitter_ms`` before each request;
- ``rate_limit_rps`` (+ ``rate_limit_burst``): a token bucket per business (routes without a
  business share one bucket), answering 429 ``rate_limited`` with ``Retry-After`` (whole
  seconds, at least 1);
- ``error_500_rate`` / ``error_502_rate`` / ``error_503_rate``: answer that status *before*
  the request is processed (nothing is committed);
- ``hang_rate``: sleep ``hang_s`` first, then process the request normally (a client with a
  shorter timeout gives up although the write may still commit later);
- ``drop_after_commit_rate`` (writes only): the request is processed and committed, then
  the response is never delivered. Under uvicorn the connection is cut with
  ``transport.abort()`` (the transport is reached through uvicorn's ``receive`` callable), so
  the client sees "server disconnected without sending a response" at once. Where that is
  not possible (another ASGI server, the in-process TestClient) the response is held for
  ``drop_stall_s`` instead, which a client experiences as a timeout.

The same settings carry two contract readings, ``extended_fields`` and
``duplicate_external_id`` (overrides of ``SandboxConfig``; see config.py). They change what
the routes answer, not this middleware.

One RNG seeded with ``seed`` makes the sequence of faults reproducible for a sequential
client. Every injected fault is counted (``/_sandbox/stats`` -> ``faults``).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.config import FaultConfig
from thred_devtools.sandbox.errors import error_body

__all__ = ["FaultController", "FaultMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FaultController:
    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.config = config
        self._rng = random.Random(config.seed)  # noqa: S311 - reproducible faults, not crypto
        self._buckets: dict[str, tuple[float, float]] = {}

    def configure(self, changes: dict[str, Any], replace: bool = False) -> FaultConfig:
        """Merge ``changes`` into the current settings (or replace them); re-seeds the RNG."""
        with self._lock:
            base = {} if replace else self.config.model_dump()
            config = FaultConfig.model_validate({**base, **changes})
            self.config = config
            self._rng = random.Random(config.seed)  # noqa: S311
            self._buckets.clear()
            return config

    def count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def retry_after(self, key: str) -> int | None:
        """None when the request may pass, else the seconds to wait."""
        rps = self.config.rate_limit_rps
        if not rps:
            return None
        burst = float(self.config.rate_limit_burst or max(1, math.ceil(rps)))
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + (now - last) * rps)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rps))

    def delay_s(self) -> float:
        cfg = self.config
        if not cfg.latency_ms and not cfg.jitter_ms:
            return 0.0
        with self._lock:
            jitter = self._rng.uniform(0, cfg.jitter_ms) if cfg.jitter_ms else 0.0
        return (cfg.latency_ms + jitter) / 1000.0

    def draw(self, is_write: bool) -> str | None:
        """One draw per request: "500" | "502" | "503" | "hang" | "drop" | None."""
        cfg = self.config
        bands = (
            ("500", cfg.error_500_rate),
            ("502", cfg.error_502_rate),
            ("503", cfg.error_503_rate),
            ("hang", cfg.hang_rate),
            ("drop", cfg.drop_after_commit_rate),
        )
        if not any(rate for _, rate in bands):
            return None
        with self._lock:
            roll = self._rng.random()
        edge = 0.0
        for kind, rate in bands:
            edge += rate
            if roll < edge:
                if kind == "drop" and not is_write:
                    return None
                return kind
        return None


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str]
) -> None:
    raw = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw, "more_body": False})


class FaultMiddleware:
    """Pure ASGI middleware; needs ``sandbox.business_id`` and ``sandbox.raw_receive`` in the
    scope (set by the outer stats middleware)."""

    def __init__(self, app: ASGIApp, controller: FaultController) -> None:
        self.app = app
        self.controller = controller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctl = self.controller
        if (
            scope["type"] != "http"
            or not str(scope.get("path", "")).startswith("/v1/")
            or not ctl.config.any_active()
        ):
            await self.app(scope, receive, send)
            return
        key = scope.get("sandbox.business_id") or "_partner"
        wait = ctl.retry_after(str(key))
        if wait is not None:
            ctl.count("429")
            body = error_body(
                f"Rate limit exceeded; retry after {wait} s.", rules.RATE_LIMITED_CODE
            )
            await _send_json(send, 429, body, {"Retry-After": str(wait)})
            return
        delay = ctl.delay_s()
        if delay > 0:
            ctl.count("latency")
            await asyncio.sleep(delay)
        kind = ctl.draw(scope.get("method", "GET") in WRITE_METHODS)
        if kind in ("500", "502", "503"):
            assert kind is not None
            ctl.count(kind)
            status = int(kind)
            body = error_body(f"Injected fault: HTTP {status}.", rules.SERVER_ERROR_CODE)
            headers = {"Retry-After": "1"} if status == 503 else {}
            await _send_json(send, status, body, headers)
            return
        if kind == "hang":
            ctl.count("hang")
            await asyncio.sleep(ctl.config.hang_s)
        if kind == "drop":
            ctl.count("drop_after_commit")
            await self._commit_then_drop(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _commit_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        raw_receive = scope.get("sandbox.raw_receive")
        cycle = getattr(raw_receive, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            scope["sandbox.dropped"] = True
            transport.abort()
            # Let uvicorn see the disconnect so it does not try to answer a 500.
            for _ in range(200):
                if getattr(cycle, "disconnected", True):
                    break
                await asyncio.sleep(0.001)
            return
        # Fallback: hold the committed response until the client has given up.
        await asyncio.sleep(self.controller.config.drop_stall_s)
        for message in held:
            await send(message)
