"""Every engine's read calls are traced below the request: our engine span, and for Elasticsearch the
client's own span (elasticsearch-py's OpenTelemetry support) below that."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from src.observability.tracing import span
from src.resilience import CircuitBreaker
from src.search.backends.base import SearchBackend
from src.search.backends.guarded import GuardedBackend
from src.search.query import BackendQuery, ParsedQuery, SortSpec, Term


async def test_search_when_traced_has_an_engine_span_below_the_request(
    catalog_backend: SearchBackend, span_exporter: InMemorySpanExporter
) -> None:
    guarded = GuardedBackend(catalog_backend, CircuitBreaker(name="traced", failure_threshold=5, reset_seconds=1))
    query = BackendQuery(
        query=ParsedQuery(terms=(Term(text="server", edits=1, prefix=False),)),
        filters=(),
        facets=(),
        sort=SortSpec(),
        limit=3,
    )
    span_exporter.clear()
    with span("request") as request:
        page = await guarded.search(query)
    assert page.hits
    spans = span_exporter.get_finished_spans()
    (engine,) = [found for found in spans if found.name == f"{catalog_backend.kind} search"]
    assert engine.parent is not None
    assert engine.parent.span_id == request.get_span_context().span_id
    assert (engine.attributes or {})["db.system.name"] == catalog_backend.kind
    if catalog_backend.kind == "elasticsearch":
        client = [found for found in spans if (found.attributes or {}).get("db.system") == "elasticsearch"]
        assert client, [found.name for found in spans]
        assert all(found.parent is not None and found.parent.span_id == engine.context.span_id for found in client)
