"""The CheckpointStore and DeadLetterStore contracts, on the in-memory fakes and on SecantusDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from src.indexer.checkpoint import CheckpointStore, DeadLetterStore, MongoCheckpointStore, MongoDeadLetterStore
from src.indexer.errors import SourceUnavailable
from src.indexer.models import Checkpoint, ClusterTime, DeadLetter, ResumeToken
from tests.fakes.change_source import MemoryCheckpointStore, MemoryDeadLetters

UNREACHABLE = "mongodb://127.0.0.1:9/?directConnection=true"


@dataclass(frozen=True, slots=True)
class Stores:
    checkpoints: CheckpointStore
    dead_letters: DeadLetterStore


@pytest.fixture(params=["memory", pytest.param("secantus", marks=pytest.mark.integration)])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield Stores(MemoryCheckpointStore(), MemoryDeadLetters())
        return
    url = request.getfixturevalue("secantus_url")
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    database = f"checkpoints_{uuid.uuid4().hex[:8]}"
    try:
        yield Stores(
            MongoCheckpointStore(client[database], "checkpoints"), MongoDeadLetterStore(client[database], "dead")
        )
    finally:
        await client.drop_database(database)
        await client.close()


@pytest.fixture(params=["memory", pytest.param("mongodb", marks=pytest.mark.integration)])
async def down(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    """Stores whose database does not answer."""
    if request.param == "memory":
        yield Stores(MemoryCheckpointStore(fail=True), MemoryDeadLetters(fail=True))
        return
    client: AsyncMongoClient[Any] = AsyncMongoClient(UNREACHABLE, serverSelectionTimeoutMS=200)
    try:
        yield Stores(MongoCheckpointStore(client["x"], "checkpoints"), MongoDeadLetterStore(client["x"], "dead"))
    finally:
        await client.close()


def letter(consumer: str, doc_id: str, reason: str, version: int = 1) -> DeadLetter:
    return DeadLetter(
        consumer=consumer, doc_id=doc_id, reason=reason, version=version, document={"id": doc_id}, at=1_700_000_000.5
    )


async def test_save_when_loaded_back_returns_the_checkpoint_per_consumer(stores: Stores) -> None:
    checkpoints = stores.checkpoints
    assert await checkpoints.load("one") is None
    first = Checkpoint("one", {"_data": "aa"}, ClusterTime(10, 2), 3, saved_at=100.5, token_at=99.5)
    await checkpoints.save(first)
    await checkpoints.save(Checkpoint("two", {"_data": "bb"}, None, 0, saved_at=1.0, token_at=1.0))
    assert await checkpoints.load("one") == first
    replaced = Checkpoint("one", {"_data": "cc"}, ClusterTime(11, 0), 0, saved_at=200.0, token_at=200.0)
    await checkpoints.save(replaced)
    assert await checkpoints.load("one") == replaced
    assert (await checkpoints.load("two")) == Checkpoint("two", {"_data": "bb"}, None, 0, saved_at=1.0, token_at=1.0)


async def test_save_when_token_is_nested_round_trips_it_unchanged(stores: Stores) -> None:
    token: ResumeToken = {"_data": "8263F0A1B2000000012B022C0100296E5A1004", "_typeBits": "QA=="}
    saved = Checkpoint("nested", token, ClusterTime(2_000_000_000, 4_000_000), 1022, saved_at=1.25, token_at=0.5)
    await stores.checkpoints.save(saved)
    assert await stores.checkpoints.load("nested") == saved


async def test_put_when_same_document_refused_again_keeps_the_latest_letter(stores: Stores) -> None:
    dead = stores.dead_letters
    assert await dead.letters("a") == []
    await dead.put(letter("a", "doc-2", "first", version=1))
    await dead.put(letter("a", "doc-1", "other"))
    await dead.put(letter("b", "doc-2", "other consumer"))
    await dead.put(letter("a", "doc-2", "second", version=2))
    found = await dead.letters("a")
    assert [(item["doc_id"], item["reason"], item["version"]) for item in found] == [
        ("doc-1", "other", 1),
        ("doc-2", "second", 2),
    ]
    assert found[1]["document"] == {"id": "doc-2"}
    assert found[1]["at"] == 1_700_000_000.5
    assert [item["reason"] for item in await dead.letters("b")] == ["other consumer"]


async def test_load_when_database_unreachable_raises_source_unavailable(down: Stores) -> None:
    with pytest.raises(SourceUnavailable, match="checkpoint"):
        await down.checkpoints.load("one")
    with pytest.raises(SourceUnavailable, match="checkpoint"):
        await down.checkpoints.save(Checkpoint("one", {"_data": "aa"}, None, 0, saved_at=1.0, token_at=1.0))
    with pytest.raises(SourceUnavailable, match="dead"):
        await down.dead_letters.put(letter("a", "doc", "why"))
    with pytest.raises(SourceUnavailable, match="dead"):
        await down.dead_letters.letters("a")
