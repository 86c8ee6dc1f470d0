"""Pure ASGI middleware at the edge of the app: request size limits and HEAD.

Both answer before any fast hit is looked up: they sit in front of the fast-hit middleware, ahead of
Starlette's stack (src/main.py, `edge_layers`), so a HEAD is a fast hit wherever its GET would be.

- `RequestLimitsMiddleware`: a request target (path and query) over `max_target_bytes` is a 414
  problem, request headers over `max_header_bytes` in total a 431 problem, a body over
  `max_body_bytes` a 413 problem; nothing behind a refusal runs. The body limit holds for every
  method (a GET with a body too) and never needs the body read: a `Content-Length` over it is refused
  at once; a body of unknown length (chunked) is counted as the app reads it, and the request is
  answered 413 as soon as the count passes the limit (what the app sends after that is dropped, and
  it reads an `http.disconnect`). A 413 says `Connection: close`: the server does not read the rest
  (src/serving.py bounds, in bytes and time, the rest of any body a response went out before, a 401's
  included). The gateway (nginx `large_client_header_buffers`, `client_max_body_size`) is the
  first line; this is the one that holds when the app is reached directly. FastAPI's own
  `max_body_size` is not used: it answers a too-long Content-Length only when the route responds
  (after it ran), with a plain-text or `{"detail"}` body, behind the fast paths.
- `HeadMiddleware`: HEAD is served as the GET it stands for, with the same status and headers
  (Content-Length, ETag, Cache-Control...) and no body, wherever GET is served.
"""

from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.search.models import Problem

PROBLEM_MEDIA_TYPE = b"application/problem+json"


_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})
"""Methods whose requests have no body unless a header announces one (HTTP/1.1 framing)."""


def problem_body(status: int, detail: str, instance: str) -> bytes:
    """An RFC 9457 problem document for `status` (pure; the server protocol's own errors use it too)."""
    problem: Problem = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    return orjson.dumps(problem)


async def send_problem(send: Send, status: int, detail: str, path: str, *, close: bool = False) -> None:
    """Answer with an RFC 9457 problem straight from ASGI (`close`: `Connection: close`)."""
    body = problem_body(status, detail, path)
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _declared_length(value: bytes) -> int:
    """A Content-Length value as a number; -1 (unknown: counted as read) when it is not one, which the
    HTTP server refuses before the app sees it, so only another front (Lambda's) could pass one."""
    return int(value) if value.isdigit() else -1


class RequestLimitsMiddleware:
    """Refuse oversized request targets (414), headers (431) and bodies (413) before any work."""

    def __init__(self, app: ASGIApp, *, max_target_bytes: int, max_header_bytes: int, max_body_bytes: int) -> None:
        self.app = app
        self.max_target_bytes = max_target_bytes
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        target = len(raw_path) + len(scope.get("query_string", b""))
        if target > self.max_target_bytes:
            await send_problem(
                send, 414, f"the request target is over {self.max_target_bytes} bytes", "/"
            )  # the path itself may be what is too long: not echoed
            return
        header_bytes = 0
        declared = -1  # no Content-Length
        chunked = False
        for name, value in scope["headers"]:  # one pass (faster than summing a chain of lengths)
            header_bytes += len(name) + len(value) + 4
            if name == b"content-length":
                declared = max(declared, _declared_length(value))
            elif name == b"transfer-encoding":
                chunked = True
        if header_bytes > self.max_header_bytes:
            await send_problem(
                send, 431, f"the request headers are over {self.max_header_bytes} bytes", scope["path"][:256]
            )
            return
        if declared > self.max_body_bytes:
            await send_problem(send, 413, self._body_detail(), scope["path"][:256], close=True)
            return
        if not chunked and (declared >= 0 or scope["method"] in _BODYLESS_METHODS):
            # A declared length is held by the HTTP server (the body ends there); none announced: no body.
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    def _body_detail(self) -> str:
        return f"the request body is over {self.max_body_bytes} bytes"

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app on a body of unknown length, answering 413 once more than the limit was received."""
        limit = self.max_body_bytes
        received = 0
        started = over = answered = False

        async def receive_counted() -> Message:
            nonlocal received, over, answered
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    if not started:
                        answered = True
                        await send_problem(send, 413, self._body_detail(), scope["path"][:256], close=True)
                    return {"type": "http.disconnect"}  # the app stops reading; nothing more is taken in
            return message

        async def send_unless_answered(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 is the answer: the app's own, to the body it could not read, is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, receive_counted, send_unless_answered)


class HeadMiddleware:
    """Serve HEAD as GET without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the headers already say how long the GET body is
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)
