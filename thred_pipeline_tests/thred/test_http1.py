"""The wire under ``LeanTransport`` against a server on 127.0.0.1 that answers scripted bytes.

The server reads each request with h11 (another parser than the one under test) and answers
with the exact bytes a test gives, so a test can send what real servers send: chunked and
length-delimited bodies, a body ended by closing, informational answers, garbage, an answer
cut short, bytes no request asked for.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import httpx
import pytest

from thred_pipeline.thred.pool import LeanTransport
from thred_pipeline.thred.retry import classify_transport_error

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture(
    params=[("asyncio", {}), ("asyncio", {"use_uvloop": True})], ids=["asyncio", "uvloop"]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    """Both loops the pipeline runs on (``thred.loop``): their transports differ."""
    return request.param  # type: ignore[no-any-return]


@dataclass
class Received:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


# What the server does with a request: the bytes it answers, then "keep", "close" or "reset".
Script = Callable[[Received], tuple[bytes, str]]


@dataclass
class Scripted:
    script: Script
    read_requests: bool = True
    connections: int = 0
    received: list[Received] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        if not self.read_requests:
            await asyncio.sleep(3600)  # takes nothing: the client's writes back up
        wire = h11.Connection(h11.SERVER)
        try:
            while (request := await _read(reader, wire)) is not None:
                self.received.append(request)
                answer, then = self.script(request)
                writer.write(answer)
                await writer.drain()
                if then == "reset":  # RST instead of FIN
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                if then != "keep":
                    break
                # The answers are raw bytes h11 did not send: read the next request afresh.
                leftover, wire = wire.trailing_data[0], h11.Connection(h11.SERVER)
                if leftover:
                    wire.receive_data(leftover)  # b"" would tell h11 the client closed
        except (ConnectionError, h11.RemoteProtocolError):
            pass
        finally:
            writer.close()


async def _read(reader: asyncio.StreamReader, wire: h11.Connection) -> Received | None:
    head: h11.Request | None = None
    body = b""
    while True:
        event = wire.next_event()
        if event is h11.NEED_DATA:
            wire.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return Received(head.method, head.target, list(head.headers), body)
        else:
            return None  # the client closed


@asynccontextmanager
async def serving(script: Script, *, read_requests: bool = True) -> AsyncIterator[Scripted]:
    server = Scripted(script, read_requests)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in server.writers:
            writer.close()


def client(server: Scripted, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    transport = LeanTransport(ssl_context=None, max_connections=4, keepalive_expiry=5.0)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port}",
        transport=transport,
        timeout=timeout or httpx.Timeout(5.0),
    )


def always(answer: bytes, then: str = "keep") -> Script:
    return lambda _: (answer, then)


pytestmark = pytest.mark.anyio


async def test_the_request_goes_on_the_wire_as_httpx_built_it() -> None:
    async with serving(always(OK)) as server, client(server) as http:
        response = await http.post(
            "/v1/x", params={"a": "1", "b": "é"}, json={"n": 1}, headers={"X-Key": "k-1"}
        )
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == "OK"
    (seen,) = server.received
    assert (seen.method, seen.target) == (b"POST", b"/v1/x?a=1&b=%C3%A9")
    headers = dict(seen.headers)
    assert headers[b"host"] == f"127.0.0.1:{server.port}".encode()
    assert headers[b"x-key"] == b"k-1"
    assert headers[b"content-type"] == b"application/json"
    assert seen.body == b'{"n":1}'


async def test_a_streamed_request_body_is_sent_chunked() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"first,"
        yield b"second"

    async with serving(always(OK)) as server, client(server) as http:
        response = await http.post("/x", content=parts())
        assert response.text == "ok"
        assert (await http.post("/x", content=b"")).text == "ok"
    assert [seen.body for seen in server.received] == [b"first,second", b""]
    assert dict(server.received[0].headers)[b"transfer-encoding"] == b"chunked"
    assert server.connections == 1


async def test_a_read_answer_is_closed_and_timed_and_an_encoded_one_decoded() -> None:
    packed = gzip.compress(b'{"n": 1}')
    encoded = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(packed),
        packed,
    )
    answers = iter([OK, encoded])
    async with serving(lambda _: (next(answers), "keep")) as server, client(server) as http:
        plain, unpacked = await http.get("/x"), await http.get("/x")
    assert plain.content == b"ok" and unpacked.json() == {"n": 1}
    for response in (plain, unpacked):
        assert response.is_closed and response.is_stream_consumed
        assert response.elapsed.total_seconds() >= 0
    assert plain.num_bytes_downloaded == 2


async def test_a_chunked_answer_is_read_whole_and_the_connection_reused() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with serving(always(chunked)) as server, client(server) as http:
        texts = [(await http.get("/x")).text for _ in range(3)]
    assert texts == ["abcde"] * 3
    assert server.connections == 1


async def test_a_large_length_delimited_answer_arrives_whole() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: many reads
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    async with serving(always(answer)) as server, client(server) as http:
        first, second = await http.get("/x"), await http.get("/x")
    assert first.content == body and second.content == body
    assert server.connections == 1


async def test_an_answer_ended_by_closing_is_read_whole_and_not_reused() -> None:
    until_closed = always(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", "close")
    async with serving(until_closed) as server, client(server) as http:
        texts = [(await http.get("/x")).text for _ in range(2)]
    assert texts == ["until the end"] * 2
    assert server.connections == 2


async def test_informational_answers_are_skipped() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + OK
    async with serving(always(early)) as server, client(server) as http:
        response = await http.get("/x")
        assert (await http.get("/x")).text == "ok"
    assert (response.status_code, response.text) == (200, "ok")
    assert "link" not in response.headers
    assert server.connections == 1


async def test_head_204_and_304_answers_have_no_body() -> None:
    answers = {
        b"HEAD": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        b"DELETE": b"HTTP/1.1 204 No Content\r\n\r\n",
        b"GET": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    }
    script: Script = lambda seen: (answers[seen.method], "keep")  # noqa: E731
    async with serving(script) as server, client(server) as http:
        head, gone, same = await http.head("/x"), await http.delete("/x"), await http.get("/x")
        again = await http.delete("/x")
    assert [r.status_code for r in (head, gone, same, again)] == [200, 204, 304, 204]
    assert head.content == gone.content == same.content == b""
    assert head.headers["content-length"] == "5"
    assert server.connections == 2  # HEAD's connection is not trusted again; 204/304's are


async def test_garbage_is_a_remote_protocol_error() -> None:
    async with serving(always(b"SMTP ready\r\n\r\n")) as server, client(server) as http:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.get("/x")
    assert classify_transport_error(caught.value).uncertain


async def test_bytes_nobody_asked_for_retire_the_connection() -> None:
    async with serving(always(OK + b"HTTP/1.1 200 OK\r\n")) as server, client(server) as http:
        assert (await http.get("/x")).text == "ok"
        assert (await http.get("/x")).text == "ok"
    assert server.connections == 2


@pytest.mark.parametrize(
    "answer",
    [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", b"HTTP/1.1 200 OK\r\nContent-"],
    ids=["nothing", "short-body", "half-head"],
)
async def test_a_connection_closed_before_the_whole_answer_is_uncertain(answer: bytes) -> None:
    async with serving(always(answer, "close")) as server, client(server) as http:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            await http.post("/x", content=b"{}")
        failure = classify_transport_error(caught.value)
        assert failure.retryable and failure.uncertain
        assert caught.value.request.url.path == "/x"


async def test_a_reset_connection_is_a_read_error() -> None:
    async with serving(always(b"", "reset")) as server, client(server) as http:
        with pytest.raises(httpx.ReadError):
            await http.get("/x")


async def test_a_server_that_takes_nothing_is_a_write_timeout() -> None:
    slow = httpx.Timeout(5.0, write=0.2)
    async with serving(always(OK), read_requests=False) as server, client(server, slow) as http:
        with pytest.raises(httpx.WriteTimeout):
            await http.post("/x", content=b"x" * (32 * 1024 * 1024))


async def test_a_line_break_in_a_header_is_refused_before_sending() -> None:
    async with serving(always(OK)) as server, client(server) as http:
        with pytest.raises(httpx.LocalProtocolError) as caught:
            await http.get("/x", headers={"X-Key": "a\r\nX-Evil: 1"})
        assert not classify_transport_error(caught.value).retryable
        assert (await http.get("/x")).text == "ok"
    assert len(server.received) == 1


async def test_an_unsupported_scheme_is_refused() -> None:
    transport = LeanTransport(ssl_context=None, max_connections=1, keepalive_expiry=5.0)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.get("ftp://127.0.0.1/x")


async def test_the_repr_shows_counts_only() -> None:
    async with serving(always(OK)) as server, client(server) as http:
        await http.get("/x", headers={"Authorization": "Bearer sk_live_secret"})
        shown = repr(http._transport)
    assert shown == "LeanTransport(open=1, idle=1, in_use=0)"
