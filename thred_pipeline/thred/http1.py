"""One HTTP/1.1 connection: an asyncio protocol whose responses httptools' C parser reads.

Under httpcore every request went through h11's pure-Python state machine, httpcore's
per-request models and events, and a read loop of coroutine calls: with anyio gone, that was
still over a fifth of the sync process's CPU in issue 8's profile. Here a response is parsed
in C as its bytes arrive (``data_received`` feeds the parser; its callbacks collect the
status, headers and body), and the one coroutine waiting for it wakes once, when it is whole.
Thred's answers are small JSON documents, so a body is read whole, never streamed.

Failures are httpx's own exception classes, chosen as httpcore chose them, because
``retry.classify_transport_error`` decides from the class whether a write may have been
applied: a refused or timed-out connect was never sent, anything after the write may have been.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools
import httpx

__all__ = ["Answer", "Connection"]

# status, reason phrase, headers, body parts, whether the connection may be reused
Answer = tuple[int, bytes, list[tuple[bytes, bytes]], list[bytes], bool]

_LENGTH_HEADERS = frozenset({b"content-length", b"transfer-encoding"})


class Connection(asyncio.Protocol):
    """One socket to one origin, one exchange at a time (see the module docstring).

    ``usable`` turns False for good once the peer closed, an error happened, the server
    asked to close, or bytes came that no request asked for: the pool then drops it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.Transport | None = None
        self.usable = True
        self.idle_since = 0.0
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._last_read = 0.0
        self._head = False  # the request was HEAD: its answer has no body
        self._got_bytes = False  # some of this exchange's answer arrived
        self._headers_done = False
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []

    def __repr__(self) -> str:
        return f"Connection(usable={self.usable})"

    # -- the exchange ---------------------------------------------------------------------------

    async def exchange(
        self, message: bytes, head: bool, write_s: float | None, read_s: float | None
    ) -> Answer:
        """Write a whole request, return its whole answer (see ``Answer``)."""
        transport = self.transport
        if transport is None or not self.usable or transport.is_closing():
            raise httpx.WriteError("the connection is closed")
        loop = self._loop
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter, self._head, self._got_bytes = waiter, head, False
        try:
            try:
                transport.write(message)
            except (OSError, RuntimeError) as exc:
                self.usable = False
                raise httpx.WriteError(str(exc) or type(exc).__name__) from None
            if self._writable is not None:
                await self._drain(write_s)
            if read_s is None:
                return await waiter
            self._read_timeout, self._last_read = read_s, loop.time()
            self._timer = loop.call_at(self._last_read + read_s, self._check_read)
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # failed while writing: what the reader got is moot
            raise
        finally:
            self._waiter = None  # whatever comes now, no request asked for it
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    async def _drain(self, write_s: float | None) -> None:
        """Wait while the socket's send buffer is full (a large body, a slow server)."""
        try:
            async with asyncio.timeout(write_s):
                while self._writable is not None:
                    await asyncio.shield(self._writable)
        except TimeoutError:
            self.usable = False
            raise httpx.WriteTimeout("the server took the request too slowly") from None
        if self._waiter is not None and self._waiter.done():
            return  # the answer (or why there is none) already came
        if self.transport is None or self.transport.is_closing():
            self.usable = False
            raise httpx.WriteError("the connection closed while sending")

    def _check_read(self) -> None:
        """The read timeout: fires when the server sent nothing for ``read_s`` seconds."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        quiet_until = self._last_read + self._read_timeout
        if self._loop.time() < quiet_until:
            self._timer = self._loop.call_at(quiet_until, self._check_read)
            return
        self._fail(httpx.ReadTimeout("the server sent nothing in time"))

    def _fail(self, error: httpx.TransportError) -> None:
        self.usable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def _finish(self, keep_alive: bool) -> None:
        waiter = self._waiter
        status = self._parser.get_status_code()
        answer = (status, self._reason, self._headers, self._body, keep_alive)
        self._headers, self._body, self._headers_done = [], [], False
        if not keep_alive:
            self.usable = False
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.close()  # bytes no request asked for: nothing after them can be trusted
            return
        self._got_bytes = True
        if self._timer is not None:
            self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool:
        self._closed_by_peer(None)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed_by_peer(exc)
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _closed_by_peer(self, exc: Exception | None) -> None:
        self.usable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if exc is not None:
            self._fail(httpx.ReadError(str(exc) or type(exc).__name__))
        elif self._headers_done and not any(n.lower() in _LENGTH_HEADERS for n, _ in self._headers):
            self._finish(keep_alive=False)  # a body delimited by the end of the connection
        elif self._got_bytes:
            self._fail(httpx.RemoteProtocolError("the server closed the connection mid-answer"))
        else:
            self._fail(httpx.RemoteProtocolError("Server disconnected without sending a response."))

    def pause_writing(self) -> None:
        self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # a second answer to one request

    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status == 101 or status >= 200:
            self._headers_done = True
            if self._head:  # no body follows, whatever Content-Length says
                self._finish(keep_alive=False)

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._headers_done:  # 1xx: informational, the answer is still to come
            self._headers.clear()
            return
        self._finish(self._parser.should_keep_alive())
