"""The indexer's Lambda handler (`src.serverless.indexer.handler`) fed real SecantusDB change events,
converted to the `aws:docdb` event-source format, against Tantivy (in a temporary directory) and the
Elasticsearch at ELASTICSEARCH_URL."""

from __future__ import annotations

import asyncio
import http.server
import re
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pymongo import AsyncMongoClient

from src.cache.factory import cache_policy
from src.cache.keys import generation_key
from src.indexer.errors import SourceUnavailable
from src.search.backends.factory import create_backend
from src.search.errors import SearchUnavailable
from src.search.schema import load_schema
from src.serverless import indexer as lambda_indexer
from src.serverless.docdb import DocDbEvent, docdb_event
from src.serverless.indexer import AliasMissing, BatchSummary, UnexpectedEvent, build_runtime
from src.settings import IndexerSettings, get_indexer_settings
from tests.conftest import ENGINES, REDIS_URL, drop_all, http_server, load, require_redis
from tests.integration.test_indexer_secantus import (
    collection_documents,
    index_documents,
    make_settings,
    package,
    settings_env,
)

pytestmark = pytest.mark.integration

ARN = "arn:aws:rds:eu-west-1:123456789012:cluster:search-source"


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest, secantus_url: str, tmp_path: Path) -> IndexerSettings:
    return make_settings(str(request.param), secantus_url, tmp_path).replace(indexer_retry_attempts=2)


@pytest.fixture
async def collection(settings: IndexerSettings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.source.url)
    try:
        yield client[settings.source.database][settings.source.collection]
    finally:
        await client.drop_database(settings.source.database)
        await client.close()


class Recorder:
    """A change stream opened before the changes: what the DocumentDB event source would deliver."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection
        self.stream: Any = None

    async def __aenter__(self) -> Recorder:
        self.stream = await self.collection.watch(full_document="updateLookup", max_await_time_ms=200)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stream.close()

    async def take(self, count: int) -> list[Mapping[str, object]]:
        events: list[Mapping[str, object]] = []
        async with asyncio.timeout(30):
            while len(events) < count:
                raw = await self.stream.try_next()
                if raw is not None:
                    events.append(raw)
        return events


async def prepared_index(settings: IndexerSettings) -> None:
    """The alias the first reindex task would have created (empty here)."""
    backend = create_backend(settings, load_schema(settings.index.schema_path))
    try:
        await load(backend, [])
    finally:
        await backend.close()


async def _drop_index(settings: IndexerSettings) -> None:
    backend = create_backend(settings, load_schema(settings.index.schema_path))
    try:
        await drop_all(backend)
    finally:
        await backend.close()


@pytest.fixture
async def index(settings: IndexerSettings) -> AsyncIterator[None]:
    await prepared_index(settings)
    try:
        yield
    finally:
        await _drop_index(settings)


def invoke_all(settings: IndexerSettings, events: list[DocDbEvent]) -> list[Any]:
    """Each event through the runtime's `__call__` (what `handler` does), in order, on one runtime."""
    runtime = build_runtime(settings)
    try:
        return [runtime(event) for event in events]
    finally:
        runtime.close()


async def test_handler_when_documents_change_index_follows(
    settings: IndexerSettings, collection: Any, index: None
) -> None:
    async with Recorder(collection) as recorder:
        await collection.insert_many([package(n) for n in range(6)])
        await collection.update_one({"_id": "pkg-00001"}, {"$set": {"summary": "updated summary"}})
        await collection.replace_one({"_id": "pkg-00002"}, {"name": "replaced", "installed_size": 7})
        await collection.delete_one({"_id": "pkg-00003"})
        raw = await recorder.take(9)
    batches = [docdb_event(raw[:4], source_arn=ARN), docdb_event(raw[4:], source_arn=ARN)]
    summaries = await asyncio.to_thread(invoke_all, settings, batches)
    assert [(s["events"], s["written"], s["dead_lettered"]) for s in summaries] == [(4, 4, 0), (5, 5, 0)]
    indexed = await _indexed(settings)
    assert indexed == await collection_documents(collection)
    assert indexed["pkg-00002"] == {"name": "replaced", "installed_size": 7, "id": "pkg-00002"}
    checkpoint = await collection.database[settings.indexer.checkpoint_collection].find_one(
        {"_id": settings.indexer.consumer}
    )
    assert checkpoint is not None
    assert checkpoint["token"] == batches[1]["events"][-1]["event"]["_id"]


async def _indexed(settings: IndexerSettings) -> dict[str, Any]:
    from src.indexer.factory import build_indexer

    indexer = build_indexer(settings, invalidation=False)
    try:
        return await index_documents(indexer)
    finally:
        await indexer.close()


async def test_handler_when_poison_document_dead_letters_it_and_the_batch_succeeds(
    settings: IndexerSettings, collection: Any, index: None
) -> None:
    async with Recorder(collection) as recorder:
        await collection.insert_many([package(1), package(2, installed_size="huge"), package(3)])
        raw = await recorder.take(3)
    unreadable = {"event": {"operationType": "insert", "documentKey": {"_id": "pkg-00009"}, "fullDocument": 5}}
    event = docdb_event(raw, source_arn=ARN)
    event["events"].append(unreadable)  # type: ignore[arg-type]
    [summary] = await asyncio.to_thread(invoke_all, settings, [event])
    assert (summary["written"], summary["dead_lettered"]) == (2, 2)
    assert set(await _indexed(settings)) == {"pkg-00001", "pkg-00003"}
    letters = await collection.database[settings.indexer.dead_letter_collection].find({}).sort("doc_id").to_list()
    assert [(letter["doc_id"], "installed_size" in letter["reason"]) for letter in letters] == [
        ("pkg-00002", True),
        ("pkg-00009", False),
    ]


async def test_handler_when_an_id_or_a_size_is_refused_dead_letters_it_unsent_and_the_batch_succeeds(
    settings: IndexerSettings, collection: Any, index: None
) -> None:
    limited = settings.replace(indexer_max_document_bytes=4096)
    async with Recorder(collection) as recorder:
        await collection.insert_many(
            [package(1), {"_id": {"a": 1}, "name": "keyed by a document"}, package(3, description="word " * 2000)]
        )
        raw = await recorder.take(3)
    [summary] = await asyncio.to_thread(invoke_all, limited, [docdb_event(raw, source_arn=ARN)])
    assert (summary["written"], summary["dead_lettered"]) == (1, 2)
    assert set(await _indexed(limited)) == {"pkg-00001"}
    found = await collection.database[settings.indexer.dead_letter_collection].find({}).to_list()
    reasons = {letter["doc_id"]: letter["reason"] for letter in found}
    assert sorted(reasons) == ["pkg-00003", '{"a": 1}']
    assert re.fullmatch(r"document is \d+ bytes, over INDEXER_MAX_DOCUMENT_BYTES=4096", reasons["pkg-00003"])
    assert reasons['{"a": 1}'].startswith('_id {"a": 1} (dict) cannot be an index id')


async def test_handler_when_older_event_is_replayed_keeps_the_newer_document(
    settings: IndexerSettings, collection: Any, index: None
) -> None:
    async with Recorder(collection) as recorder:
        await collection.insert_one(package(1, summary="first"))
        first = await recorder.take(1)
        await collection.update_one({"_id": "pkg-00001"}, {"$set": {"summary": "second"}})
        second = await recorder.take(1)
    # The newer change is applied, then Lambda retries the older batch (a replay): it must not win.
    await asyncio.to_thread(
        invoke_all, settings, [docdb_event(second, source_arn=ARN), docdb_event(first, source_arn=ARN)]
    )
    assert (await _indexed(settings))["pkg-00001"]["summary"] == "second"


def flaky_proxy(upstream: str, received: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    """Forwards to the real Elasticsearch, except bulk requests, answered 503 (an overloaded cluster)."""
    client = httpx.Client(base_url=upstream, timeout=10)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            received.append(f"{self.command} {self.path}")
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if "/_bulk" in self.path:
                status, headers, content = 503, {"content-type": "application/json"}, b'{"error":"overloaded"}'
            else:
                forwarded = client.request(
                    self.command, self.path, content=body, headers={"content-type": "application/json"}
                )
                status, content = forwarded.status_code, forwarded.content
                headers = {"content-type": forwarded.headers.get("content-type", "application/json")}
            self.send_response(status)
            for name, value in (headers | {"x-elastic-product": "Elasticsearch"}).items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Handler


async def test_handler_when_bulk_fails_transiently_fails_the_invocation(secantus_url: str, tmp_path: Path) -> None:
    settings = make_settings("elasticsearch", secantus_url, tmp_path).replace(
        indexer_retry_attempts=2,
        indexer_retry_base_seconds=0.01,
    )
    await prepared_index(settings)
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.source.url)
    collection = client[settings.source.database][settings.source.collection]
    received: list[str] = []
    try:
        async with Recorder(collection) as recorder:
            await collection.insert_one(package(1))
            event = docdb_event(await recorder.take(1), source_arn=ARN)
        with http_server(flaky_proxy(settings.engine.elasticsearch_url, received)) as proxy:
            flaky = settings.replace(elasticsearch_url=proxy)
            with pytest.raises(SearchUnavailable):
                await asyncio.to_thread(invoke_all, flaky, [event])
        assert sum("/_bulk" in line for line in received) >= 2  # retried, then given up: Lambda retries the batch
        checkpoints = collection.database[settings.indexer.checkpoint_collection]
        assert await checkpoints.find_one({"_id": settings.indexer.consumer}) is None  # nothing acknowledged
        [summary] = await asyncio.to_thread(invoke_all, settings, [event])  # Lambda's retry, the engine back
        assert summary["written"] == 1
        assert set(await _indexed(settings)) == {"pkg-00001"}
    finally:
        await _drop_index(settings)
        await client.drop_database(settings.source.database)
        await client.close()


async def test_handler_when_source_is_unreachable_fails_the_invocation(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"mongodb://127.0.0.1:{sock.getsockname()[1]}/?directConnection=true"
    settings = make_settings("tantivy", closed, tmp_path).replace(
        indexer_retry_attempts=1,
        mongodb_timeout_seconds=0.3,
    )
    await prepared_index(settings)
    event: DocDbEvent = {"eventSource": "aws:docdb", "events": []}
    with pytest.raises(SourceUnavailable):
        await asyncio.to_thread(invoke_all, settings, [event])


async def test_handler_when_alias_is_missing_fails_until_the_first_reindex(secantus_url: str, tmp_path: Path) -> None:
    settings = make_settings("tantivy", secantus_url, tmp_path)
    with pytest.raises(AliasMissing):
        await asyncio.to_thread(invoke_all, settings, [{"eventSource": "aws:docdb", "events": []}])


async def test_handler_when_not_a_docdb_batch_refuses_it(secantus_url: str, tmp_path: Path) -> None:
    settings = make_settings("tantivy", secantus_url, tmp_path)
    await prepared_index(settings)
    with pytest.raises(UnexpectedEvent):
        await asyncio.to_thread(invoke_all, settings, [{"eventSource": "aws:sqs", "events": []}])


def purge_receiver(received: list[tuple[str, str]]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PURGE(self) -> None:
            received.append((self.command, self.headers.get("xkey-purge", "")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Handler


async def test_handler_when_batch_is_applied_invalidates_the_cache_and_purges_before_returning(
    secantus_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_redis()
    received: list[tuple[str, str]] = []
    base = make_settings("tantivy", secantus_url, tmp_path)
    await prepared_index(base)
    client: AsyncMongoClient[Any] = AsyncMongoClient(base.source.url)
    collection = client[base.source.database][base.source.collection]
    namespace = cache_policy(base.replace(redis_url=REDIS_URL)).namespace
    key = generation_key(namespace, load_schema(base.index.schema_path).fingerprint)
    store = redis.Redis.from_url(REDIS_URL)
    try:
        async with Recorder(collection) as recorder:
            await collection.insert_one(package(1))
            event = docdb_event(await recorder.take(1), source_arn=ARN)
        with http_server(purge_receiver(received)) as purge_url:
            env = settings_env(base) | {
                "REDIS_URL": REDIS_URL,
                "CDN_PURGER": "xkey",
                "CDN_PURGE_URL": purge_url,
                "CDN_PURGE_REPEAT_SECONDS": "0.3",
            }
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            get_indexer_settings.cache_clear()
            before = int(store.get(key) or 0)

            def once() -> BatchSummary:
                try:
                    return lambda_indexer.handler(event, None)
                finally:
                    lambda_indexer.reset()

            summary = await asyncio.to_thread(once)
            sent = list(received)  # what had gone out when the handler returned
        assert summary["written"] == 1
        assert int(store.get(key) or 0) == before + 1
        assert [(method, "doc-pkg-00001" in keys.split()) for method, keys in sent] == [("PURGE", True)] * 2
    finally:
        store.delete(key)
        store.close()
        await client.drop_database(base.source.database)
        await client.close()
