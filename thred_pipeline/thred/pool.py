"""HTTP/1.1 connections kept for reuse at a constant cost per request.

httpcore's ``AsyncConnectionPool`` rescans every connection and every waiting request on each
request and on each response close, probing every idle socket as it goes: with the twenty
connections of a sync that bookkeeping was about a third of the sync process's CPU (issue 8's
profile: 3 million ``is_idle`` calls for 6,700 requests). Here idle connections wait on a stack
per origin, only the one taken is probed, and a semaphore bounds the connections in use.
Its sockets are asyncio's own (``network.AsyncioBackend``), not anyio's.

``LeanTransport`` is httpx's own transport with this pool in place of httpcore's. HTTP/1.1
only: Thred's API is HTTP/1.1 (``http_client`` never asks for HTTP/2). Proxies named by the
environment keep httpx's stock transports (``AsyncClient`` mounts them separately).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Self

import httpcore
import httpx

# httpx's request/response conversion and exception mapping: the transport below is httpx's
# ``AsyncHTTPTransport.handle_async_request`` with another pool, so it reuses them as they are.
from httpx._transports.default import AsyncResponseStream, map_httpcore_exceptions

from thred_pipeline.thred.network import AsyncioBackend

__all__ = ["LeanPool", "LeanTransport"]

Connection = httpcore.AsyncHTTPConnection
_Key = tuple[bytes, bytes, int]


def _key(origin: httpcore.Origin) -> _Key:
    """``httpcore.Origin`` compares by value but is not hashable."""
    return origin.scheme, origin.host, origin.port


class LeanPool:
    """Connections per origin, most recently used first; at most ``max_connections`` in use."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None, max_connections: int, keepalive_expiry: float
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive_expiry = keepalive_expiry
        self._network = AsyncioBackend()
        self._max_idle = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[_Key, list[Connection]] = {}
        self._open: set[Connection] = set()

    def __repr__(self) -> str:
        idle = sum(len(stack) for stack in self._idle.values())
        return f"LeanPool(open={len(self._open)}, idle={idle})"

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        await self._acquire(request)
        try:
            connection = await self._connection(request.url.origin)
            try:
                response = await connection.handle_async_request(request)
            except BaseException:
                await self._discard(connection)
                raise
        except BaseException:
            self._slots.release()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_Returned(response.stream, self, connection, request.url.origin),
            extensions=response.extensions,
        )

    async def _acquire(self, request: httpcore.Request) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        timeouts = request.extensions.get("timeout", {})
        try:
            await asyncio.wait_for(self._slots.acquire(), timeouts.get("pool"))
        except TimeoutError:
            raise httpcore.PoolTimeout("no connection became free in time") from None

    async def _connection(self, origin: httpcore.Origin) -> Connection:
        """The most recently used idle connection still open, or a new one."""
        stack = self._idle.get(_key(origin))
        while stack:
            connection = stack.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await self._discard(connection)
        connection = Connection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=self._network,
        )
        self._open.add(connection)
        return connection

    async def release(self, connection: Connection, origin: httpcore.Origin) -> None:
        """A response was closed: its connection is idle again, or it is closed for good."""
        try:
            if not connection.is_idle():
                await self._discard(connection)
                return
            stack = self._idle.setdefault(_key(origin), [])
            stack.append(connection)
            if len(stack) > self._max_idle:
                await self._discard(stack.pop(0))
        finally:
            self._slots.release()

    async def _discard(self, connection: Connection) -> None:
        self._open.discard(connection)
        await connection.aclose()

    async def aclose(self) -> None:
        connections, self._open = list(self._open), set()
        self._idle.clear()
        for connection in connections:
            await connection.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()


class _Returned:
    """A response body that gives its connection back to the pool when it is closed."""

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        pool: LeanPool,
        connection: Connection,
        origin: httpcore.Origin,
    ) -> None:
        self._stream = stream
        self._pool = pool
        self._connection = connection
        self._origin = origin
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            closing = getattr(self._stream, "aclose", None)
            if closing is not None:
                await closing()
        finally:
            await self._pool.release(self._connection, self._origin)


class LeanTransport(httpx.AsyncBaseTransport):
    """httpx's HTTP transport on a ``LeanPool``."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None, max_connections: int, keepalive_expiry: float
    ) -> None:
        self.pool = LeanPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
        )

    def __repr__(self) -> str:
        return f"LeanTransport({self.pool!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        sending = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with map_httpcore_exceptions():
            answer = await self.pool.handle_async_request(sending)
        assert isinstance(answer.stream, AsyncIterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=AsyncResponseStream(answer.stream),
            extensions=answer.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()
