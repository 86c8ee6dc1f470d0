"""The outermost of our ASGI middleware: request id, RED metrics and one access-log line per request.

It wraps everything the service adds (limits, HEAD, the fast-hit path, the routes), so a fast cache
hit is counted, timed, traced and logged like every other request. It lives in the API layer because it
joins the observability tools (src/observability: metrics, tracing, the access log) with the edge's
own security headers and problem responses; the observability package knows nothing of HTTP routes.

- Tracing (when a tracer provider is configured): one SERVER span per request, continuing the W3C
  `traceparent`/`tracestate` of the gateway (the global propagator), named `METHOD route` with the
  HTTP semantic-convention attributes (`http.request.method`, `url.path`, `url.scheme`, `http.route`,
  `http.response.status_code`, `error.type` on 5xx and on an exception, which is also recorded as
  the span's `exception` event) plus `http.request.id` and `search_api.cache`. FastAPI's built-in
  instrumentation does the same but costs about 60 us a request here (attribute validation of every
  semantic-convention attribute, a walk of the middleware stack, query parsing), three times a whole
  cache hit; the span is built once at the end instead (`ServerSpans` in src/observability/tracing.py).
- Security headers (src/api/security.py) are added in the same pass over the response headers, and a
  redirect's `Location` loses its scheme and host (`relative_location`): Starlette's trailing-slash
  redirect builds an absolute URL from the request's `Host`, which is whatever the client sent.
- The last resort: an app that ends without starting a response (an exception that escaped every
  inner layer, or a plain return) gets a 500 problem here, with these headers; an exception is then
  re-raised for the server to log. uvicorn's own 500 would be text/plain, without any of them.

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

import contextlib
import random
import re
import time
from typing import Any

from loguru import logger
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.edge import send_problem
from src.api.security import SecurityHeaders, relative_location
from src.observability.logging import access_log
from src.observability.metrics import REQUEST_METRICS
from src.observability.tracing import ServerSpans

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_KEY = "search_api.client"
"""Scope key of the client address the rate limiter believes (see src/api/ratelimit.py)."""
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


async def _internal_error(send: Send, scope: Scope) -> None:
    await send_problem(send, 500, "an internal error occurred; it has been logged", scope["path"][:256])


def _cache_label(cache: str) -> str:
    return cache.lower() if cache != "-" else "none"


class ObservabilityMiddleware:
    """Request id, server span, metrics, security headers and the access log around the rest of the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log: bool = True,
        spans: ServerSpans | None = None,
        security_headers: SecurityHeaders | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.spans = spans
        self.security = security_headers or SecurityHeaders()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = None
        carrier: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and request_id is None and _VALID_REQUEST_ID.fullmatch(value):
                request_id = value.decode("ascii")
            elif name in _PROPAGATED:
                carrier = carrier or {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        if request_id is None:
            request_id = new_request_id()
        raw_id = request_id.encode("ascii")
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        security = self.security.for_path(scope["path"])
        security_names = self.security.names
        outcome: list[Any] = [500, b"-", 0, False]  # status, X-Cache, body bytes, response started

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = outcome[0] = message["status"]
                outcome[3] = True
                redirect = 300 <= status < 400
                headers = []
                own: set[bytes] | None = None
                for header in message.get("headers", ()):
                    name = header[0]
                    if name == REQUEST_ID_HEADER:
                        continue
                    if name == b"x-cache":
                        outcome[1] = header[1]
                    elif name in security_names:
                        own = own or set()
                        own.add(name)
                    elif redirect and name == b"location":
                        header = (name, relative_location(header[1]))
                    headers.append(header)
                headers.extend(security if own is None else [header for header in security if header[0] not in own])
                headers.append((REQUEST_ID_HEADER, raw_id))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                outcome[2] += len(message.get("body", b""))
            await send(message)

        span = None
        if self.spans is not None:
            attributes: dict[str, AttributeValue] = {
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope["scheme"],
            }
            span = self.spans.start(carrier, method, attributes)
        error: BaseException | None = None
        REQUEST_METRICS.inflight += 1
        try:
            await self.app(scope, receive, send_with_headers)
            if not outcome[3]:
                logger.error("no response to {} {}: the app ended without one", scope["method"], scope["path"][:256])
                await _internal_error(send_with_headers, scope)
        except Exception as err:
            error = err
            if not outcome[3]:
                with contextlib.suppress(Exception):  # the error the server logs is the app's, not this one's
                    await _internal_error(send_with_headers, scope)
            raise
        except BaseException as err:  # cancelled: the connection is gone, nothing to answer
            error = err
            raise
        finally:
            REQUEST_METRICS.inflight -= 1
            route = route_template(scope)
            status, cache = int(outcome[0]), outcome[1].decode("latin-1")
            cache_label = _cache_label(cache)
            span_context = None
            if span is not None and self.spans is not None:
                ended = {
                    "http.route": route,
                    "http.response.status_code": status,
                    "http.request.id": request_id,
                    "search_api.cache": cache_label,
                }
                if status >= 500:
                    ended["error.type"] = str(status)
                self.spans.end(span, f"{method} {route}", ended, error=error, failed=status >= 500)
                span_context = span.context
            self._record(scope, method, route, started, status, cache, cache_label, int(outcome[2]), request_id,
                         span_context, carrier)  # fmt: skip

    def _record(
        self,
        scope: Scope,
        method: str,
        route: str,
        started: float,
        status: int,
        cache: str,
        cache_label: str,
        size: int,
        request_id: str,
        context: trace.SpanContext | None,
        carrier: dict[str, str] | None,
    ) -> None:
        elapsed = time.perf_counter() - started
        trace_id = format(context.trace_id, "032x") if context is not None and context.is_valid else None
        if trace_id is None and carrier and "traceparent" in carrier:
            parent = _TRACEPARENT.fullmatch(carrier["traceparent"].encode("latin-1"))  # tracing off: log the gateway's
            trace_id = parent.group(1).decode("ascii") if parent else None
        sampled = context is not None and context.is_valid and context.trace_flags.sampled
        REQUEST_METRICS.observe(method, route, str(status), cache_label, elapsed, trace_id if sampled else None)
        if self.access_log:
            believed = scope.get(CLIENT_KEY)  # set by the rate limiter: X-Forwarded-For from trusted proxies
            peer = scope.get("client")
            client = believed if isinstance(believed, str) else (peer[0] if peer else None)
            fields: dict[str, object] = {
                "ts": "",
                "level": "INFO",
                "logger": "access",
                "message": "access",
                "process": "",
                "method": scope["method"],
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "cache": cache,
                "bytes": size,
                "request_id": request_id,
                "client": client,
            }
            if trace_id is not None:
                fields["trace_id"] = trace_id
                if context is not None and context.is_valid:
                    fields["span_id"] = format(context.span_id, "016x")
            access_log().write(fields)
