"""The ChangeSource contract, on the in-memory fake and on SecantusDB."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from src.indexer.errors import CollectionGone
from src.indexer.models import ChangeBatch
from src.indexer.source import BatchLimits, ChangeSource, MongoChangeSource
from tests.fakes.change_source import FakeChangeSource, FakeCollection


@dataclass
class Writer:
    """Writes through the implementation's own path (the fake's methods or PyMongo)."""

    kind: str
    fake: FakeCollection | None = None
    collection: Any = None

    async def insert(self, doc: dict[str, object]) -> None:
        if self.fake is not None:
            self.fake.insert(doc)
        else:
            await self.collection.insert_one(dict(doc))

    async def update(self, doc_id: str, changes: dict[str, object]) -> None:
        if self.fake is not None:
            self.fake.update(doc_id, changes)
        else:
            await self.collection.update_one({"_id": doc_id}, {"$set": changes})

    async def replace(self, doc: dict[str, object]) -> None:
        if self.fake is not None:
            self.fake.replace(doc)
        else:
            await self.collection.replace_one({"_id": doc["_id"]}, {k: v for k, v in doc.items() if k != "_id"})

    async def delete(self, doc_id: str) -> None:
        if self.fake is not None:
            self.fake.delete(doc_id)
        else:
            await self.collection.delete_one({"_id": doc_id})

    async def drop(self) -> None:
        if self.fake is not None:
            self.fake.drop()
        else:
            await self.collection.drop()


@pytest.fixture(params=["fake", pytest.param("secantus", marks=pytest.mark.integration)])
async def source_and_writer(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ChangeSource, Writer]]:
    limits = BatchLimits(max_events=3, max_seconds=0.05, heartbeat_seconds=0.1)
    if request.param == "fake":
        fake = FakeCollection()
        yield FakeChangeSource(fake, limits=limits), Writer("fake", fake=fake)
        return
    url = request.getfixturevalue("secantus_url")
    client: AsyncMongoClient[Any] = AsyncMongoClient(url)
    database = f"contract_{uuid.uuid4().hex[:8]}"
    source = MongoChangeSource(AsyncMongoClient(url), database=database, collection="items", limits=limits)
    writer = Writer("secantus", collection=client[database]["items"])
    yield source, writer
    await client.drop_database(database)
    await client.close()
    await source.close()


async def drain(source: ChangeSource, token: dict[str, Any], **kwargs: Any) -> list[ChangeBatch]:
    return [batch async for batch in source.batches(resume_token=token, until_idle=True, **kwargs)]


async def test_batches_when_changes_follow_position_yields_them_in_order(
    source_and_writer: tuple[ChangeSource, Writer],
) -> None:
    source, writer = source_and_writer
    await writer.insert({"_id": "seed", "name": "seed"})
    token = await source.position()
    await writer.insert({"_id": "a", "name": "alpha"})
    await writer.update("a", {"name": "alpha2"})
    await writer.replace({"_id": "a", "name": "alpha3"})
    await writer.insert({"_id": "b", "name": "beta"})
    await writer.delete("b")
    batches = await drain(source, token)
    events = [event for batch in batches for event in batch.events]
    assert [(e.op, e.doc_id) for e in events] == [
        ("insert", "a"),
        ("update", "a"),
        ("replace", "a"),
        ("insert", "b"),
        ("delete", "b"),
    ]
    assert events[0].document == {"name": "alpha", "id": "a"}
    assert events[1].document == {"name": "alpha3", "id": "a"}  # updateLookup: the document as it is now
    assert events[4].document is None
    versions = [e.version for e in events]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert max(len(batch.events) for batch in batches) <= 3
    assert batches[-1].events == ()


async def test_batches_when_resumed_from_a_batch_token_continues_after_it(
    source_and_writer: tuple[ChangeSource, Writer],
) -> None:
    source, writer = source_and_writer
    token = await source.position()
    for number in range(7):
        await writer.insert({"_id": f"d{number}", "n": number})
    first = await anext(aiter(source.batches(resume_token=token)))
    assert 1 <= len(first.events) <= 3
    rest = await drain(source, first.resume_token, cluster_time=first.cluster_time, seq=first.seq)
    seen = [e.doc_id for e in first.events] + [e.doc_id for batch in rest for e in batch.events]
    assert seen == [f"d{number}" for number in range(7)]


async def test_batches_when_idle_yields_heartbeats_with_a_token(
    source_and_writer: tuple[ChangeSource, Writer],
) -> None:
    source, _ = source_and_writer
    token = await source.position()
    started = time.monotonic()
    heartbeat = await anext(aiter(source.batches(resume_token=token)))
    assert heartbeat.events == ()
    assert heartbeat.resume_token
    assert time.monotonic() - started < 5


async def test_batches_when_collection_dropped_raises_collection_gone(
    source_and_writer: tuple[ChangeSource, Writer],
) -> None:
    source, writer = source_and_writer
    await writer.insert({"_id": "x"})
    token = await source.position()
    await writer.drop()
    with pytest.raises(CollectionGone, match="drop"):
        await drain(source, token)


async def test_snapshot_when_collection_has_documents_yields_all_in_id_order(
    source_and_writer: tuple[ChangeSource, Writer],
) -> None:
    source, writer = source_and_writer
    for doc_id in ["c", "a", "e", "b", "d"]:
        await writer.insert({"_id": doc_id, "v": doc_id.upper()})
    chunks = [chunk async for chunk in source.snapshot(2)]
    assert [len(chunk) for chunk in chunks] == [2, 2, 1]
    assert [event.doc_id for chunk in chunks for event in chunk] == ["a", "b", "c", "d", "e"]
    first = chunks[0][0]
    assert (first.op, first.document, first.version, first.refused) == ("insert", {"v": "A", "id": "a"}, 1, None)
    assert await source.count() == 5


async def test_snapshot_when_an_id_has_no_index_id_yields_it_refused(
    source_and_writer: tuple[ChangeSource, Writer],
) -> None:
    source, writer = source_and_writer
    await writer.insert({"_id": {"a": 1}, "v": "doc"})
    await writer.insert({"_id": 7, "v": "int"})
    events = [event async for chunk in source.snapshot(10) for event in chunk]
    by_id = {event.doc_id: event for event in events}
    assert sorted(by_id) == ["7", '{"a": 1}']
    assert by_id["7"].refused is None
    assert (
        by_id['{"a": 1}'].refused
        == '_id {"a": 1} (dict) cannot be an index id: only strings, ObjectIds and integers can'
    )
    assert by_id['{"a": 1}'].document == {"v": "doc", "id": '{"a": 1}'}


async def test_pending_age_when_changes_wait_reports_their_age(
    source_and_writer: tuple[ChangeSource, Writer],
) -> None:
    source, writer = source_and_writer
    token = await source.position()
    assert await source.pending_age_seconds(token) is None
    await writer.insert({"_id": "late"})
    age = await source.pending_age_seconds(token)
    assert age is not None
    assert age >= 0
