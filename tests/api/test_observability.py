"""Traces, metrics, request ids and the access log of the API, fast cache hits included."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fastapi import FastAPI
from loguru import logger
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from src.api.deps import Services
from src.main import create_app
from src.observability.logging import configure_logging
from src.resilience import CircuitBreaker
from src.search.backends.guarded import GuardedBackend
from src.settings import ApiSettings
from tests.api.conftest import install_fake_backend

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"


@pytest.fixture
async def traced(settings: ApiSettings, span_exporter: InMemorySpanExporter) -> AsyncIterator[FastAPI]:
    """The app with tracing on (the in-memory exporter) and the fake engine behind the breaker."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        fake = await install_fake_backend(app)
        services: Services = app.state.services
        guarded = GuardedBackend(fake, CircuitBreaker(name="test", failure_threshold=5, reset_seconds=1))
        app.state.services = dataclasses.replace(services, backend=guarded)
        span_exporter.clear()
        yield app


@pytest.fixture
async def traced_client(traced: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=traced), base_url="http://test") as http:
        yield http


def _by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert found, f"no span {name!r} in {[span.name for span in spans]}"
    return found[-1]


async def test_search_when_traced_continues_the_gateway_trace_with_an_engine_child(
    traced_client: httpx.AsyncClient, span_exporter: InMemorySpanExporter
) -> None:
    response = await traced_client.get("/v1/search", params={"q": "traced miss"}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    spans = span_exporter.get_finished_spans()
    server = _by_name(spans, "GET /v1/search")
    engine = _by_name(spans, "fake search")
    assert format(server.context.trace_id, "032x") == TRACE_ID
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == PARENT_SPAN
    assert engine.parent is not None
    assert engine.parent.span_id == server.context.span_id
    assert engine.context.trace_id == server.context.trace_id
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/search"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["search_api.cache"] == "miss"
    assert server.attributes["http.request.id"] == response.headers["x-request-id"]


async def test_search_when_a_fast_hit_is_traced_and_named_like_a_routed_request(
    traced_client: httpx.AsyncClient, span_exporter: InMemorySpanExporter
) -> None:
    await traced_client.get("/v1/search", params={"q": "fast hit"})
    span_exporter.clear()
    hit = await traced_client.get("/v1/search", params={"q": "fast hit"})
    assert hit.headers["x-cache"] == "HIT"
    spans = span_exporter.get_finished_spans()
    assert [span.name for span in spans] == ["GET /v1/search"]  # the engine was not called
    assert spans[0].attributes is not None
    assert spans[0].attributes["http.route"] == "/v1/search"
    assert spans[0].attributes["search_api.cache"] == "hit"


async def test_metrics_when_requests_served_count_and_time_per_route_status_and_cache(
    traced_client: httpx.AsyncClient,
) -> None:
    await traced_client.get("/v1/search", params={"q": "metrics"})
    await traced_client.get("/v1/search", params={"q": "metrics"})
    await traced_client.get("/v1/documents/no-such-document")
    await traced_client.get("/no/such/path")
    body = (await traced_client.get("/metrics")).text
    assert 'search_api_requests_total{cache="hit",method="GET",route="/v1/search",status="200"}' in body
    assert 'search_api_requests_total{cache="miss",method="GET",route="/v1/search",status="200"}' in body
    assert 'route="/v1/documents/{doc_id}",status="404"' in body
    assert 'search_api_requests_total{cache="none",method="GET",route="unmatched",status="404"}' in body
    assert 'search_api_request_duration_seconds_bucket{cache="hit",le="0.005",method="GET",route="/v1/search"}' in body
    assert 'search_api_engine_duration_seconds_count{engine="fake",operation="search",outcome="ok"}' in body
    assert "search_api_requests_inflight" in body


async def test_metrics_when_openmetrics_is_asked_shows_trace_id_exemplars(traced_client: httpx.AsyncClient) -> None:
    await traced_client.get("/v1/search", params={"q": "exemplar"}, headers={"traceparent": TRACEPARENT})
    scraped = await traced_client.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    assert f'# {{trace_id="{TRACE_ID}"}}' in scraped.text


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        pytest.param("gw-1234.abc:def_9", True, id="plain-token"),
        pytest.param("bad id\nInjected: yes", False, id="control-characters"),
        pytest.param("x" * 129, False, id="too-long"),
        pytest.param("", False, id="empty"),
    ],
)
async def test_request_id_when_sent_is_kept_only_when_a_plain_token(
    client: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    try:
        response = await client.get("/healthz", headers={"x-request-id": sent})
    except httpx.LocalProtocolError:  # the client itself refuses the control characters: send raw bytes
        response = await client.get("/healthz", headers=[(b"x-request-id", sent.encode())])
    returned = response.headers["x-request-id"]
    assert (returned == sent) is kept
    if not kept:
        assert len(returned) == 32
        assert int(returned, 16) >= 0


async def test_access_log_when_request_served_writes_one_json_line_with_its_fields(settings: ApiSettings) -> None:
    app = create_app(settings)
    stream = io.StringIO()
    async with app.router.lifespan_context(app):
        await install_fake_backend(app)
        configure_logging("INFO", process="api", stream=stream)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                hostile = "/v1/documents/evil%0A%7B%22level%22%3A%22ERROR%22%7D"
                await client.get("/v1/search", params={"q": "logged"}, headers={"traceparent": TRACEPARENT})
                await client.get(hostile, headers={"x-request-id": "req-42"})
        finally:
            logger.remove()
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["message"] == "access"]
    assert len(access) == 2
    search, document = access
    assert search["route"] == "/v1/search"
    assert search["status"] == 200
    assert search["cache"] == "MISS"
    assert search["method"] == "GET"
    assert search["process"] == "api"
    assert search["level"] == "INFO"
    assert search["trace_id"] == TRACE_ID  # the gateway's trace
    assert isinstance(search["duration_ms"], float)
    assert search["bytes"] > 0
    assert search["client"] == "127.0.0.1"
    assert document["request_id"] == "req-42"
    assert document["route"] == "/v1/documents/{doc_id}"
    assert document["path"] == '/v1/documents/evil\n{"level":"ERROR"}'  # escaped: still one line
    assert all(line.count("\n") == 0 for line in stream.getvalue().splitlines())


async def test_search_when_the_route_crashes_answers_a_500_problem_with_headers_and_an_error_span(
    traced: FastAPI, span_exporter: InMemorySpanExporter
) -> None:
    services: Services = traced.state.services

    async def crash(*args: object, **kwargs: object) -> object:
        raise RuntimeError("secret internals")

    broken = dataclasses.replace(services, backend=services.backend)
    object.__setattr__(broken.backend, "search", crash)
    traced.state.services = broken
    transport = httpx.ASGITransport(app=traced, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/v1/search", params={"q": "crash"}, headers={"x-request-id": "crash-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert b"secret internals" not in response.content
    assert response.headers["x-request-id"] == "crash-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    server = _by_name(span_exporter.get_finished_spans(), "GET /v1/search")
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 500
    assert [event.name for event in server.events] == ["exception"]


@pytest.mark.parametrize("ends", ["raising", "returning"])
async def test_observability_when_the_app_ends_without_a_response_answers_a_500_problem_with_headers(
    ends: str,
) -> None:
    from starlette.types import Message, Receive, Scope, Send

    from src.api.outermost import ObservabilityMiddleware

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        if ends == "raising":
            raise RuntimeError("escaped every inner layer")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/v1/search", "scheme": "http", "headers": []}
    middleware = ObservabilityMiddleware(inner, access_log=False)
    if ends == "raising":
        with pytest.raises(RuntimeError):  # still the server's to log
            await middleware(scope, receive, send)
    else:
        await middleware(scope, receive, send)
    start, body = sent
    assert start["status"] == 500
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert b"x-request-id" in headers
    assert orjson.loads(body["body"])["status"] == 500
