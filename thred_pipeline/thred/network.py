"""Sockets for httpcore on asyncio's own transports, without anyio in between.

httpcore reaches the network through anyio, which opens a cancel scope and yields to the loop
around every read and write: a tenth of the sync's CPU in issue 8's profile. The pipeline only
runs on asyncio (``loop.run``), so this backend uses asyncio's transports and protocol
callbacks directly, with ``asyncio.timeout`` for deadlines. It raises httpcore's own
exceptions, which httpx maps as it maps anyio's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any, cast

import httpcore

__all__ = ["AsyncioBackend"]

_MOST_BUFFERED = 256 * 1024  # bytes read ahead before the socket is paused


class _Socket(asyncio.Protocol):
    """Buffers what arrives; wakes the one reader or writer waiting on the connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.closed = False
        self.paused = False  # reading, while the buffer is over _MOST_BUFFERED
        self.error: BaseException | None = None
        self.readable: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _MOST_BUFFERED and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake_reader()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc
        self._wake_reader()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self.writable = self.writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_reader(self) -> None:
        if self.readable is not None and not self.readable.done():
            self.readable.set_result(None)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, socket: _Socket) -> None:
        self._socket = socket

    @property
    def _transport(self) -> asyncio.Transport:
        assert self._socket.transport is not None
        return self._socket.transport

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        socket = self._socket
        if not socket.buffer and not socket.closed:
            socket.readable = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await socket.readable
            except TimeoutError:
                raise httpcore.ReadTimeout("the server sent nothing in time") from None
            finally:
                socket.readable = None
        if socket.buffer:
            data = bytes(socket.buffer[:max_bytes])
            del socket.buffer[:max_bytes]
            if socket.paused and len(socket.buffer) <= _MOST_BUFFERED and not socket.closed:
                socket.paused = False
                self._transport.resume_reading()
            return data
        if socket.error is not None:
            raise httpcore.ReadError(str(socket.error) or type(socket.error).__name__)
        return b""  # the server closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        socket = self._socket
        if socket.closed or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self._transport.write(buffer)
        if socket.writable is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await socket.writable
        except TimeoutError:
            raise httpcore.WriteTimeout("the server took nothing in time") from None
        if socket.error is not None:
            raise httpcore.WriteError(str(socket.error) or type(socket.error).__name__)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                secure = await loop.start_tls(
                    self._transport, self._socket, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout("the TLS handshake did not finish in time") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from None
        self._socket.transport = cast(asyncio.Transport, secure)
        return self

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "is_readable":  # an idle connection the server closed or wrote to
            return bool(self._socket.buffer) or self._socket.closed or transport.is_closing()
        names = {
            "ssl_object": "ssl_object",
            "client_addr": "sockname",
            "server_addr": "peername",
            "socket": "socket",
        }
        return transport.get_extra_info(names[info]) if info in names else None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop (see the module docstring)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, socket = await loop.create_connection(
                    _Socket, host, port, local_addr=local
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection to {host}:{port} in time") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        for option in socket_options or ():
            transport.get_extra_info("socket").setsockopt(*option)
        return _Stream(socket)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, socket = await loop.create_unix_connection(_Socket, path)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection to {path} in time") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return _Stream(socket)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
