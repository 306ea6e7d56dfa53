"""Pure ASGI middleware: request statistics and the body-size limit.

Order (outermost first): ``StatsMiddleware`` -> ``BodyLimitMiddleware`` -> ``FaultMiddleware``
-> the routes (the body is read before a fault can hang the request). The stats middleware
resolves the route template up front (so even a fault answered before routing is counted
under its template) and leaves ``sandbox.route``, ``sandbox.business_id`` and the server's
original ``receive`` in the scope.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match

from thred_devtools.sandbox import rules
from thred_devtools.sandbox.errors import error_body
from thred_devtools.sandbox.faults import ASGIApp, Message, Receive, Scope, Send
from thred_devtools.sandbox.state import Sandbox

__all__ = ["BodyLimitMiddleware", "StatsMiddleware"]

UNMATCHED = "<unmatched>"
_RESOLVED_CAP = 4096


def resolve_route(routes: Sequence[BaseRoute], scope: Scope) -> tuple[str, dict[str, Any]]:
    partial: tuple[str, dict[str, Any]] | None = None
    for route in routes:
        match, child = route.matches(scope)
        path = getattr(route, "path", UNMATCHED)
        if match == Match.FULL:
            return path, dict(child.get("path_params", {}))
        if match == Match.PARTIAL and partial is None:
            partial = (path, dict(child.get("path_params", {})))
    return partial or (UNMATCHED, {})


class StatsMiddleware:
    def __init__(
        self, app: ASGIApp, sandbox: Sandbox, routes: Callable[[], Sequence[BaseRoute]]
    ) -> None:
        self.app = app
        self.sandbox = sandbox
        self.routes = routes
        # (method, path) -> (template, path params): the route scan is a regex match per
        # route (~1 ms a request); a client repeats the same create paths, so memoise them.
        self._resolved: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = (str(scope.get("method", "")), str(scope.get("root_path", "")) + scope["path"])
        found = self._resolved.get(key)
        if found is None:
            if len(self._resolved) >= _RESOLVED_CAP:
                self._resolved.clear()
            found = self._resolved[key] = resolve_route(self.routes(), scope)
        template, params = found
        scope["sandbox.route"] = template
        scope["sandbox.business_id"] = params.get("business_id")
        scope["sandbox.raw_receive"] = receive
        status = [0]

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.sandbox.count_request(str(scope.get("method", "")), template, status[0])


async def _reject(send: Send, status: int, message: str, code: str) -> None:
    raw = json.dumps(error_body(message, code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw, "more_body": False})


class BodyLimitMiddleware:
    """Reads the body up front and refuses anything over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = f"Request body exceeds the limit of {self.max_bytes} bytes."
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "Invalid Content-Length.", "validation_error")
                    return
                if declared > self.max_bytes:
                    await _reject(send, 413, too_big, rules.BODY_TOO_LARGE_CODE)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away before sending the body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _reject(send, 413, too_big, rules.BODY_TOO_LARGE_CODE)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
