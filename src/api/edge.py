"""Pure ASGI middleware at the edge of the app: request size limits and HEAD.

Both answer before any fast hit is looked up: the size limits in front of the fast-hit middleware that
runs ahead of Starlette's stack, HEAD in front of the one inside it (src/main.py, `install_edge`).

- `RequestLimitsMiddleware`: a request target (path and query) over `max_target_bytes` is a 414
  problem, request headers over `max_header_bytes` in total a 431 problem; nothing behind it runs.
  The gateway (nginx `large_client_header_buffers`) is the first line; this is the one that holds
  when the app is reached directly.
- `HeadMiddleware`: HEAD is served as the GET it stands for, with the same status and headers
  (Content-Length, ETag, Cache-Control...) and no body, wherever GET is served.
"""

from __future__ import annotations

import itertools
from http import HTTPStatus

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.search.models import Problem

PROBLEM_MEDIA_TYPE = b"application/problem+json"


async def send_problem(send: Send, status: int, detail: str, path: str) -> None:
    """Answer with an RFC 9457 problem straight from ASGI."""
    problem: Problem = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": path,
    }
    body = orjson.dumps(problem)
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestLimitsMiddleware:
    """Refuse oversized request targets (414) and headers (431) before any work."""

    def __init__(self, app: ASGIApp, *, max_target_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_target_bytes = max_target_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            target = len(raw_path) + len(scope.get("query_string", b""))
            if target > self.max_target_bytes:
                await send_problem(
                    send, 414, f"the request target is over {self.max_target_bytes} bytes", "/"
                )  # the path itself may be what is too long: not echoed
                return
            headers = scope["headers"]
            header_bytes = sum(map(len, itertools.chain.from_iterable(headers))) + 4 * len(headers)
            if header_bytes > self.max_header_bytes:
                await send_problem(
                    send, 431, f"the request headers are over {self.max_header_bytes} bytes", scope["path"][:256]
                )
                return
        await self.app(scope, receive, send)


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
