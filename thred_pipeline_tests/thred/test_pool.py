"""``LeanTransport`` against a real HTTP/1.1 server on 127.0.0.1 that counts its connections.

The server is a few lines of asyncio so each test can make it misbehave the way servers do:
close after a response, close an idle socket, answer late or never.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from thred_pipeline.thred.pool import LeanTransport


@pytest.fixture(
    params=[("asyncio", {}), ("asyncio", {"use_uvloop": True})], ids=["asyncio", "uvloop"]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both loops the pipeline runs on (``thred.loop``): their transports differ."""
    return request.param  # type: ignore[no-any-return]


@dataclass
class Server:
    """Answers every request ``200 ok``; ``close_after`` closes the socket after answering
    (``announce``: with ``Connection: close``), ``delay_s`` answers late."""

    close_after: bool = False
    announce: bool = False
    delay_s: float = 0.0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: int = 0
    port: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.writers.append(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open_now -= 1
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        self.requests += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        extra = b"Connection: close\r\n" if self.announce else b""
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + extra + b"\r\nok")
        await writer.drain()
        return not self.close_after


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[Server]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in server.writers:
            writer.close()


def client(server: Server, max_connections: int = 4, keepalive: float = 5.0) -> httpx.AsyncClient:
    transport = LeanTransport(
        ssl_context=None, max_connections=max_connections, keepalive_expiry=keepalive
    )
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port}",
        transport=transport,
        timeout=httpx.Timeout(5.0, pool=0.2),
    )


async def get(http: httpx.AsyncClient) -> str:
    response = await http.get("/x")
    response.raise_for_status()
    return response.text


@pytest.mark.anyio
async def test_sequential_requests_share_one_connection() -> None:
    async with serving(Server()) as server, client(server) as http:
        answers = [await get(http) for _ in range(20)]
    assert answers == ["ok"] * 20
    assert server.connections == 1


@pytest.mark.anyio
async def test_concurrent_requests_never_open_more_than_the_limit() -> None:
    async with serving(Server(delay_s=0.02)) as server, client(server, max_connections=3) as http:
        http.timeout = httpx.Timeout(5.0)  # here waiting for a connection is expected
        answers = await asyncio.gather(*(get(http) for _ in range(30)))
    assert answers == ["ok"] * 30
    assert server.most_open <= 3
    assert server.requests == 30


@pytest.mark.anyio
@pytest.mark.parametrize("announce", [True, False], ids=["connection-close", "silent-close"])
async def test_a_connection_the_server_closed_is_not_reused(announce: bool) -> None:
    async with (
        serving(Server(close_after=True, announce=announce)) as server,
        client(server) as http,
    ):
        for _ in range(5):
            assert await get(http) == "ok"
            await asyncio.sleep(0.05)  # the server's FIN reaches us before the next request
    assert server.connections == 5


@pytest.mark.anyio
async def test_an_idle_connection_past_its_keepalive_is_replaced() -> None:
    async with serving(Server()) as server, client(server, keepalive=0.05) as http:
        await get(http)
        await asyncio.sleep(0.15)
        await get(http)
    assert server.connections == 2


@pytest.mark.anyio
async def test_waiting_longer_than_the_pool_timeout_raises_pool_timeout() -> None:
    async with serving(Server(delay_s=1.0)) as server, client(server, max_connections=1) as http:
        slow = asyncio.ensure_future(get(http))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await get(http)
        assert await slow == "ok"


@pytest.mark.anyio
async def test_a_cancelled_request_gives_its_slot_back() -> None:
    async with serving(Server(delay_s=30)) as server, client(server, max_connections=1) as http:
        stuck = asyncio.ensure_future(get(http))
        await asyncio.sleep(0.05)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        server.delay_s = 0
        assert await get(http) == "ok"
    assert server.connections == 2  # the cancelled exchange's connection was closed


@pytest.mark.anyio
async def test_closing_the_client_closes_every_connection() -> None:
    async with serving(Server(delay_s=0.02)) as server:
        async with client(server, max_connections=4) as http:
            await asyncio.gather(*(get(http) for _ in range(8)))
            assert server.open_now >= 1
        await asyncio.sleep(0.05)
        assert server.open_now == 0


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (no network, no fixtures on disk)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.anyio
async def test_https_through_the_pool_verifies_the_server(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server = Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_tls)
    port = listener.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        transport = LeanTransport(ssl_context=trusting, max_connections=2, keepalive_expiry=5)
        async with httpx.AsyncClient(transport=transport) as http:
            for _ in range(3):
                response = await http.get(f"https://127.0.0.1:{port}/x")
                assert response.text == "ok"
        assert server.connections == 1
        stranger = ssl.create_default_context()  # does not trust the self-signed certificate
        transport = LeanTransport(ssl_context=stranger, max_connections=2, keepalive_expiry=5)
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"https://127.0.0.1:{port}/x")
    finally:
        listener.close()
        for writer in server.writers:
            writer.close()


@pytest.mark.anyio
async def test_nothing_listening_is_a_connect_error() -> None:
    server = Server()
    async with serving(server):
        pass  # the port is free again
    async with client(server) as http:
        with pytest.raises(httpx.ConnectError):
            await get(http)


@pytest.mark.anyio
async def test_a_server_that_does_not_answer_is_a_read_timeout() -> None:
    async with serving(Server(delay_s=5)) as server, client(server) as http:
        http.timeout = httpx.Timeout(0.2)
        with pytest.raises(httpx.ReadTimeout):
            await get(http)
