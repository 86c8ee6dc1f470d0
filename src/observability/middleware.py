"""The outermost of our ASGI middleware: request id, RED metrics and one access-log line per request.

It wraps everything the service adds (limits, HEAD, the fast-hit path, the routes), so a fast cache
hit is counted, timed and logged like every other request. The HTTP server span around it is
FastAPI's own OpenTelemetry instrumentation (`FastAPI(telemetry=...)`, which runs outside all
middleware); this middleware names that span for fast hits, which never reach the router, and tags
it with the request id and cache outcome.

- `X-Request-Id`: the gateway's value when it is a plain token (at most 128 of `A-Z a-z 0-9 . _ : -`),
  otherwise a new one; always returned on the response.
- Metrics: `search_api_requests_total{method,route,status,cache}`,
  `search_api_request_duration_seconds{method,route,cache}` (the trace id as exemplar when the span is
  sampled) and `search_api_requests_inflight`. `route` is the route template (`/v1/documents/{doc_id}`),
  `unmatched` for paths no route serves, so labels stay bounded whatever clients send.
- Access log: `access` lines with method, route, path, status, duration_ms, cache, bytes, request_id,
  trace_id, client; JSON-escaped like every log line.
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

from loguru import logger
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.observability.metrics import REQUEST_DURATION, REQUESTS, REQUESTS_INFLIGHT

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUTE_KEY = "search_api.route"
"""Scope key a middleware that answers by itself (the fast-hit path) sets to the route template it served."""

_random = random.Random()  # noqa: S311 -- request ids must be unique, not unpredictable


def new_request_id() -> str:
    """32 hex digits; unique, not secret (no system call: `os.urandom` would release the GIL)."""
    return format(_random.getrandbits(128), "032x")


def route_template(scope: Scope) -> str:
    """The template of the route that answered, or `unmatched`."""
    served = scope.get(ROUTE_KEY)
    if served is not None:
        return str(served)
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _cache_label(cache: str) -> str:
    return cache.lower() if cache != "-" else "none"


def _tag_server_span(scope: Scope, request_id: str, cache: str) -> None:
    span = trace.get_current_span()
    if not span.is_recording():
        return
    if ROUTE_KEY in scope:  # answered before routing: name the server span as routing would have
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "HTTP"
        span.update_name(f"{method} {scope[ROUTE_KEY]}")
        span.set_attribute("http.route", str(scope[ROUTE_KEY]))
    span.set_attribute("http.request.id", request_id)
    span.set_attribute("search_api.cache", _cache_label(cache))


class ObservabilityMiddleware:
    """Request id, metrics and the access log around the rest of the app."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log
        self._children: dict[tuple[str, str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        traceparent = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and request_id is None and _VALID_REQUEST_ID.fullmatch(value):
                request_id = value.decode("ascii")
            elif name == b"traceparent":
                traceparent = value
        if request_id is None:
            request_id = new_request_id()
        raw_id = request_id.encode("ascii")
        status = 500
        cache = "-"
        size = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, cache, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(name, value) for name, value in message.get("headers", []) if name != REQUEST_ID_HEADER]
                for name, value in headers:
                    if name == b"x-cache":
                        cache = value.decode("latin-1")
                headers.append((REQUEST_ID_HEADER, raw_id))
                message = {**message, "headers": headers}
                _tag_server_span(scope, request_id, cache)  # before the body: the span ends with it
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        REQUESTS_INFLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUESTS_INFLIGHT.dec()
            self._record(scope, started, status, cache, size, request_id, traceparent)

    def _record(
        self,
        scope: Scope,
        started: float,
        status: int,
        cache: str,
        size: int,
        request_id: str,
        traceparent: bytes | None,
    ) -> None:
        elapsed = time.perf_counter() - started
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        route = route_template(scope)
        cache_label = _cache_label(cache)
        context = trace.get_current_span().get_span_context()
        trace_id = format(context.trace_id, "032x") if context.is_valid else None
        if trace_id is None and traceparent is not None:
            parent = _TRACEPARENT.fullmatch(traceparent)  # tracing off: still log the gateway's trace id
            trace_id = parent.group(1).decode("ascii") if parent else None
        key = (method, route, str(status), cache_label)
        counter = self._children.get(key)
        if counter is None:
            counter = self._children[key] = REQUESTS.labels(*key)
        counter.inc()
        histogram_key = (method, route, cache_label)
        histogram = self._histograms.get(histogram_key)
        if histogram is None:
            histogram = self._histograms[histogram_key] = REQUEST_DURATION.labels(*histogram_key)
        if context.is_valid and context.trace_flags.sampled:
            histogram.observe(elapsed, exemplar={"trace_id": format(context.trace_id, "032x")})
        else:
            histogram.observe(elapsed)
        if self.access_log:
            client = scope.get("client")
            fields: dict[str, object] = {
                "method": scope["method"],
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "cache": cache,
                "bytes": size,
                "request_id": request_id,
                "client": client[0] if client else None,
            }
            if trace_id is not None:
                fields["trace_id"] = trace_id
            logger.bind(**fields).info("access")
