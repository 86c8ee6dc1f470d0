"""The indexer end to end on a real MongoDB wire protocol (SecantusDB) into Tantivy, Elasticsearch and OpenSearch.

Inserts, updates, replaces and deletes reach the index; a SIGKILLed stream resumes without loss; a
poison document is dead-lettered while the rest flows; lost history triggers the automatic reindex;
a reindex under concurrent writes never shows readers an empty or partial index.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from src.indexer.factory import Indexer, build_indexer
from src.indexer.reindex import ReindexOptions, run_reindex
from src.indexer.runner import run_stream
from src.search.models import Document
from src.search.query import BackendQuery, ParsedQuery, SortSpec
from src.settings import IndexerSettings
from tests.conftest import ENGINES, drop_all, engine_settings, start_secantus, stop_process

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def package(number: int, **changes: object) -> dict[str, object]:
    return {
        "_id": f"pkg-{number:05d}",
        "name": f"package{number}",
        "summary": f"summary of package {number}",
        "section": ["web", "database", "utils"][number % 3],
        "installed_size": number,
        **changes,
    }


def make_settings(kind: str, url: str, tmp_path: Path) -> IndexerSettings:
    return IndexerSettings.build(
        **engine_settings(kind),
        mongodb_url=url,
        mongodb_database=f"it_{uuid.uuid4().hex[:8]}",
        mongodb_collection="packages",
        index_alias=f"idx-{uuid.uuid4().hex[:8]}",
        tantivy_data_dir=tmp_path / "tantivy",
        tantivy_reload_interval_seconds=0,
        elasticsearch_refresh_interval="200ms",
        opensearch_refresh_interval="200ms",
        indexer_metrics_port=0,
        indexer_heartbeat_seconds=0.2,
        indexer_batch_max_events=50,
        indexer_retry_base_seconds=0.01,
        redis_url="",
    )


def settings_env(settings: IndexerSettings) -> dict[str, str]:
    """The same settings as environment variables, for a subprocess."""
    names = [
        "mongodb_url", "mongodb_database", "mongodb_collection", "index_alias", "tantivy_data_dir",
        "elasticsearch_url", "elasticsearch_refresh_interval", "opensearch_url", "opensearch_refresh_interval",
        "indexer_metrics_port", "indexer_heartbeat_seconds",
        "indexer_batch_max_events", "indexer_retry_base_seconds", "redis_url",
    ]  # fmt: skip
    return {name.upper(): str(settings.value(name)) for name in names}


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest, secantus_url: str, tmp_path: Path) -> Iterator[IndexerSettings]:
    config = make_settings(str(request.param), secantus_url, tmp_path)
    yield config
    asyncio.run(_cleanup(config))


async def _cleanup(settings: IndexerSettings) -> None:
    indexer = build_indexer(settings)
    try:
        await drop_all(indexer.backend)
        await indexer.source._client.drop_database(settings.source.database)
    finally:
        await indexer.close()


@pytest.fixture
async def collection(settings: IndexerSettings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.source.url)
    yield client[settings.source.database][settings.source.collection]
    await client.close()


async def index_documents(indexer: Indexer) -> dict[str, Document]:
    backend = indexer.backend
    await backend.refresh()
    query = BackendQuery(query=ParsedQuery(), filters=(), facets=(), sort=SortSpec(), limit=9_000)
    page = await backend.search(query)
    return {hit.id: hit.document for hit in page.hits}


async def collection_documents(collection: Any) -> dict[str, Document]:
    found: dict[str, Document] = {}
    async for raw in collection.find({}):
        doc = {k: v for k, v in raw.items() if k != "_id"}
        doc["id"] = str(raw["_id"])
        found[str(raw["_id"])] = doc
    return found


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


async def in_sync(indexer: Indexer, collection: Any, dead: set[str] = frozenset()) -> bool:  # type: ignore[assignment]
    try:
        indexed = await index_documents(indexer)
    except Exception:
        return False
    expected = {k: v for k, v in (await collection_documents(collection)).items() if k not in dead}
    return indexed == expected


class StreamTask:
    """The stream job running in this process."""

    def __init__(self, settings: IndexerSettings) -> None:
        self.indexer = build_indexer(settings)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_stream(
                source=self.indexer.source,
                sink=self.indexer.sink,
                checkpoints=self.indexer.checkpoints,
                invalidate=self.indexer.invalidate,
                stream_options=self.indexer.stream_options,
                reindex_options=self.indexer.reindex_options,
                stop=self.stop,
            )
        )

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)
        await self.indexer.close()


async def test_stream_when_documents_change_index_follows(settings: IndexerSettings, collection: Any) -> None:
    await collection.insert_many([package(n) for n in range(20)])
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: in_sync(stream.indexer, collection))
        await collection.insert_one(package(100))
        await collection.update_one({"_id": "pkg-00001"}, {"$set": {"summary": "updated summary"}})
        await collection.replace_one({"_id": "pkg-00002"}, {"name": "replaced", "installed_size": 7})
        await collection.delete_one({"_id": "pkg-00003"})
        await wait_for(lambda: in_sync(stream.indexer, collection))
        indexed = await index_documents(stream.indexer)
        assert indexed["pkg-00001"]["summary"] == "updated summary"
        assert indexed["pkg-00002"] == {"name": "replaced", "installed_size": 7, "id": "pkg-00002"}
        assert "pkg-00003" not in indexed
        assert "pkg-00100" in indexed
        checkpoint = await stream.indexer.checkpoints.load(settings.indexer.consumer)
        assert checkpoint is not None
    finally:
        await stream.close()


async def test_stream_when_poison_document_dead_letters_it_and_the_rest_flows(
    settings: IndexerSettings, collection: Any
) -> None:
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: _alias_exists(stream.indexer))
        await collection.insert_many([package(1), package(2, installed_size="huge"), package(3)])
        await wait_for(lambda: in_sync(stream.indexer, collection, dead={"pkg-00002"}))
        letters = await collection.database[settings.indexer.dead_letter_collection].find({}).to_list()
        assert [(letter["doc_id"], "installed_size" in letter["reason"]) for letter in letters] == [("pkg-00002", True)]
    finally:
        await stream.close()


async def test_stream_when_killed_mid_batch_resumes_and_loses_nothing(
    settings: IndexerSettings, collection: Any
) -> None:
    env = os.environ | settings_env(settings)
    command = [sys.executable, "-m", "indexer", "stream"]
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    indexer = build_indexer(settings)
    try:
        await wait_for(lambda: _alias_exists(indexer))
        for start in range(0, 600, 50):
            await collection.insert_many([package(n) for n in range(start, start + 50)])
            await collection.update_many({"installed_size": {"$lt": start}}, {"$inc": {"installed_size": 1}})
            if start == 300:
                first.send_signal(signal.SIGKILL)  # while it is busy writing batches (of 50 events)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
        second = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_for(lambda: in_sync(indexer, collection), timeout=120)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert second.returncode == 0
        assert len(await index_documents(indexer)) == 600
    finally:
        if first.poll() is None:
            first.kill()
        await indexer.close()


async def _alias_exists(indexer: Indexer) -> bool:
    return await indexer.backend.current_index() is not None


async def test_reindex_when_writes_continue_readers_never_see_a_partial_index(
    settings: IndexerSettings, collection: Any
) -> None:
    await collection.insert_many([package(n) for n in range(300)])
    stream = StreamTask(settings)
    reader_counts: list[int] = []
    try:
        await wait_for(lambda: in_sync(stream.indexer, collection))
        before = await stream.indexer.backend.current_index()
        writing = True

        async def write() -> None:
            number = 1000
            while writing:
                await collection.insert_one(package(number))
                await collection.update_one({"_id": f"pkg-{number % 300:05d}"}, {"$set": {"summary": f"rev {number}"}})
                number += 1
                await asyncio.sleep(0.005)

        async def read() -> None:
            while writing:
                reader_counts.append(len(await index_documents(stream.indexer)))
                await asyncio.sleep(0.01)

        writer, reader = asyncio.create_task(write()), asyncio.create_task(read())
        scheduled = build_indexer(settings, save_checkpoint=False)
        try:
            result = await run_reindex(
                source=scheduled.source,
                sink=scheduled.sink,
                checkpoints=scheduled.checkpoints,
                invalidate=None,
                options=ReindexOptions(batch_size=64, save_checkpoint=False),
            )
        finally:
            writing = False
            await asyncio.gather(writer, reader)
            await scheduled.close()
        assert result.index != before
        assert await stream.indexer.backend.current_index() == result.index
        await wait_for(lambda: in_sync(stream.indexer, collection))
    finally:
        await stream.close()
    assert reader_counts
    assert min(reader_counts) >= 300


@pytest.fixture(params=ENGINES)
def short_history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexerSettings]:
    """A server keeping only 5 oplog entries, so history can be made to expire."""
    engine_settings(str(request.param))  # requires the engine before starting a server a skip would leave running
    url, process = start_secantus(tmp_path / "short", "--oplog-max-entries", "5")
    try:
        config = make_settings(str(request.param), url, tmp_path)
        yield config
        asyncio.run(_cleanup(config))
    finally:
        stop_process(process)


async def test_stream_when_history_expired_reindexes_by_itself(short_history: IndexerSettings) -> None:
    settings = short_history
    client: AsyncMongoClient[Any] = AsyncMongoClient(settings.source.url)
    collection = client[settings.source.database][settings.source.collection]
    try:
        await collection.insert_many([package(n) for n in range(10)])
        stream = StreamTask(settings)
        await wait_for(lambda: in_sync(stream.indexer, collection))
        first_index = await stream.indexer.backend.current_index()
        await stream.close()

        for number in range(10, 40):
            await collection.insert_one(package(number))
        await collection.delete_one({"_id": "pkg-00000"})
        await client.admin.command("secantusAdmin.pruneOplog")

        stream = StreamTask(settings)
        try:
            await wait_for(lambda: in_sync(stream.indexer, collection))
            assert await stream.indexer.backend.current_index() != first_index
            await collection.insert_one(package(99))
            await wait_for(lambda: in_sync(stream.indexer, collection))
        finally:
            await stream.close()
    finally:
        await client.close()
