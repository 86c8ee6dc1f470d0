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
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import Token
from dataclasses import dataclass

from loguru import logger
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

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


@dataclass(slots=True)
class ServerSpan:
    """One request's SERVER span while the request runs (see `ServerSpans`)."""

    context: SpanContext
    parent: SpanContext | None
    recording: bool
    start_ns: int
    attributes: dict[str, AttributeValue]
    token: Token[Context]


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)


class ServerSpans:
    """The SERVER span of every request, built once, when the request ends.

    The SDK's `start_span` validates every attribute into a locked, bounded mapping and builds a
    mutable span at the start (about 15 us a request here, more than a whole cache hit). A server span
    needs none of that while the request runs: only its identity must be current, so that the spans of
    the calls it makes (Redis, the engine) are its children. So `start` makes the span's context (ids
    from the provider's id generator, the decision of its sampler, the W3C parent of the gateway) and
    makes it current through a non-recording placeholder; `end` builds the finished span (a
    `ReadableSpan`, as the SDK's own spans end up) and hands it to the provider's span processors, which
    batch and export it as they export every other span. Processors' `on_start` is not called for these
    spans (the SDK's batch and simple processors do nothing there).
    """

    def __init__(self, provider: TracerProvider, scope_name: str) -> None:
        sdk_tracer = provider.get_tracer(scope_name)
        if not isinstance(sdk_tracer, Tracer):  # pragma: no cover - a provider of the SDK gives SDK tracers
            raise TypeError(f"not an SDK tracer: {type(sdk_tracer).__name__}")
        self._sampler = sdk_tracer.sampler
        self._always_on = sdk_tracer.sampler is DEFAULT_ON
        """The SDK's default sampler (parent-based, always on): a request without a parent is sampled,
        so its decision needs no sampler call."""
        self._processor = sdk_tracer.span_processor
        self._ids = sdk_tracer.id_generator
        self._resource = sdk_tracer.resource
        self._scope = InstrumentationScope(scope_name)

    def start(self, carrier: dict[str, str] | None, name: str, attributes: dict[str, AttributeValue]) -> ServerSpan:
        """The request's span: its context made current until `end`."""
        parent_context: Context | None = propagate.extract(carrier) if carrier else None
        parent: SpanContext | None = trace.get_current_span(parent_context).get_span_context()
        if parent is None or not parent.is_valid:
            parent_context, parent = None, None
        if parent is None and self._always_on:
            context = SpanContext(self._ids.generate_trace_id(), self._ids.generate_span_id(), False, _SAMPLED)
            recording = True
        else:
            trace_id = parent.trace_id if parent is not None else self._ids.generate_trace_id()
            sampling = self._sampler.should_sample(parent_context, trace_id, name, SpanKind.SERVER, attributes)
            context = SpanContext(
                trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=_SAMPLED if sampling.decision is Decision.RECORD_AND_SAMPLE else _NOT_SAMPLED,
                trace_state=sampling.trace_state,
            )
            if sampling.attributes:
                attributes.update(sampling.attributes)
            recording = sampling.decision is not Decision.DROP
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(context), parent_context))
        return ServerSpan(context, parent, recording, time.time_ns(), attributes, token)

    def end(
        self,
        span: ServerSpan,
        name: str,
        attributes: Mapping[str, AttributeValue],
        *,
        error: BaseException | None = None,
        failed: bool = False,
    ) -> None:
        """Finish the span (`failed`: a 5xx answer, ERROR status) and detach its context."""
        otel_context.detach(span.token)
        if not span.recording:
            return
        end_ns = time.time_ns()
        events: tuple[Event, ...] = ()
        status = _ERROR if failed or error is not None else _UNSET
        span.attributes.update(attributes)
        if error is not None:
            span.attributes.setdefault("error.type", type(error).__qualname__)
            events = (
                Event(
                    "exception",
                    {
                        "exception.type": type(error).__qualname__,
                        "exception.message": str(error),
                        "exception.stacktrace": "".join(traceback.format_exception(error)),
                        "exception.escaped": "True",
                    },
                    end_ns,
                ),
            )
        self._processor.on_end(
            ReadableSpan(
                name,
                context=span.context,
                parent=span.parent,
                resource=self._resource,
                attributes=span.attributes,
                events=events,
                kind=SpanKind.SERVER,
                status=status,
                start_time=span.start_ns,
                end_time=end_ns,
                instrumentation_scope=self._scope,
            )
        )
