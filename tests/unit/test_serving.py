"""The server protocol: a response's writes of one event-loop turn reach the socket as one write; request
heads have a deadline; a body nobody reads is bounded; the protocol's own errors are problem documents.

Unit tests drive `CoalescingTransport` over a recording transport; the others serve a small ASGI app
with uvicorn and `CoalescingHttpToolsProtocol` / `EdgeHttpToolsProtocol` on a real socket and speak
HTTP/1.1 to it by hand. Deadlines are short (a fraction of a second) and the tests wait for what the
server does (a 408, a close) with a generous bound that only stops a hang: nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import pytest_asyncio
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from src.api.security import API_CSP, SecurityHeaders
from src.serving import CoalescingHttpToolsProtocol, CoalescingTransport, EdgeHttpToolsProtocol

# One event loop for the module, so that each server below starts and stops once (a uvicorn shutdown costs
# a fifth of a second); every test opens connections of its own.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Recorder:
    """The real transport's side: what reached it, in which calls."""

    writes: list[bytes] = field(default_factory=list)
    closed: bool = False
    buffered: int = 0

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_coalescing_transport_when_writes_share_a_turn_sends_them_as_one() -> None:
    recorder = Recorder()
    transport = CoalescingTransport(recorder, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(memoryview(b"ok"))
    assert recorder.writes == []  # held until the turn ends
    assert transport.get_write_buffer_size() == 40
    await asyncio.sleep(0)
    assert recorder.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    transport.writelines([b"a", b"b"])
    await asyncio.sleep(0)
    assert recorder.writes[1:] == [b"ab"]  # the next turn's writes are a write of their own


async def test_coalescing_transport_when_closed_writes_what_it_holds_first() -> None:
    recorder = Recorder()
    transport = CoalescingTransport(recorder, asyncio.get_running_loop())
    transport.write(b"last words")
    transport.close()
    assert (recorder.writes, recorder.closed) == ([b"last words"], True)
    transport.write(b"after close")
    await asyncio.sleep(0)
    assert recorder.writes == [b"last words"]  # a closing transport takes nothing more
    assert transport.get_extra_info("peername") == "info:peername"  # everything else is the real one's


async def test_coalescing_transport_when_eof_is_written_sends_what_it_holds_before_it() -> None:
    recorder = Recorder()
    transport = CoalescingTransport(recorder, asyncio.get_running_loop())
    transport.write(b"body")
    transport.write_eof()
    assert recorder.writes == [b"body", b"<eof>"]
    transport.flush()  # nothing held: nothing written
    assert recorder.writes == [b"body", b"<eof>"]


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes the path: `/big` streams 3 MB in 64 KiB chunks, `/empty` answers 304."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/empty":
        await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", b'"x"')]})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/big":
        chunk = b"x" * 65536
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"3145728")]})
        for index in range(48):
            message: Message = {"type": "http.response.body", "body": chunk, "more_body": index < 47}
            await send(message)
        return
    body = path.encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def _serve(protocol: type[asyncio.Protocol], **config: Any) -> AsyncIterator[int]:
    """`_app` served by uvicorn with `protocol` on a free loopback port, stopped at the end."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=protocol, log_config=None, lifespan="off", **config
    )
    server = uvicorn.Server(settings)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served() -> AsyncIterator[int]:
    async with _serve(CoalescingHttpToolsProtocol) as port:
        yield port


HEAD_SECONDS = 0.1
UNREAD_BYTES = 1024
HANG = 20.0
"""Only a bound on a hang: every wait below ends as soon as the server acts."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def edge_served() -> AsyncIterator[int]:
    protocol = EdgeHttpToolsProtocol.configured(
        header_timeout_seconds=HEAD_SECONDS,
        max_unread_body_bytes=UNREAD_BYTES,
        security_headers=SecurityHeaders(hsts_max_age_seconds=60),
    )
    async with _serve(protocol, timeout_keep_alive=1, ws="none") as port:
        yield port


@contextlib.asynccontextmanager
async def _connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return head, await reader.readexactly(length)


async def test_coalescing_protocol_when_requests_are_pipelined_answers_each_in_order(served: int) -> None:
    async with _connection(served) as (reader, writer):
        writer.write(b"GET /first HTTP/1.1\r\nhost: t\r\n\r\nGET /second HTTP/1.1\r\nhost: t\r\n\r\n")
        await writer.drain()
        first_head, first = await _read_response(reader)
        second_head, second = await _read_response(reader)
        assert first_head.startswith(b"HTTP/1.1 200 OK")
        assert (first, second) == (b"/first", b"/second")
        assert second_head.startswith(b"HTTP/1.1 200 OK")
        writer.write(b"GET /empty HTTP/1.1\r\nhost: t\r\n\r\n")  # keep-alive: the same connection again
        await writer.drain()
        empty_head, empty = await _read_response(reader)
        assert empty_head.startswith(b"HTTP/1.1 304")
        assert empty == b""


async def test_coalescing_protocol_when_the_body_is_streamed_delivers_all_of_it(served: int) -> None:
    async with _connection(served) as (reader, writer):
        writer.write(b"GET /big HTTP/1.1\r\nhost: t\r\n\r\n")
        await writer.drain()
        head, body = await _read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert body == b"x" * 3145728


async def test_coalescing_protocol_when_the_client_asks_to_close_sends_the_response_then_closes(served: int) -> None:
    async with _connection(served) as (reader, writer):
        writer.write(b"GET /bye HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        await writer.drain()
        head, body = await _read_response(reader)
        assert b"connection: close" in head.lower()
        assert body == b"/bye"
        assert await reader.read() == b""  # then the server closed the connection


async def test_coalescing_transport_when_a_turn_writes_a_lot_lets_it_through_at_once() -> None:
    recorder = Recorder()
    transport = CoalescingTransport(recorder, asyncio.get_running_loop())
    chunk = b"x" * (CoalescingTransport.MAX_HELD_BYTES // 2)
    transport.write(b"head")
    transport.write(chunk)
    assert recorder.writes == []
    transport.write(chunk)  # over the bound: written now, in order, without waiting for the turn to end
    assert recorder.writes == [b"head" + chunk + chunk]
    assert transport.get_write_buffer_size() == 0
    await asyncio.sleep(0)
    assert len(recorder.writes) == 1  # the scheduled flush found nothing more
    transport.write(b"head")
    transport.write(b"y" * CoalescingTransport.MAX_HELD_BYTES)  # large on its own: no copy, after the head
    assert recorder.writes[1:] == [b"head", b"y" * CoalescingTransport.MAX_HELD_BYTES]


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as the close)."""
    received = b""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(HANG):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def _trickle(writer: asyncio.StreamWriter, piece: bytes) -> None:
    """Send `piece` every 50 ms until the connection is gone."""
    with contextlib.suppress(ConnectionError):
        for _ in range(int(HANG / 0.05)):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)


def _problem(response: bytes, status: int) -> dict[str, Any]:
    """The problem document of a whole response, after checking the headers every refusal has."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 %d " % status), lines[0]
    headers = dict(line.split(b": ", 1) for line in lines[1:])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"connection"] == b"close"
    assert headers[b"content-security-policy"] == API_CSP.encode()
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"strict-transport-security"] == b"max-age=60; includeSubDomains"
    assert len(headers[b"x-request-id"]) == 32
    assert int(headers[b"content-length"]) == len(body)
    problem: dict[str, Any] = orjson.loads(body)
    assert problem["status"] == status
    return problem


async def test_edge_protocol_when_a_head_trickles_past_the_deadline_answers_408_and_closes(edge_served: int) -> None:
    async with _connection(edge_served) as (reader, writer):
        writer.write(b"GET /slow HTTP/1.1\r\nhost: t\r\n")
        await writer.drain()
        sender = asyncio.create_task(_trickle(writer, b"x-more: 1\r\n"))  # each line well within the deadline
        try:
            response = await _read_until_closed(reader)
        finally:
            sender.cancel()
    assert _problem(response, 408)["detail"] == f"the request head was not complete within {HEAD_SECONDS:g} s"


async def test_edge_protocol_when_blank_lines_trickle_before_a_head_closes_the_connection(edge_served: int) -> None:
    async with _connection(edge_served) as (reader, writer):
        sender = asyncio.create_task(_trickle(writer, b"\r\n"))  # the parser skips them: no request ever begins
        try:
            response = await _read_until_closed(reader)
        finally:
            sender.cancel()
    _problem(response, 408)


async def test_edge_protocol_when_a_new_connection_sends_nothing_closes_it_silently(edge_served: int) -> None:
    async with _connection(edge_served) as (reader, _):
        assert await _read_until_closed(reader) == b""  # after the keep-alive timeout, as an idle kept-alive one


async def test_edge_protocol_when_heads_arrive_whole_serves_them_on_one_connection(edge_served: int) -> None:
    async with _connection(edge_served) as (reader, writer):
        for path in (b"/first", b"/second"):
            writer.write(b"GET " + path + b" HTTP/1.1\r\nhost: t\r\n\r\n")
            await writer.drain()
            head, body = await _read_response(reader)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert body == path
            await asyncio.sleep(HEAD_SECONDS * 2)  # idle between requests: the head deadline is not running


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"FOO / HTTP/1.1\r\nhost: t\r\n\r\n", id="unknown-method"),
        pytest.param(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nhost: t\r\n\r\n", id="target-too-long-to-parse"),
        pytest.param(b"GET / HTTP/1.1\r\nbad header\r\n\r\n", id="malformed-header"),
    ],
)
async def test_edge_protocol_when_the_parser_refuses_a_request_answers_a_400_problem(
    edge_served: int, request_bytes: bytes
) -> None:
    async with _connection(edge_served) as (reader, writer):
        writer.write(request_bytes)
        await writer.drain()
        response = await _read_until_closed(reader)
    assert _problem(response, 400)["instance"] == "/"  # the target is not echoed


async def test_edge_protocol_when_a_bad_request_follows_a_good_one_answers_it_then_closes(edge_served: int) -> None:
    async with _connection(edge_served) as (reader, writer):
        writer.write(b"GET /first HTTP/1.1\r\nhost: t\r\n\r\nFOO / HTTP/1.1\r\nhost: t\r\n\r\n")
        await writer.drain()
        response = await _read_until_closed(reader)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"connection: close" in head
    assert body == b"/first"  # nothing written into or after it


async def test_edge_protocol_when_an_unread_body_arrives_with_its_head_keeps_the_connection(edge_served: int) -> None:
    async with _connection(edge_served) as (reader, writer):
        writer.write(b"POST /ignored HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhello")
        writer.write(b"GET /next HTTP/1.1\r\nhost: t\r\n\r\n")
        await writer.drain()
        assert (await _read_response(reader))[1] == b"/ignored"
        assert (await _read_response(reader))[1] == b"/next"


async def test_edge_protocol_when_an_unread_body_goes_on_past_the_bound_closes_the_connection(
    edge_served: int,
) -> None:
    async with _connection(edge_served) as (reader, writer):
        writer.write(b"POST /ignored HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        head, body = await _read_response(reader)  # answered without reading the body
        assert (head.split(b"\r\n")[0], body) == (b"HTTP/1.1 200 OK", b"/ignored")
        sender = asyncio.create_task(_trickle(writer, b"1000\r\n" + b"x" * 4096 + b"\r\n"))  # 4 KiB chunks
        try:
            assert await _read_until_closed(reader) == b""
        finally:
            sender.cancel()


async def test_edge_protocol_when_an_unread_body_trickles_past_the_deadline_closes_the_connection(
    edge_served: int,
) -> None:
    async with _connection(edge_served) as (reader, writer):
        writer.write(b"POST /ignored HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        assert (await _read_response(reader))[1] == b"/ignored"
        sender = asyncio.create_task(_trickle(writer, b"1\r\nx\r\n"))  # a byte every 50 ms: never past the bound
        try:
            assert await _read_until_closed(reader) == b""
        finally:
            sender.cancel()


async def test_edge_protocol_when_an_upgrade_is_asked_serves_an_ordinary_response(edge_served: int) -> None:
    async with _connection(edge_served) as (reader, writer):
        writer.write(
            b"GET /plain HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        await writer.drain()
        head, body = await _read_response(reader)
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == b"/plain"
