"""OpenTelemetry tracing, configured by the standard `OTEL_*` variables.

- `OTEL_SDK_DISABLED=true`: no tracing at all.
- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set: spans are recorded and
  exported over OTLP/HTTP (protobuf) in batches; the exporter reads its own variables (headers, timeout,
  compression, certificates).
- `OTEL_TRACES_EXPORTER=none` without an endpoint: spans are recorded (trace ids in logs and
  exemplars are real) and dropped; with nothing set at all, tracing is off and costs nothing.
- `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the process, `OTEL_TRACES_SAMPLER` (+ `_ARG`)
  sample (parent-based, always on, by default): a W3C `traceparent` from the gateway continues its trace.

One provider per process, installed as the global one (the Elasticsearch client's own tracing and the
Redis and PyMongo instrumentations use the global provider); `configure_tracing` is idempotent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from loguru import logger
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_provider: TracerProvider | None = None
_TRACER_NAME = "search-read-api"
_tracer = trace.get_tracer(_TRACER_NAME)
"""Got once: the API's proxy tracer delegates to whatever provider is installed later (a lookup per
engine call and per indexer step would make a new tracer object each time)."""


def tracing_wanted(env: Mapping[str, str]) -> str | None:
    """What the environment asks for: "otlp", "record" (no export) or None (tracing off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if exporter == "none":
        return "record"
    if exporter not in ("", "otlp"):
        logger.warning("OTEL_TRACES_EXPORTER={!r} is not supported (otlp or none): tracing is off", exporter)
        return None
    if endpoint or exporter == "otlp":
        return "otlp"
    return None


def configure_tracing(
    service_name: str, *, env: Mapping[str, str] | None = None, processor: SpanProcessor | None = None
) -> TracerProvider | None:
    """The process's tracer provider (installed once as the global one), or None when tracing is off.

    `processor` replaces the exporter chosen from the environment (tests pass an in-memory one).
    """
    global _provider
    if _provider is not None:
        return _provider
    variables = os.environ if env is None else env
    wanted = "record" if processor is not None else tracing_wanted(variables)
    if wanted is None:
        return None
    attributes = {} if variables.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    if processor is not None:
        provider.add_span_processor(processor)
    elif wanted == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _instrument_clients()
    _provider = provider
    logger.info("tracing on ({}), service {}", wanted, provider.resource.attributes.get("service.name"))
    return provider


def _instrument_clients() -> None:
    """Redis and PyMongo through their instrumentations; Elasticsearch traces itself (elasticsearch-py's
    own OpenTelemetry support, on when a provider exists); Tantivy and the indexer through `span`."""
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if not RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().instrument()
    if not PymongoInstrumentor().is_instrumented_by_opentelemetry:
        PymongoInstrumentor().instrument()


def flush_tracing() -> None:
    """Export what is buffered (at shutdown; spans are batched)."""
    if _provider is not None:
        _provider.force_flush()


def tracer() -> trace.Tracer:
    """The service's own tracer (a no-op one while tracing is off)."""
    return _tracer


@contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[trace.Span]:
    """A child span of the current one (nothing recorded while tracing is off)."""
    with tracer().start_as_current_span(name, attributes=attributes) as current:
        yield current


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, or None outside a valid span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
