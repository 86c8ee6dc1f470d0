"""Benchmark: GET /v1/search (uncached) against the same queries sent straight to the backend.

For each backend (Tantivy always; Elasticsearch when ELASTICSEARCH_URL is set; OpenSearch when
OPENSEARCH_URL is set) it loads the demo data
into a bench alias, starts the API as a separate uvicorn process, and measures in one run:

- floor:  GET /healthz on the same server (what HTTP + FastAPI + the load generator cost alone),
- api:    GET /v1/search over HTTP, uncached (httpx, `--concurrency` requests in flight), and
- direct: the query our service would send, through the backend's own client
          (AsyncElasticsearch/AsyncOpenSearch.search with the same body; Tantivy's searcher with the same query and
          the same stored-document reads, in worker threads),

reporting requests/second, p50 and p99 latency and the api/direct throughput ratio.

    .venv/bin/python bench/search_bench.py --requests 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from src.indexer.load import load_file  # noqa: E402
from src.search.backends.base import SearchBackend  # noqa: E402
from src.search.backends.cluster import ClusterBackend  # noqa: E402
from src.search.backends.factory import create_backend  # noqa: E402
from src.search.backends.querydsl import build_search_body  # noqa: E402
from src.search.backends.tantivy import TantivyBackend  # noqa: E402
from src.search.backends.tantivy.query import build_tantivy_query  # noqa: E402
from src.search.schema import IndexSchema, load_schema  # noqa: E402
from src.search.service import PreparedSearch, SearchOptions, SearchRequest, prepare_search  # noqa: E402
from src.settings import Settings  # noqa: E402

QUERIES = [
    "ngnix", "postgrsql", "libreofice", "pyton3", "emcas", "imagemagik", "opnssh-server", "redis servr",
    "web server", "http proxy", "database", "python library", "text editor", "terminal", "compression",
    "postg", "lib", "firefx", "network monitoring", "image viewer", "font", "perl module", "rust crate",
    "haskell", "documentation", "java", "kernel", "audio player", "game", "\"command line\"",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Result:
    """One measured mode."""

    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(name: str, call: Callable[[str], Awaitable[None]], requests: int, concurrency: int) -> Result:
    """Send `requests` calls cycling through QUERIES with `concurrency` in flight (after a warm-up)."""
    for query in QUERIES:
        await call(query)
    latencies: list[float] = []
    counter = iter(range(requests))

    async def worker() -> None:
        for number in counter:
            started = time.perf_counter()
            await call(QUERIES[number % len(QUERIES)])
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, requests, time.perf_counter() - started, latencies)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"API at {url} never became ready")


async def bench_backend(kind: str, settings: Settings, args: argparse.Namespace) -> list[Result]:
    schema = load_schema(settings.index_schema_path)
    backend = create_backend(settings, schema)
    if await backend.current_index() is None:
        await load_file(settings.demo_data_path, backend=backend, batch_size=250)  # aiohttp: bodies under 1 MB
    port = free_port()
    env = os.environ | {
        "INDEX_ALIAS": settings.index_alias,
        "TANTIVY_DATA_DIR": str(settings.tantivy_data_dir),
        "ELASTICSEARCH_URL": settings.elasticsearch_url,
        "OPENSEARCH_URL": settings.opensearch_url,
        "APP_PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "CURSOR_SECRET": "bench",
        "RATE_LIMIT_ENABLED": "false",  # one load generator is one client: the limits would be measured
        # Uncached: every entry is over the size limit, so each request is a real miss (key, lookup,
        # backend, encoding) as in production, without ever being served from the cache.
        "CACHE_MAX_ENTRY_BYTES": "1",
    }
    server = subprocess.Popen([sys.executable, "-m", "src"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

            async def api_call(q: str) -> None:
                response = await client.get("/v1/search", params={"q": q})
                response.raise_for_status()

            async def floor_call(q: str) -> None:
                (await client.get("/healthz")).raise_for_status()

            floor = await measure(f"{kind} http floor (/healthz)", floor_call, args.requests, args.concurrency)
            api = await measure(f"{kind} api", api_call, args.requests, args.concurrency)
        direct_call = direct_caller(backend, schema)
        direct = await measure(f"{kind} direct", direct_call, args.requests, args.concurrency)
    finally:
        server.terminate()
        server.wait(timeout=10)
        await backend.close()
    return [floor, api, direct]


def direct_caller(backend: SearchBackend, schema: IndexSchema) -> Callable[[str], Awaitable[None]]:
    """The same work through the engine's own client, skipping only our service and HTTP layers."""
    options = SearchOptions(cursor_secret=b"bench")

    def prepared(q: str) -> PreparedSearch:
        return prepare_search(SearchRequest(q=q), schema=schema, options=options, backend_kind=backend.kind)

    if isinstance(backend, ClusterBackend):  # Elasticsearch or OpenSearch: both clients take this call
        client: Any = backend._client
        alias = backend._alias
        bodies = {q: build_search_body(prepared(q).backend_query, schema) for q in QUERIES}

        async def es_call(q: str) -> None:
            await client.search(index=alias, body=bodies[q])

        return es_call
    assert isinstance(backend, TantivyBackend)
    handle = backend._reader()
    tschema = backend._tschema
    queries = {q: build_tantivy_query(prepared(q).backend_query, schema, tschema) for q in QUERIES}

    def tantivy_sync(q: str) -> None:
        searcher = handle.index.searcher()
        result = searcher.search(queries[q], limit=11, count=True)
        for _, address in result.hits:
            searcher.doc(address)

    async def tantivy_call(q: str) -> None:
        await asyncio.to_thread(tantivy_sync, q)

    return tantivy_call


def report(results: list[Result]) -> str:
    lines = [
        "| mode | requests | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.name} | {result.requests} | {result.rps:.0f} | "
            f"{result.percentile(0.5):.2f} | {result.percentile(0.99):.2f} |"
        )
    for floor, api, direct in zip(results[::3], results[1::3], results[2::3], strict=True):
        lines.append(f"\n{api.name} / {direct.name} throughput ratio: {api.rps / direct.rps:.2f}")
        lines.append(f"{api.name} / {floor.name} throughput ratio: {api.rps / floor.rps:.2f}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        tantivy = Settings(
            tantivy_data_dir=Path(tmp), index_alias="bench-packages", elasticsearch_url="", opensearch_url=""
        )
        results += await bench_backend("tantivy", tantivy, args)
    for kind, variable in (("elasticsearch", "ELASTICSEARCH_URL"), ("opensearch", "OPENSEARCH_URL")):
        url = os.environ.get(variable, "")
        if not url:
            print(f"{variable} not set: {kind} skipped", file=sys.stderr)
            continue
        engine = Settings(
            **{"elasticsearch_url": "", "opensearch_url": "", f"{kind}_url": url},  # type: ignore[arg-type]
            index_alias="bench-packages",
        )
        results += await bench_backend(kind, engine, args)
    print(f"{args.requests} requests per mode, concurrency {args.concurrency}, {os.cpu_count()} cores\n")
    print(report(results))
    print(f"\nmedian api p50 latency: {statistics.median(r.percentile(0.5) for r in results[1::3]):.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
