"""The server protocol: a response's writes of one event-loop turn reach the socket as one write.

Unit tests drive `CoalescingTransport` over a recording transport; the others serve a small ASGI app
with uvicorn and `CoalescingHttpToolsProtocol` on a real socket and speak HTTP/1.1 to it by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from src.serving import CoalescingHttpToolsProtocol, CoalescingTransport


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


@pytest.fixture
async def served() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=CoalescingHttpToolsProtocol, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


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
