"""Nothing one document does stops the stream, on real servers: SecantusDB's change stream into
Elasticsearch (512 MB heap in CI), OpenSearch and Tantivy.

A document over the engine's own limits or over INDEXER_MAX_DOCUMENT_BYTES, an `_id` the index cannot
hold, a field the mapping refuses: each is dead-lettered with its reason and a change after it is served
within 15 s. An engine that refuses every write (a flood-stage disk block, answered 429) holds the stream
back visibly (stalled, alerted) and loses nothing; `python -m indexer stream` with a full queue behind
such a write exits within its grace on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient

from src.indexer.factory import Indexer, build_indexer, read_indexer_status
from src.search.query import BackendQuery, ParsedQuery, SortSpec
from src.settings import IndexerSettings
from tests.conftest import ENGINES, drop_all
from tests.integration.test_indexer_secantus import StreamTask, make_settings, package, settings_env, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVED_WITHIN_SECONDS = 15.0
"""The issue's bound: a change after a refused document is served within this (a real-time bound on
purpose: before, it was never served at all)."""

type Configure = Callable[..., IndexerSettings]


@pytest.fixture
def configure(secantus_url: str, tmp_path: Path) -> Iterator[Configure]:
    """Settings for an engine (with overrides) on a fresh database, alias and consumer; all dropped after."""
    made: list[IndexerSettings] = []

    def make(kind: str, **overrides: Any) -> IndexerSettings:
        settings = make_settings(kind, secantus_url, tmp_path).replace(
            **{"indexer_consumer": f"refusals-{uuid.uuid4().hex[:8]}", **overrides}
        )
        made.append(settings)
        return settings

    yield make
    for settings in made:
        asyncio.run(_cleanup(settings))


async def _cleanup(settings: IndexerSettings) -> None:
    indexer = build_indexer(settings, invalidation=False)
    try:
        for index in await indexer.backend.list_indices():
            await _unblock(settings, index)
        await drop_all(indexer.backend)
        await indexer.source._client.drop_database(settings.source.database)
    finally:
        await indexer.close()


@pytest.fixture
async def collection(configure: Configure) -> AsyncIterator[Callable[[IndexerSettings], Any]]:
    """The source collection of some settings (one client per test)."""
    clients: list[AsyncMongoClient[Any]] = []

    def of(settings: IndexerSettings) -> Any:
        client: AsyncMongoClient[Any] = AsyncMongoClient(settings.source.url)
        clients.append(client)
        return client[settings.source.database][settings.source.collection]

    yield of
    for client in clients:
        await client.close()


def large_package(number: int, megabytes: float) -> dict[str, object]:
    """A package whose searchable description is `megabytes` of distinct-enough words (one field, so the
    indexed form is about twice the document: the document plus its normalised text)."""
    words = " ".join(f"word{n % 997}" for n in range(int(megabytes * 1024 * 1024 / 8)))
    return package(number, description=words)


async def served(indexer: Indexer, doc_id: str) -> bool:
    """Whether a search (no forced refresh: the engine's own refresh interval) finds the document."""
    query = BackendQuery(query=ParsedQuery(), filters=(), facets=(), sort=SortSpec(), limit=100)
    try:
        return doc_id in {hit.id for hit in (await indexer.backend.search(query)).hits}
    except Exception:
        return False


async def letters(collection: Any, settings: IndexerSettings) -> dict[str, dict[str, Any]]:
    found = await collection.database[settings.indexer.dead_letter_collection].find({}).to_list()
    return {str(letter["doc_id"]): letter for letter in found}


async def alias_ready(indexer: Indexer) -> bool:
    """The stream's first copy is over: the alias points at its index and its checkpoint is saved (the copy
    still writes the index's building mark and the checkpoint just after the alias moves)."""
    if await indexer.backend.current_index() is None:
        return False
    return await indexer.checkpoints.load(indexer.stream_options.consumer) is not None


def engine_url(settings: IndexerSettings) -> str:
    return settings.engine.elasticsearch_url or settings.engine.opensearch_url


async def _block(settings: IndexerSettings, index: str) -> None:
    """What an engine does when its disk passes the flood-stage watermark: every write to `index` is 429."""
    async with httpx.AsyncClient() as client:
        response = await client.put(
            f"{engine_url(settings)}/{index}/_settings", json={"index.blocks.read_only_allow_delete": True}
        )
        response.raise_for_status()


async def _unblock(settings: IndexerSettings, index: str) -> None:
    if not engine_url(settings):
        return
    async with httpx.AsyncClient() as client:
        await client.put(
            f"{engine_url(settings)}/{index}/_settings", json={"index.blocks.read_only_allow_delete": None}
        )


@pytest.mark.parametrize("kind", ["elasticsearch"])
async def test_stream_when_a_document_is_over_the_engines_limit_dead_letters_it_and_serves_the_next_change(
    kind: str, configure: Configure, collection: Callable[[IndexerSettings], Any]
) -> None:
    """12 MB: Elasticsearch at a 512 MB heap refuses it alone (indexing pressure, 429 with its figures).
    OpenSearch 2.19 takes a single document up to ~25 MB at that heap, more than a MongoDB document can
    hold (16 MiB), so only Elasticsearch can show this through a change stream."""
    settings = configure(kind, indexer_max_document_bytes=64 * 1024 * 1024)  # the up-front check lets it by
    source = collection(settings)
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: alias_ready(stream.indexer))
        await source.insert_one(large_package(1, megabytes=12))
        await source.insert_one(package(2))
        started = time.monotonic()
        await wait_for(lambda: served(stream.indexer, "pkg-00002"), timeout=SERVED_WITHIN_SECONDS)
        elapsed = time.monotonic() - started
        refused = (await letters(source, settings))["pkg-00001"]
        assert not await served(stream.indexer, "pkg-00001")
    finally:
        await stream.close()
    assert refused["reason"].startswith("too large for elasticsearch on its own (429): es_rejected_execution_exception")
    assert "primary_operation_bytes=" in refused["reason"]
    assert refused["document"] is None  # over 8 MiB: the source collection has it
    assert elapsed < SERVED_WITHIN_SECONDS


@pytest.mark.parametrize("kind", ENGINES)
async def test_stream_when_a_document_is_over_the_size_limit_dead_letters_it_unsent_and_serves_the_next_change(
    kind: str, configure: Configure, collection: Callable[[IndexerSettings], Any]
) -> None:
    settings = configure(kind)  # INDEXER_MAX_DOCUMENT_BYTES at its default, 2 MiB
    source = collection(settings)
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: alias_ready(stream.indexer))
        await source.insert_one(large_package(1, megabytes=3))
        await source.insert_one(package(2))
        await wait_for(lambda: served(stream.indexer, "pkg-00002"), timeout=SERVED_WITHIN_SECONDS)
        refused = (await letters(source, settings))["pkg-00001"]
    finally:
        await stream.close()
    assert re.fullmatch(r"document is \d{7} bytes, over INDEXER_MAX_DOCUMENT_BYTES=2097152", refused["reason"])
    assert refused["document"] is None


@pytest.mark.parametrize("kind", ENGINES)
async def test_stream_when_ids_have_no_index_id_dead_letters_them_and_keeps_the_others(
    kind: str, configure: Configure, collection: Callable[[IndexerSettings], Any]
) -> None:
    settings = configure(kind)
    source = collection(settings)
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: alias_ready(stream.indexer))
        # A string id that is the text a document id would have become before: it must stay itself.
        await source.insert_many([{"_id": "{'a': 1}", "name": "string"}, {"_id": {"a": 1}, "name": "document"}])
        await source.insert_many([{"_id": 1.5, "name": "float"}, {"_id": 7, "name": "integer"}])
        await source.delete_one({"_id": {"a": 1}})
        await wait_for(lambda: served(stream.indexer, "7"), timeout=SERVED_WITHIN_SECONDS)
        refused = await letters(source, settings)
        string_id = await stream.indexer.backend.get("{'a': 1}")
    finally:
        await stream.close()
    assert sorted(refused) == ["1.5", '{"a": 1}']
    assert refused['{"a": 1}']["reason"] == (
        '_id {"a": 1} (dict) cannot be an index id: only strings, ObjectIds and integers can'
    )
    assert refused['{"a": 1}']["document"] == {"name": "document", "id": '{"a": 1}'}
    assert string_id == {"name": "string", "id": "{'a': 1}"}


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
async def test_stream_when_the_mapping_refuses_a_field_dead_letters_it_with_the_engines_reason(
    kind: str, configure: Configure, collection: Callable[[IndexerSettings], Any]
) -> None:
    settings = configure(kind)
    source = collection(settings)
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: alias_ready(stream.indexer))
        await source.insert_one(package(1, name="n" * 40_000))  # a keyword over Lucene's 32766-byte term
        await source.insert_one(package(2))
        await wait_for(lambda: served(stream.indexer, "pkg-00002"), timeout=SERVED_WITHIN_SECONDS)
        refused = (await letters(source, settings))["pkg-00001"]
    finally:
        await stream.close()
    assert re.match(r"(document_parsing_exception|illegal_argument_exception): ", refused["reason"])
    assert len(refused["reason"]) < 1100  # the engine quotes the whole value; the letter keeps its start
    assert refused["document"]["name"] == "n" * 40_000


@pytest.mark.parametrize("kind", ["elasticsearch", "opensearch"])
async def test_stream_when_the_engine_refuses_every_write_holds_back_says_stalled_and_catches_up(
    kind: str, configure: Configure, collection: Callable[[IndexerSettings], Any]
) -> None:
    settings = configure(
        kind, indexer_pressure_alert_seconds=1.0, indexer_status_stall_seconds=1.0, indexer_retry_cap_seconds=0.2
    )
    source = collection(settings)
    stream = StreamTask(settings)
    consumer = settings.indexer.consumer

    def stalled() -> float | None:
        return REGISTRY.get_sample_value("search_indexer_write_stalled", {"consumer": consumer})

    async def is_stalled() -> bool:
        return stalled() == 1.0

    try:
        await wait_for(lambda: alias_ready(stream.indexer))
        index = await stream.indexer.backend.current_index()
        assert index is not None
        await _block(settings, index)
        await source.insert_many([package(n) for n in range(5)])
        await wait_for(is_stalled)
        status = await read_indexer_status(settings, now=time.time())
        assert status["state"] == "stalled"
        await _unblock(settings, index)
        await wait_for(lambda: served(stream.indexer, "pkg-00004"), timeout=SERVED_WITHIN_SECONDS)
        assert stalled() == 0.0
        assert await letters(source, settings) == {}  # a busy engine is nobody's fault: nothing dead-lettered
    finally:
        await stream.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sample(exposition: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", exposition, flags=re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_stream_command_when_sigterm_comes_with_a_full_queue_behind_a_refused_write_exits_within_its_grace(
    configure: Configure, collection: Callable[[IndexerSettings], Any]
) -> None:
    grace = 4.0
    settings = configure("elasticsearch", indexer_batch_max_events=1, indexer_queue_batches=2)
    source = collection(settings)
    metrics = _free_port()
    env = os.environ | settings_env(settings) | {
        "INDEXER_CONSUMER": settings.indexer.consumer,
        "INDEXER_METRICS_PORT": str(metrics),
        "INDEXER_SHUTDOWN_GRACE_SECONDS": str(grace),
    }  # fmt: skip
    command = [sys.executable, "-m", "indexer", "stream"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    indexer = build_indexer(settings, invalidation=False)
    try:
        await wait_for(lambda: alias_ready(indexer))
        await wait_for(lambda: _checkpointed(indexer, settings))
        index = await indexer.backend.current_index()
        assert index is not None
        await _block(settings, index)
        await source.insert_many([package(n) for n in range(12)])

        async def queue_full() -> bool:
            # One batch (of one event) held by the writer, two queued, one more read and waiting.
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{metrics}/metrics")).text
            consumer = settings.indexer.consumer
            read = _sample(text, "search_indexer_events_read_total", consumer=consumer)
            refused = _sample(text, "search_indexer_failures_total", consumer=consumer, kind="pressure")
            return read >= settings.indexer.queue_batches + 2 and refused >= 1

        await wait_for(queue_full)
        before = await indexer.checkpoints.load(settings.indexer.consumer)  # the held batch saves none
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.to_thread(process.wait, 60)
        elapsed = time.monotonic() - started
        after = await indexer.checkpoints.load(settings.indexer.consumer)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read().decode() if process.stderr else ""
        await indexer.close()
    assert returncode == 0, stderr[-2000:]
    # The grace bounds our work (without it the refused write would hold the process until process.wait's 60 s
    # ran out); what is left is the interpreter's own exit, seconds on a loaded machine.
    assert elapsed < grace + 10.0, stderr[-2000:]
    assert "still busy" in stderr  # the held write was cancelled at the grace, not finished
    assert after is not None
    assert before is not None
    assert after.resume_token == before.resume_token  # nothing after the held batch was acknowledged


async def _checkpointed(indexer: Indexer, settings: IndexerSettings) -> bool:
    return await indexer.checkpoints.load(settings.indexer.consumer) is not None
