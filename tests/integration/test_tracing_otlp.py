"""End to end: the real API process exports its spans over OTLP/HTTP to a receiver decoding the protobuf.

The API runs as `python -m src` (the production entrypoint) on the embedded engine with a real Redis
behind its cache; a request carrying a gateway `traceparent` is a cache miss, and the receiver must get
the server span as a child of the gateway's span, with the engine call and the Redis calls below it.
"""

from __future__ import annotations

import gzip
import http.server
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.conftest import REDIS_URL, http_server, require_redis, stop_process, wait_ready

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
GATEWAY_SPAN = "b7ad6b7169203331"


class Received:
    """Spans the receiver decoded, with the service name of their resource."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        self.lock = threading.Lock()

    def named(self, name: str) -> list[Span]:
        with self.lock:
            return [span for _, span in self.spans if span.name == name]


def _receiver(received: Received) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest.FromString(body)
            with received.lock:
                for resource_spans in request.resource_spans:
                    service = next(
                        attribute.value.string_value
                        for attribute in resource_spans.resource.attributes
                        if attribute.key == "service.name"
                    )
                    for scope_spans in resource_spans.scope_spans:
                        received.spans.extend((service, span) for span in scope_spans.spans)
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Handler


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    received = Received()
    with http_server(_receiver(received)) as url:
        yield url, received


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sample(path: Path) -> Path:
    """The first 300 demo documents, as a file to load."""
    sample = path / "sample.jsonl"
    with gzip.open(ROOT / "data" / "debian-packages.jsonl.gz", "rt", encoding="utf-8") as lines:
        sample.write_text("".join(itertools.islice(lines, 300)), encoding="utf-8")
    return sample


def _wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail("spans did not arrive")
        time.sleep(0.05)


def test_api_when_exporting_over_otlp_sends_a_miss_with_its_child_spans(
    tmp_path: Path, otlp_receiver: tuple[str, Received]
) -> None:
    require_redis()
    endpoint, received = otlp_receiver
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "ELASTICSEARCH_", "OPENSEARCH_"))},
        "ELASTICSEARCH_URL": "",
        "OPENSEARCH_URL": "",
        "TANTIVY_DATA_DIR": str(tmp_path / "tantivy"),
        "INDEX_ALIAS": f"traced-{uuid.uuid4().hex[:8]}",
        "REDIS_URL": REDIS_URL,
        "CACHE_NAMESPACE": f"traced-{uuid.uuid4().hex[:8]}",
        "APP_PORT": str(port),
        "CURSOR_SECRET": "otlp-test",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_SERVICE_NAME": "search-api-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    subprocess.run(
        [sys.executable, "-m", "indexer", "load", str(_sample(tmp_path))],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    log = (tmp_path / "api.log").open("wb")
    server = subprocess.Popen([sys.executable, "-m", "src"], cwd=ROOT, env=env, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        response = httpx.get(
            f"{base}/v1/search",
            params={"q": "libreofice"},
            headers={"traceparent": f"00-{TRACE_ID}-{GATEWAY_SPAN}-01", "x-request-id": "otlp-1"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.headers["x-cache"] == "MISS"
        _wait_for(lambda: received.named("tantivy search"), 15)
    finally:
        stop_process(server)  # SIGTERM: the lifespan flushes what is left
        log.close()
    (server_span,) = [span for span in received.named("GET /v1/search") if span.trace_id.hex() == TRACE_ID]
    assert server_span.parent_span_id.hex() == GATEWAY_SPAN
    assert server_span.kind == Span.SpanKind.SPAN_KIND_SERVER
    attributes = {attribute.key: attribute.value for attribute in server_span.attributes}
    assert attributes["http.request.id"].string_value == "otlp-1"
    assert attributes["search_api.cache"].string_value == "miss"
    in_trace = [span for _, span in received.spans if span.trace_id == server_span.trace_id]
    engine = [span for span in in_trace if span.name == "tantivy search"]
    assert engine
    assert engine[0].parent_span_id == server_span.span_id
    redis_calls = [span for span in in_trace if any(a.key == "db.system" for a in span.attributes)]
    assert redis_calls, f"no Redis spans in {[span.name for span in in_trace]}"
    assert all(span.parent_span_id == server_span.span_id for span in redis_calls)
    assert {service for service, span in received.spans if span.trace_id == server_span.trace_id} == {
        "search-api-under-test"
    }
    access = [line for line in (tmp_path / "api.log").read_text().splitlines() if '"message":"access"' in line]
    assert any('"request_id":"otlp-1"' in line and f'"trace_id":"{TRACE_ID}"' in line for line in access)
