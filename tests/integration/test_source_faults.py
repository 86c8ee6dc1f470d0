"""The server's own error paths, injected with `configureFailPoint` on SecantusDB (`--enable-test-commands`):
a `getMore` that fails with a network error or with code 286 mid-stream, and a checkpoint write that fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from src.observability.metrics import INDEXER_FAILURES
from src.settings import IndexerSettings
from tests.conftest import start_secantus, stop_process
from tests.integration.test_indexer_secantus import StreamTask, in_sync, make_settings, package, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def faulty_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_secantus(tmp_path_factory.mktemp("faults"), "--enable-test-commands")
    try:
        yield url
    finally:
        stop_process(process)


@pytest.fixture
def settings(faulty_url: str, tmp_path: Path) -> IndexerSettings:
    return make_settings("tantivy", faulty_url, tmp_path)


@pytest.fixture
async def admin(faulty_url: str) -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(faulty_url)
    try:
        yield client
    finally:
        await client.admin.command("configureFailPoint", "failCommand", mode="off")
        await client.close()


def restarts(settings: IndexerSettings) -> float:
    """How often the stream restarted from its checkpoint (the process's own counter)."""
    return float(INDEXER_FAILURES.labels(settings.indexer.consumer, "restart")._value.get())


async def fail(admin: AsyncMongoClient[Any], times: int, commands: list[str], **data: object) -> None:
    await admin.admin.command(
        "configureFailPoint", "failCommand", mode={"times": times}, data={"failCommands": commands, **data}
    )


async def test_stream_when_get_more_loses_the_connection_resumes_without_loss(
    settings: IndexerSettings, admin: AsyncMongoClient[Any]
) -> None:
    collection = admin[settings.source.database][settings.source.collection]
    await collection.insert_many([package(n) for n in range(20)])
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: in_sync(stream.indexer, collection))
        restarted = restarts(settings)
        # getMore and the driver's own resume (a new aggregate) both lose the connection: the stream must restart
        await fail(admin, 4, ["getMore", "aggregate"], closeConnection=True)
        await collection.insert_many([package(n) for n in range(20, 60)])
        await collection.delete_one({"_id": "pkg-00005"})
        await wait_for(lambda: in_sync(stream.indexer, collection))
        assert restarts(settings) > restarted  # the lost connection really interrupted the stream
    finally:
        await stream.close()


async def test_stream_when_get_more_says_history_lost_reindexes_by_itself(
    settings: IndexerSettings, admin: AsyncMongoClient[Any]
) -> None:
    collection = admin[settings.source.database][settings.source.collection]
    await collection.insert_many([package(n) for n in range(10)])
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: in_sync(stream.indexer, collection))
        first = await stream.indexer.backend.current_index()
        await fail(admin, 1, ["getMore"], errorCode=286, errmsg="change stream history lost")
        await collection.insert_many([package(n) for n in range(10, 25)])
        await wait_for(lambda: in_sync(stream.indexer, collection))
        assert await stream.indexer.backend.current_index() != first  # the automatic reindex swapped the alias
    finally:
        await stream.close()


async def test_stream_when_checkpoint_write_fails_applies_the_batch_again_and_converges(
    settings: IndexerSettings, admin: AsyncMongoClient[Any]
) -> None:
    collection = admin[settings.source.database][settings.source.collection]
    checkpoints = admin[settings.source.database][settings.indexer.checkpoint_collection]
    await collection.insert_many([package(n) for n in range(10)])
    stream = StreamTask(settings)
    try:
        await wait_for(lambda: in_sync(stream.indexer, collection))

        async def checkpointed() -> bool:
            return await checkpoints.find_one({"_id": settings.indexer.consumer}) is not None

        await wait_for(checkpointed)
        before = await checkpoints.find_one({"_id": settings.indexer.consumer})
        restarted = restarts(settings)
        await fail(admin, 8, ["update"], errorCode=50, errmsg="injected: checkpoint write timed out")
        await collection.insert_many([package(n) for n in range(10, 40)])  # inserts: only the checkpoint updates fail
        await wait_for(lambda: in_sync(stream.indexer, collection))
        assert before is not None

        async def moved_on() -> bool:  # once checkpoint writes go through again, the checkpoint moves on
            after = await checkpoints.find_one({"_id": settings.indexer.consumer})
            return after is not None and after["token"] != before["token"]

        await wait_for(moved_on, timeout=30)
        assert await in_sync(stream.indexer, collection)
        assert restarts(settings) > restarted  # the refused checkpoint write restarted it from the old checkpoint
    finally:
        await stream.close()
