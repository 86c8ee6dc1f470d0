"""Benchmark the indexer on the demo data against a real MongoDB wire protocol server (SecantusDB).

(a) throughput: a backlog of N changes (the demo documents x multiplier, inserted while the stream is
    stopped) drained
    by `python -m indexer stream` logic, documents per second from start to the last acknowledged
    write, against a plain bulk load of the same documents straight into the same backend with its own
    client's bulk helper (Elasticsearch: `helpers.async_bulk`; Tantivy: one writer, `add_document`,
    commit), in one run; ratio stream / bulk (target >= 0.8).
(b) freshness: with the stream running, single inserts every 50 ms; time from insert until a search
    finds the document; p50 and p99 (target p99 < 2 s with a 1 s refresh interval on Elasticsearch).
(c) memory: peak RSS of a `python -m indexer stream` process while it streams 10x the demo data,
    sampled from /proc during the run, at each tenth of the way (target: flat).

    .venv/bin/python bench/indexer_bench.py [--multiplier 10]     (ELASTICSEARCH_URL=... for Elasticsearch)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pymongo import AsyncMongoClient  # noqa: E402

from src.indexer.factory import build_indexer  # noqa: E402
from src.indexer.runner import run_stream  # noqa: E402
from src.search.backends.cluster import ClusterBackend  # noqa: E402
from src.search.backends.querydsl import build_source  # noqa: E402
from src.search.backends.tantivy import TantivyBackend  # noqa: E402
from src.search.backends.tantivy.schema import add_prepared  # noqa: E402
from src.search.documents import prepare_document  # noqa: E402
from src.search.errors import SearchUnavailable  # noqa: E402
from src.search.query import BackendQuery, ParsedQuery, SortSpec, ValueFilter  # noqa: E402
from src.settings import Settings  # noqa: E402
from tests.conftest import start_secantus, stop_process  # noqa: E402

DEMO = ROOT / "data" / "debian-packages.jsonl.gz"


def demo_documents() -> list[dict[str, Any]]:
    with gzip.open(DEMO, "rb") as lines:
        return [orjson.loads(line) for line in lines]


def as_mongo(doc: dict[str, Any], suffix: str = "") -> dict[str, Any]:
    return {"_id": f"{doc['id']}{suffix}", **{k: v for k, v in doc.items() if k != "id"}}


async def wait_count(indexer: Any, expected: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await indexer.backend.refresh()
            if await indexer.backend.count() >= expected:
                return time.monotonic()
        except SearchUnavailable:
            pass  # the alias does not exist yet
        await asyncio.sleep(0.05)
    raise TimeoutError(f"index never reached {expected} documents")


def start_stream_task(settings: Settings) -> tuple[Any, asyncio.Event, asyncio.Task[None]]:
    indexer = build_indexer(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_stream(
            source=indexer.source,
            sink=indexer.sink,
            checkpoints=indexer.checkpoints,
            invalidate=None,
            stream_options=indexer.stream_options,
            reindex_options=indexer.reindex_options,
            stop=stop,
        )
    )
    return indexer, stop, task


async def throughput(settings: Settings, collection: Any, docs: list[dict[str, Any]]) -> tuple[float, float]:
    """(stream docs/s draining a backlog, plain bulk docs/s) on the same backend."""
    await collection.insert_one({"_id": "seed", "name": "seed"})
    indexer, stop, task = start_stream_task(settings)
    await wait_count(indexer, 1)
    stop.set()
    await task
    await indexer.close()  # releases the Tantivy writer lock for the next stream
    for start in range(0, len(docs), 1000):  # the backlog, written while the stream is stopped
        await collection.insert_many([as_mongo(doc) for doc in docs[start : start + 1000]])
    started = time.monotonic()
    indexer2, stop2, task2 = start_stream_task(settings)
    finished = await wait_count(indexer2, len(docs) + 1)
    stream_rate = len(docs) / (finished - started)
    stop2.set()
    await task2
    bulk_rate = await plain_bulk(indexer2.backend, docs)
    await indexer2.close()
    return stream_rate, bulk_rate


async def plain_bulk(backend: Any, docs: list[dict[str, Any]]) -> float:
    """The same documents into a fresh index through the engine's own bulk path."""
    index = await backend.create_index()
    started = time.monotonic()
    if isinstance(backend, ClusterBackend):
        # Each engine's own bulk helper (the same shape in both clients).
        if backend.kind == "opensearch":
            from opensearchpy.helpers import async_bulk
        else:
            from elasticsearch.helpers import async_bulk  # type: ignore[assignment]

        actions = (
            {"_index": index, "_id": str(doc["id"]), "_source": build_source(doc, backend._schema)} for doc in docs
        )
        await async_bulk(backend._client, actions, chunk_size=500)
        await backend.refresh(index)  # searchable, as the stream's writes are when they are counted
    else:
        assert isinstance(backend, TantivyBackend)
        import tantivy

        handle = backend._handle(index)
        writer = handle.writer()
        for doc in docs:
            prepared = prepare_document(doc, backend._schema)
            document = tantivy.Document()
            add_prepared(document, prepared, 1)
            writer.add_document(document)
        writer.commit()
    rate = len(docs) / (time.monotonic() - started)
    await backend.drop_index(index)
    return rate


async def freshness(settings: Settings, collection: Any, samples: int) -> list[float]:
    """Seconds from insert until a search by name finds the document."""
    indexer, stop, task = start_stream_task(settings)
    await wait_count(indexer, 0)  # the (empty) alias exists: the stream is tailing
    name_field = indexer.sink.backend._schema.field("name")
    delays: list[float] = []
    for number in range(samples):
        name = f"fresh-{uuid.uuid4().hex[:10]}"
        written = time.monotonic()
        await collection.insert_one({"_id": name, "name": name, "summary": "freshness probe"})
        query = BackendQuery(
            query=ParsedQuery(), filters=(ValueFilter(name_field, (name,)),), facets=(), sort=SortSpec(), limit=1
        )
        while not (await indexer.backend.search(query)).hits:
            await asyncio.sleep(0.01)
        delays.append(time.monotonic() - written)
        await asyncio.sleep(0.05 if number % 10 else 0.3)
    stop.set()
    await task
    await indexer.close()
    return delays


async def memory(
    settings: Settings, collection: Any, docs: list[dict[str, Any]], multiplier: int
) -> list[tuple[int, int]]:
    """(documents indexed, RSS KiB) samples of a stream subprocess while it streams docs x multiplier."""
    env = os.environ | {
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "MONGODB_COLLECTION": settings.mongodb_collection,
        "INDEX_ALIAS": settings.index_alias,
        "TANTIVY_DATA_DIR": str(settings.tantivy_data_dir),
        "ELASTICSEARCH_URL": settings.elasticsearch_url,
        "INDEXER_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "indexer", "stream"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    indexer = build_indexer(settings)
    samples: list[tuple[int, int]] = []
    base = await indexer.backend.count() if await indexer.backend.current_index() else 0
    total = len(docs) * multiplier

    def rss_kib() -> int:
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    async def sampler() -> None:
        while process.poll() is None:
            count = await indexer.backend.count() - base if await indexer.backend.current_index() else 0
            samples.append((count, rss_kib()))
            await asyncio.sleep(0.25)

    sampling = asyncio.create_task(sampler())
    for round_number in range(multiplier):
        for start in range(0, len(docs), 1000):
            chunk = docs[start : start + 1000]
            await collection.insert_many([as_mongo(doc, f"~{round_number}") for doc in chunk])
    await wait_count(indexer, base + total, timeout=1800)
    await asyncio.sleep(0.5)
    process.terminate()
    process.wait(timeout=30)
    await sampling
    await indexer.close()
    return samples


async def run(args: argparse.Namespace) -> None:
    docs = demo_documents()
    kind = Settings(
        elasticsearch_url=os.environ.get("ELASTICSEARCH_URL", ""), opensearch_url=os.environ.get("OPENSEARCH_URL", "")
    ).backend_kind
    with tempfile.TemporaryDirectory() as tmp:
        url, server = start_secantus(Path(tmp) / "mongo")
        try:
            client: AsyncMongoClient[Any] = AsyncMongoClient(url)

            def settings_for(part: str) -> Settings:
                return Settings(
                    mongodb_url=url,
                    mongodb_database=f"bench_{part}",
                    mongodb_collection="packages",
                    index_alias=f"bench-indexer-{part}-{uuid.uuid4().hex[:6]}",
                    tantivy_data_dir=Path(tmp) / f"tantivy-{part}",
                    elasticsearch_url=os.environ.get("ELASTICSEARCH_URL", ""),
                    opensearch_url=os.environ.get("OPENSEARCH_URL", ""),
                    elasticsearch_refresh_interval="1s",
                    indexer_metrics_port=0,
                    tantivy_reload_interval_seconds=0,
                )

            a = settings_for("a")
            backlog = [{**doc, "id": f"{doc['id']}~{n}"} for n in range(args.multiplier) for doc in docs]
            stream_rate, bulk_rate = await throughput(a, client[a.mongodb_database]["packages"], backlog)
            b = settings_for("b")
            delays = await freshness(b, client[b.mongodb_database]["packages"], args.freshness_samples)
            c = settings_for("c")
            rss = await memory(c, client[c.mongodb_database]["packages"], docs, args.multiplier)
            await client.close()
        finally:
            stop_process(server)
    print(f"backend: {kind}; {len(docs)} demo documents; SecantusDB {url}\n")
    print(f"(a) {len(docs) * args.multiplier} documents: stream (backlog drain) {stream_rate:.0f} docs/s; "
          f"plain bulk {bulk_rate:.0f} docs/s; "
          f"ratio {stream_rate / bulk_rate:.2f} (target >= 0.8)")  # fmt: skip
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(f"(b) freshness over {len(delays)} inserts: p50 {statistics.median(delays) * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms (target p99 < 2000 ms)")  # fmt: skip
    total = len(docs) * args.multiplier
    marks = []
    for tenth in range(1, 11):
        reached = [kib for count, kib in rss if count >= total * tenth / 10]
        marks.append(f"{tenth * 10}%: {reached[0] / 1024:.0f} MiB" if reached else f"{tenth * 10}%: -")
    print(f"(c) stream RSS over {total} documents, peak {max(k for _, k in rss) / 1024:.0f} MiB; " + ", ".join(marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--multiplier", type=int, default=10)
    parser.add_argument("--freshness-samples", type=int, default=100)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
