"""A bulk request refused for its size or the engine's load, through each engine's real client against a
local HTTP server answering what Elasticsearch 9.2 and OpenSearch 2.19 answer (their bodies as measured
on 512 MB heaps): a document too large on its own is refused for good, anything else stays retryable."""

from __future__ import annotations

import http.server
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from src.search.backends.base import BulkItemResult, IndexAction
from src.search.backends.cluster import ClusterBackend
from src.search.backends.elasticsearch import create_elasticsearch_backend
from src.search.backends.opensearch import create_opensearch_backend
from src.search.errors import EnginePressure
from tests.conftest import http_server
from tests.fixtures.catalog import SCHEMA

type Answer = Callable[[bytes], tuple[int, object]]
"""The status and JSON body (None: no body) the engine answers a bulk request body with."""


def engine_server(answer: Answer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status, payload = answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            raw = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("X-Elastic-Product", "Elasticsearch")  # elasticsearch-py's product check
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_PUT = do_POST  # elasticsearch-py sends _bulk as PUT

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture(params=["elasticsearch", "opensearch"])
def serve(request: pytest.FixtureRequest) -> Iterator[Callable[[Answer], ClusterBackend[Any]]]:
    """Start a server with an answer and build the engine's backend on it (closed by the test)."""
    servers: list[Any] = []

    def start(answer: Answer) -> ClusterBackend[Any]:
        server = http_server(engine_server(answer))
        url = server.__enter__()
        servers.append(server)
        make = create_elasticsearch_backend if request.param == "elasticsearch" else create_opensearch_backend
        return make(url=url, schema=SCHEMA, alias="packages", timeout_seconds=5)

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def doc(doc_id: str) -> IndexAction:
    return IndexAction(op="upsert", doc_id=doc_id, document={"id": doc_id, "name": doc_id, "body": "x" * 100})


def pressure(stage: str, **figures: int) -> dict[str, object]:
    reason = f"rejected execution of {stage} operation [" + ", ".join(f"{k}={v}" for k, v in figures.items()) + "]"
    return {"error": {"type": "es_rejected_execution_exception", "reason": reason}, "status": 429}


def item(status: int, error: dict[str, object]) -> dict[str, object]:
    return {"errors": True, "took": 1, "items": [{"index": {"_id": "a", "status": status, "error": error}}]}


async def test_bulk_when_one_document_is_over_the_request_size_limit_refuses_it_for_good(
    serve: Callable[[Answer], ClusterBackend[Any]],
) -> None:
    backend = serve(lambda body: (413, None))
    try:
        [result] = await backend.bulk([doc("a")])
    finally:
        await backend.close()
    assert result == BulkItemResult(
        doc_id="a", ok=False, error=f"too large for {backend.kind} on its own (413): request entity too large"
    )


async def test_bulk_when_several_documents_are_refused_as_a_whole_raises_engine_pressure(
    serve: Callable[[Answer], ClusterBackend[Any]],
) -> None:
    refusal = pressure("coordinating", all_bytes=0, coordinating_operation_bytes=900, max_coordinating_bytes=500)
    backend = serve(lambda body: (429, refusal))
    try:
        with pytest.raises(EnginePressure) as raised:
            await backend.bulk([doc("a"), doc("b")])
    finally:
        await backend.close()
    assert (raised.value.status, raised.value.reason) == (429, refusal["error"]["reason"])  # type: ignore[index]


async def test_bulk_when_one_document_alone_is_over_the_coordinating_limit_refuses_it_for_good(
    serve: Callable[[Answer], ClusterBackend[Any]],
) -> None:
    refusal = pressure("coordinating", all_bytes=0, coordinating_operation_bytes=900, max_coordinating_bytes=500)
    backend = serve(lambda body: (429, refusal))
    try:
        [result] = await backend.bulk([doc("a")])
    finally:
        await backend.close()
    assert not result.ok
    assert not result.retryable
    assert result.error is not None
    assert "coordinating_operation_bytes=900" in result.error


async def test_bulk_when_the_primary_refuses_a_document_it_can_never_fit_with_its_own_request_refuses_it(
    serve: Callable[[Answer], ClusterBackend[Any]],
) -> None:
    def answer(body: bytes) -> tuple[int, object]:
        own = len(body) + 74  # what Elasticsearch 9.2 counted for our one-document request
        refusal = pressure("primary", all_bytes=own, primary_operation_bytes=4 * own, max_primary_bytes=9 * own // 2)
        return 200, item(429, refusal["error"])  # type: ignore[arg-type]

    backend = serve(answer)
    try:
        [result] = await backend.bulk([doc("a")])
    finally:
        await backend.close()
    assert not result.ok
    assert not result.retryable
    assert not result.pressure
    assert result.error is not None
    assert result.error.startswith(f"too large for {backend.kind} on its own (429)")


async def test_bulk_when_the_index_is_blocked_for_its_disk_the_document_stays_retryable(
    serve: Callable[[Answer], ClusterBackend[Any]],
) -> None:
    blocked: dict[str, object] = {
        "type": "cluster_block_exception",
        "reason": "index [i] blocked by: [TOO_MANY_REQUESTS/12/disk ...]",
    }
    backend = serve(lambda body: (200, item(429, blocked)))
    try:
        [result] = await backend.bulk([doc("a")])
    finally:
        await backend.close()
    assert (result.ok, result.retryable, result.pressure) == (False, True, True)
