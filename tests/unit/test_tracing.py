"""Unit tests of src.observability.tracing: what the OTEL_* variables turn on, and the server spans."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

from src.observability.tracing import ServerSpans, tracing_wanted


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        pytest.param({}, None, id="nothing-set-is-off"),
        pytest.param({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otlp", id="endpoint"),
        pytest.param({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, "otlp", id="traces-endpoint"),
        pytest.param({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp", id="otlp-default-endpoint"),
        pytest.param({"OTEL_TRACES_EXPORTER": "none"}, "record", id="record-without-export"),
        pytest.param({"OTEL_TRACES_EXPORTER": "zipkin"}, None, id="unsupported-exporter"),
        pytest.param(
            {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, None, id="sdk-disabled"
        ),
    ],
)
def test_tracing_wanted_follows_the_standard_variables(env: dict[str, str], wanted: str | None) -> None:
    assert tracing_wanted(env) == wanted


def _spans(sampler: Sampler | None = None) -> tuple[ServerSpans, InMemorySpanExporter, TracerProvider]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return ServerSpans(provider, "tests"), exporter, provider


def test_server_spans_when_request_ends_exports_one_server_span_parenting_its_calls() -> None:
    spans, exporter, provider = _spans()
    span = spans.start(None, "GET", {"http.request.method": "GET"})
    current = trace.get_current_span().get_span_context()
    assert current == span.context
    with provider.get_tracer("child").start_as_current_span("redis GET"):
        pass
    spans.end(span, "GET /v1/search", {"http.route": "/v1/search", "http.response.status_code": 200})
    assert not trace.get_current_span().get_span_context().is_valid  # detached
    child, server = exporter.get_finished_spans()
    assert (server.name, server.kind, server.parent) == ("GET /v1/search", SpanKind.SERVER, None)
    assert dict(server.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/v1/search",
        "http.response.status_code": 200,
    }
    assert server.status.status_code is StatusCode.UNSET
    assert server.start_time is not None
    assert server.end_time is not None
    assert server.start_time <= server.end_time
    assert server.instrumentation_scope is not None
    assert server.instrumentation_scope.name == "tests"
    assert child.parent is not None
    assert child.parent.span_id == server.context.span_id
    assert child.context.trace_id == server.context.trace_id


def test_server_spans_when_gateway_sends_traceparent_continues_its_trace() -> None:
    spans, exporter, _ = _spans()
    carrier = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "k=v"}
    span = spans.start(carrier, "GET", {})
    spans.end(span, "GET /v1/search", {})
    (server,) = exporter.get_finished_spans()
    assert format(server.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert server.parent.is_remote
    assert server.context.trace_state.get("k") == "v"


def test_server_spans_when_parent_not_sampled_records_nothing_but_keeps_the_trace_id() -> None:
    spans, exporter, provider = _spans()
    span = spans.start({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}, "GET", {})
    assert not span.recording
    assert format(trace.get_current_span().get_span_context().trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    with provider.get_tracer("child").start_as_current_span("engine search") as child:
        assert not child.is_recording()
    spans.end(span, "GET /v1/search", {})
    assert exporter.get_finished_spans() == ()


def test_server_spans_when_sampler_drops_the_root_exports_nothing() -> None:
    spans, exporter, _ = _spans(TraceIdRatioBased(0.0))
    span = spans.start(None, "GET", {})
    assert not span.context.trace_flags.sampled
    spans.end(span, "GET /healthz", {})
    assert exporter.get_finished_spans() == ()


def test_server_spans_when_request_fails_sets_error_status_and_records_the_exception() -> None:
    spans, exporter, _ = _spans()
    failed = spans.start(None, "GET", {})
    spans.end(failed, "GET /v1/search", {"error.type": "503"}, failed=True)
    crashed = spans.start(None, "GET", {})
    try:
        raise ValueError("boom")
    except ValueError as err:
        spans.end(crashed, "GET /v1/search", {}, error=err)
    first, second = exporter.get_finished_spans()
    assert first.status.status_code is StatusCode.ERROR
    assert (first.attributes or {})["error.type"] == "503"
    assert first.events == ()
    assert second.status.status_code is StatusCode.ERROR
    assert (second.attributes or {})["error.type"] == "ValueError"
    (event,) = second.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert (event.attributes or {})["exception.message"] == "boom"
    assert "Traceback" in str((event.attributes or {})["exception.stacktrace"])
