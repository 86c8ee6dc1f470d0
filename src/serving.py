"""The HTTP server's protocol: uvicorn's httptools protocol with a response's writes sent together,
deadlines on what a client sends, and uvicorn's own errors as problem documents.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`,
and its body on `http.response.body`: two `send` system calls for every small response. On loopback
and in a container behind a gateway, a system call (with the TCP work the kernel does inside it) is
a large part of a cache hit, about a tenth of its time here. `CoalescingTransport` holds what the
protocol writes during one event-loop turn and hands it to the real transport in one write, at the
end of that turn (or sooner when the protocol closes the connection): the head and body of a
response go out in one segment, in the order written; nothing waits longer than the turn.

Flow control is unchanged: the real transport still buffers what the socket does not take and calls
the protocol's `pause_writing`/`resume_writing`; at most 64 KiB are held (more goes through at once).

`EdgeHttpToolsProtocol` (what `python -m src` serves with; `EdgeHttpToolsProtocol.configured(...)`
sets its limits from settings) adds what uvicorn leaves out. uvicorn has no deadline for a request
head (a client sending one header line every few seconds holds its connection for ever: slowloris),
arms no timer on a new connection until its first response, and answers a request its parser refuses
(a malformed request line, an unknown method, a target too long for the parser) with a text/plain 400
that bypasses the app, so without the security headers. Here:

- **Head deadline**: a request head (request line and headers) not complete `header_timeout_seconds`
  after its first byte is answered 408 and the connection closed; a new connection that sends nothing
  is closed after uvicorn's keep-alive timeout (`timeout_keep_alive`, 5 s), silently, as an idle
  keep-alive connection already is. This is the server's job rather than the gateway's: the API is
  also reached directly (the compose scrape, a container port, a load balancer without such a timer),
  and an idle connection costs the process a file descriptor and a protocol object.
- **A body nobody reads**: when the response went out before its request's body was all received
  (a 401 on an admin route, a GET with a body), uvicorn reads and discards the rest to keep the
  connection; here the rest may be at most `max_unread_body_bytes` and must arrive within the head
  deadline, else the connection is closed (an unauthenticated upload of any size ends at once).
- **Its own errors** (400 for what the parser refuses, 408 above) are `application/problem+json`
  with the security headers of src/api/security.py, an `X-Request-Id` and `Connection: close`. A
  malformed request pipelined behind one still being answered lets that response finish, then closes.

These classes subclass uvicorn's `httptools_impl.HttpToolsProtocol`, which is not a public API: the
names below are what they rely on, setup.cfg pins uvicorn to the minor version they were tested with,
and tests/unit/test_serving_uvicorn.py fails, naming what changed, when an upgrade renames one.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Self

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from src.api.edge import PROBLEM_MEDIA_TYPE, problem_body
from src.api.outermost import REQUEST_ID_HEADER, new_request_id
from src.api.security import SecurityHeaders

UVICORN_HOOKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "_unsupported_upgrade_warning",
)
"""`HttpToolsProtocol` methods overridden here (each calls uvicorn's, except the last two)."""
UVICORN_PROTOCOL_ATTRIBUTES = (
    "loop",
    "transport",
    "cycle",
    "server_state",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
    "timeout_keep_alive_handler",
)
"""`HttpToolsProtocol` attributes read or set here (`server_state.default_headers` too)."""
UVICORN_CYCLE_ATTRIBUTES = ("response_started", "response_complete", "more_body", "keep_alive")
"""Attributes of uvicorn's `RequestResponseCycle` (the protocol's `cycle`) read or set here."""


class CoalescingTransport:
    """A transport whose writes of one event-loop turn reach the wrapped one as a single write."""

    __slots__ = ("_held", "_loop", "_pending", "_transport")

    MAX_HELD_BYTES = 64 * 1024
    """Held past this, writes go through at once: a body streamed without yielding to the loop still
    meets the real transport's flow control (its pause_writing) as it would without this class."""

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._held = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= self.MAX_HELD_BYTES:  # a large body: not worth a copy to save a system call
            self.flush()
            self._transport.write(data)
            return
        if self._pending is None:
            self._pending = [bytes(data)]
            self._held = len(data)
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))
            self._held += len(data)
        if self._held >= self.MAX_HELD_BYTES:
            self.flush()

    def writelines(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Hand what is held to the real transport (a no-op when nothing is)."""
        pending, self._pending, self._held = self._pending, None, 0
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._held + int(self._transport.get_write_buffer_size())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `CoalescingTransport` (`uvicorn.run(..., http=this)`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; both have what is used here
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


class EdgeHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """`CoalescingHttpToolsProtocol` with deadlines and problem-document errors (the module docstring)."""

    header_timeout_seconds: ClassVar[float] = 10.0
    max_unread_body_bytes: ClassVar[int] = 1024 * 1024
    security_headers: ClassVar[SecurityHeaders] = SecurityHeaders()

    @classmethod
    def configured(
        cls, *, header_timeout_seconds: float, max_unread_body_bytes: int, security_headers: SecurityHeaders
    ) -> type[Self]:
        """A subclass with these limits (uvicorn builds one protocol object per connection from a class)."""
        limits = {
            "header_timeout_seconds": header_timeout_seconds,
            "max_unread_body_bytes": max_unread_body_bytes,
            "security_headers": security_headers,
        }
        return type(cls.__name__, (cls,), limits)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._rest_deadline: asyncio.TimerHandle | None = None
        self._between_requests = True
        self._unread = 0
        # uvicorn arms its keep-alive timer after a response only: an idle new connection would stay open.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        self._cancel_rest_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._between_requests and self._head_deadline is None:
            self._arm_head_deadline()  # the first byte of a head (blank lines before one count: no trickling)
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._between_requests = False
        self._unread = 0
        if self._head_deadline is None:  # a pipelined request that began in the same read as the last ended
            self._arm_head_deadline()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete:  # answered already: this is discarded
            self._unread += len(body)
            if self._unread > self.max_unread_body_bytes and not self.transport.is_closing():
                self.transport.close()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._between_requests = True
        self._cancel_rest_deadline()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and cycle.more_body and not self.transport.is_closing():
            # Answered before its body was all in: the rest must follow soon, or the connection goes.
            self._rest_deadline = self.loop.call_later(self.header_timeout_seconds, self._close)
        super().on_response_complete()

    def _unsupported_upgrade_warning(self) -> None:
        """Nothing: with `ws="none"` an upgrade is served as a plain request, and uvicorn's two warnings per
        such request ("no WebSocket library") would let any client fill the log."""

    def send_400_response(self, msg: str) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:  # the bad bytes follow a whole request still being answered
                cycle.keep_alive = False  # its response goes out, then the connection closes
                return
            if cycle.response_started:  # its own body is malformed, the response already under way
                self._close()
                return
        self._refuse(400, "the request is not valid HTTP/1.1 (request line, method, target or headers)")

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self.header_timeout_seconds, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _cancel_rest_deadline(self) -> None:
        if self._rest_deadline is not None:
            self._rest_deadline.cancel()
            self._rest_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.keep_alive = False  # a pipelined head is late: the response under way finishes first
            return
        self._refuse(408, f"the request head was not complete within {self.header_timeout_seconds:g} s")

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, detail: str) -> None:
        """Answer `status` with a problem document and close, outside the app (nothing of it ran)."""
        if self.transport.is_closing():
            return
        body = problem_body(status, detail, "/")
        headers = [
            *self.server_state.default_headers,
            (b"content-type", PROBLEM_MEDIA_TYPE),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *self.security_headers.for_path("/"),
            (REQUEST_ID_HEADER, new_request_id().encode()),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[status] + head + b"\r\n" + body)
        self.transport.close()
