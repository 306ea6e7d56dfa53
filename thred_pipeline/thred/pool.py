"""httpx's transport for the Thred client: HTTP/1.1 connections kept at a constant cost.

httpcore's pool rescans every connection and every waiting request on each request, and its
HTTP/1.1 layer runs h11's pure-Python parser and a coroutine per event: together with anyio
over half of the sync process's CPU in issue 8's profiles. Here idle connections wait on a
stack per origin, most recently used first; only the one taken is checked (closed by the
server, past its keep-alive, told to close); a counter bounds the connections in use; and the
wire is ``http1.Connection`` (asyncio protocol + httptools' C parser).

A connection the server closed while idle is noticed when it is taken (its end of file
arrived) and replaced before anything is written. A connection that fails after the request
was written fails the request as httpcore did (``RemoteProtocolError`` or ``ReadError``), never
retried here: the server may have applied it, which only the retry policy above may weigh.

HTTP/1.1 only: Thred's API is HTTP/1.1 (``http_client`` never asks for HTTP/2). Proxies
named by the environment keep httpx's stock transports (``AsyncClient`` mounts them
separately, ``trust_env``).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import httpx

from thred_pipeline.thred.http1 import Answer, Connection

__all__ = ["LeanTransport"]

_Key = tuple[bytes, bytes, int | None]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


class LeanTransport(httpx.AsyncBaseTransport):
    """Connections per origin, most recently used first; at most ``max_connections`` in use."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None, max_connections: int, keepalive_expiry: float
    ) -> None:
        self._ssl_context = ssl_context
        self._keepalive = keepalive_expiry
        self._max = max_connections
        self._in_use = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._idle: dict[_Key, list[Connection]] = {}
        self._open: set[Connection] = set()

    def __repr__(self) -> str:
        idle = sum(len(stack) for stack in self._idle.values())
        return f"LeanTransport(open={len(self._open)}, idle={idle}, in_use={self._in_use})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        try:
            message = _message(request, await _body(request))
            if self._in_use < self._max:
                self._in_use += 1
            else:
                await self._wait_for_slot(timeouts.get("pool"))
            try:
                status, reason, headers, body, _ = await self._exchange(
                    key, request, message, timeouts
                )
            finally:
                self._release()
        except httpx.RequestError as exc:
            exc.request = request
            raise
        whole = b"".join(body)
        response = _WholeResponse(
            status,
            headers=headers,
            stream=httpx.ByteStream(whole),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )
        response.whole = whole
        return response

    async def _exchange(
        self, key: _Key, request: httpx.Request, message: bytes, timeouts: dict[str, Any]
    ) -> Answer:
        """The answer on a connection of ``key``'s, which goes back to the pool if it may."""
        connection = self._take(key)
        if connection is None:
            connection = await self._connect(key, request, timeouts.get("connect"))
        try:
            answer = await connection.exchange(
                message, request.method == "HEAD", timeouts.get("write"), timeouts.get("read")
            )
        except BaseException:
            self._drop(connection)
            raise
        if connection.usable:
            self._put_back(key, connection)
        else:
            self._drop(connection)
        return answer

    # -- connections ----------------------------------------------------------------------------

    def _take(self, key: _Key) -> Connection | None:
        """The most recently used idle connection that may still be used, if any."""
        stack = self._idle.get(key)
        if not stack:
            return None
        oldest_usable = asyncio.get_running_loop().time() - self._keepalive
        while stack:
            connection = stack.pop()
            transport = connection.transport
            if (
                connection.usable
                and connection.idle_since > oldest_usable
                and transport is not None
                and not transport.is_closing()
            ):
                return connection
            self._drop(connection)
        return None

    def _put_back(self, key: _Key, connection: Connection) -> None:
        connection.idle_since = asyncio.get_running_loop().time()
        stack = self._idle.get(key)
        if stack is None:
            stack = self._idle[key] = []
        stack.append(connection)
        if len(stack) > self._max:
            self._drop(stack.pop(0))

    def _drop(self, connection: Connection) -> None:
        self._open.discard(connection)
        connection.close()

    async def _connect(
        self, key: _Key, request: httpx.Request, connect_s: float | None
    ) -> Connection:
        scheme, raw_host, port = key
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"the URL scheme {scheme.decode()!r} is not supported")
        host, port = raw_host.decode("ascii"), port or _DEFAULT_PORTS[scheme]
        tls = None
        if scheme == b"https":
            tls = self._ssl_context or ssl.create_default_context()
        sni = (request.extensions.get("sni_hostname") or host) if tls else None
        loop = asyncio.get_running_loop()
        connection = Connection(loop)
        try:
            async with asyncio.timeout(connect_s):
                await loop.create_connection(
                    lambda: connection, host, port, ssl=tls, server_hostname=sni
                )
        except TimeoutError:
            connection.close()
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} in time") from None
        except OSError as exc:
            connection.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        self._open.add(connection)
        return connection

    # -- the bound on connections in use --------------------------------------------------------

    async def _wait_for_slot(self, pool_s: float | None) -> None:
        """Wait for a connection in use to be released; the releaser hands its slot over."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(pool_s):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot while being cancelled: pass it on
            else:
                turn.cancel()  # its place in the queue is skipped
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout("no connection became free in time") from None
            raise

    def _release(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on; in_use is unchanged
                return
        self._in_use -= 1

    async def aclose(self) -> None:
        connections, self._open = list(self._open), set()
        self._idle.clear()
        for connection in connections:
            connection.close()


class _WholeResponse(httpx.Response):
    """A response whose body arrived whole: reading it is taking it, unless it is encoded.

    httpx's ``aread`` passes every body through its decoder and chunker generators, a
    coroutine step per layer: 5% of the sync's CPU in a profile, for a body that is
    already one ``bytes``. An encoded body (gzip...) still takes httpx's way.
    """

    whole = b""

    async def aread(self) -> bytes:
        if hasattr(self, "_content") or "content-encoding" in self.headers:
            return await super().aread()
        self._content = self.whole
        self._num_bytes_downloaded = len(self.whole)
        self.is_stream_consumed = True
        await self.aclose()  # as httpx's own read ends: sets ``elapsed``
        return self._content


async def _body(request: httpx.Request) -> bytes:
    """The request body, read whole (Thred's requests are small JSON documents)."""
    try:
        return request.content
    except httpx.RequestNotRead:
        body = await request.aread()
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    return body


def _message(request: httpx.Request, body: bytes) -> bytes:
    """The request as it goes on the wire: the headers httpx built, in its order."""
    headers = request.headers.raw
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    lines = len(headers) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines:
        raise httpx.LocalProtocolError("a header name or value holds a line break")
    return head + body if body else head
