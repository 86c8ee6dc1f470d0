"""The stream, the sink and the reindex on in-memory fakes (source, checkpoints, dead letters, backend)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from src.indexer.errors import CollectionGone, HistoryLost, ReindexFailed
from src.indexer.models import ChangeBatch, Checkpoint
from src.indexer.pipeline import Sink, StreamOptions, apply_batch, stream_once
from src.indexer.reindex import ReindexOptions, run_reindex
from src.indexer.retry import RetryPolicy
from src.indexer.runner import run_stream
from src.indexer.source import BatchLimits
from src.search.backends.base import BulkItemResult, IndexAction
from src.search.errors import IndexIncompatible, SearchUnavailable
from tests.fakes.change_source import FakeChangeSource, FakeCollection, MemoryCheckpointStore, MemoryDeadLetters
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import SCHEMA

FAST = RetryPolicy(attempts=3, base_seconds=0.001, cap_seconds=0.005)
OPTIONS = StreamOptions(consumer="test", retry=FAST, restart_pause_seconds=0.01)

HANG_SECONDS = 60.0
"""Bounds a hang (the test fails), never a speed: every wait below ends as soon as its condition holds."""


@dataclass
class Harness:
    collection: FakeCollection = field(default_factory=FakeCollection)
    backend: FakeSearchBackend = field(default_factory=lambda: FakeSearchBackend(schema=SCHEMA))
    checkpoints: MemoryCheckpointStore = field(default_factory=MemoryCheckpointStore)
    dead: MemoryDeadLetters = field(default_factory=MemoryDeadLetters)
    invalidated: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.source = FakeChangeSource(self.collection, limits=BatchLimits(max_events=4, heartbeat_seconds=0.02))
        self.sink = Sink(backend=self.backend, dead_letters=self.dead, consumer="test", retry=FAST)

    async def invalidate(self, ids: Sequence[str]) -> None:
        self.invalidated.append(list(ids))

    async def index_state(self) -> dict[str, dict[str, object]]:
        docs = self.backend.indices[self.backend.current or ""]
        return {
            doc_id: {k: v for k, v in prepared.source.items() if k != "id"} for doc_id, (prepared, _) in docs.items()
        }

    def collection_state(self) -> dict[str, dict[str, object]]:
        return {k: {f: v for f, v in d.items() if f != "_id"} for k, d in self.collection.documents.items()}

    def start(
        self,
        stop: asyncio.Event,
        *,
        options: StreamOptions = OPTIONS,
        reindex: ReindexOptions | None = None,
        invalidating: bool = True,
    ) -> asyncio.Task[None]:
        """`run_stream` over this harness, as a task, until `stop` is set."""
        return asyncio.create_task(
            run_stream(
                source=self.source,
                sink=self.sink,
                checkpoints=self.checkpoints,
                invalidate=self.invalidate if invalidating else None,
                stream_options=options,
                reindex_options=reindex or ReindexOptions(batch_size=3),
                stop=stop,
            )
        )

    async def run_until(self, condition: object, *, timeout: float = HANG_SECONDS) -> None:
        stop = asyncio.Event()
        task = self.start(stop)
        try:
            async with asyncio.timeout(timeout):
                while not await condition():  # type: ignore[operator]
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await asyncio.wait_for(task, HANG_SECONDS)


async def test_run_stream_when_no_checkpoint_copies_then_tails_changes() -> None:
    h = Harness()
    for number in range(10):
        h.collection.insert({"_id": f"d{number}", "name": f"pkg{number}", "stock": number})

    async def synced() -> bool:
        return h.backend.current is not None and await h.index_state() == h.collection_state()

    async def changes_applied() -> bool:
        state = await h.index_state()
        return "new" in state and "d2" not in state and state.get("d1", {}).get("name") == "renamed"

    await h.run_until(synced)
    h.collection.insert({"_id": "new", "name": "fresh"})
    h.collection.update("d1", {"name": "renamed"})
    h.collection.replace({"_id": "d3", "name": "replaced"})
    h.collection.delete("d2")
    await h.run_until(changes_applied)
    assert await h.index_state() == h.collection_state()
    saved = h.checkpoints.saved["test"]
    assert saved.resume_token == {"_data": str(len(h.collection.log))}
    assert {"new", "d1", "d2", "d3"} <= {doc_id for ids in h.invalidated for doc_id in ids}


async def test_run_stream_when_history_lost_reindexes_and_resumes() -> None:
    h = Harness()
    h.collection.insert({"_id": "a", "name": "alpha"})
    h.checkpoints.saved["test"] = Checkpoint("test", {"_data": "0"}, None, 0, saved_at=0.0, token_at=9e12)
    h.collection.insert({"_id": "b", "name": "beta"})
    h.collection.prune()

    async def synced() -> bool:
        return h.backend.current is not None and await h.index_state() == h.collection_state()

    await h.run_until(synced)
    assert h.checkpoints.saved["test"].resume_token == {"_data": "2"}
    h.collection.insert({"_id": "c", "name": "gamma"})
    await h.run_until(lambda: _has(h, "c"))


@dataclass
class OldLayoutBackend(FakeSearchBackend):
    """A fake whose indices named in `old` were built by an older version: they refuse this one's writes."""

    old: set[str] = field(default_factory=set)

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        if (index or self.current) in self.old:
            raise IndexIncompatible("the index lacks this version's fields")
        return await super().bulk(actions, index=index)


async def test_run_stream_when_index_cannot_take_this_versions_writes_reindexes_and_resumes() -> None:
    backend = OldLayoutBackend(schema=SCHEMA)
    h = Harness(backend=backend)
    old = await backend.create_index()
    await backend.point_alias(old)
    backend.old.add(old)
    h.checkpoints.saved["test"] = Checkpoint("test", {"_data": "0"}, None, 0, saved_at=0.0, token_at=9e12)
    h.collection.insert({"_id": "a", "name": "alpha"})

    async def rebuilt() -> bool:
        return h.backend.current not in (None, old) and await h.index_state() == h.collection_state()

    await h.run_until(rebuilt)
    h.collection.insert({"_id": "b", "name": "beta"})
    await h.run_until(lambda: _has(h, "b"))


async def _has(h: Harness, doc_id: str) -> bool:
    return doc_id in await h.index_state()


async def test_stream_once_when_token_older_than_retention_raises_history_lost() -> None:
    h = Harness()
    old = Checkpoint("test", {"_data": "0"}, None, 0, saved_at=0.0, token_at=0.0)
    with pytest.raises(HistoryLost, match="retention"):
        await stream_once(
            old, source=h.source, sink=h.sink, checkpoints=h.checkpoints, invalidate=None, options=OPTIONS
        )


async def test_run_stream_when_collection_dropped_stops_with_collection_gone() -> None:
    h = Harness()
    h.collection.insert({"_id": "a"})

    async def drop_once_synced() -> bool:
        if h.backend.current is not None and h.collection.documents:
            h.collection.drop()
        return False

    with pytest.raises(CollectionGone, match="drop"):
        await h.run_until(drop_once_synced)


async def test_run_stream_when_source_down_for_a_while_recovers() -> None:
    h = Harness()
    h.collection.insert({"_id": "a", "name": "alpha"})
    h.source.failures_left = 3

    async def synced() -> bool:
        return h.backend.current is not None and await h.index_state() == h.collection_state()

    await h.run_until(synced)
    assert h.source.failed == 3


@dataclass
class FlakyBackend(FakeSearchBackend):
    """Fails whole bulk requests, then single documents, a given number of times."""

    request_failures: int = 0
    document_failures: int = 0
    calls: int = 0

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        self.calls += 1
        if self.request_failures > 0:
            self.request_failures -= 1
            raise SearchUnavailable("503 from the backend")
        results = await super().bulk(actions, index=index)
        if self.document_failures > 0:
            self.document_failures -= 1
            return [BulkItemResult(r.doc_id, ok=False, retryable=True, error="429") for r in results]
        return results


async def test_sink_write_when_transient_failures_retries_until_acknowledged() -> None:
    backend = FlakyBackend(schema=SCHEMA, request_failures=2, document_failures=1)
    await backend.point_alias(await backend.create_index())
    sink = Sink(backend=backend, dead_letters=MemoryDeadLetters(), consumer="t", retry=FAST)
    done = await sink.write([IndexAction(op="upsert", doc_id="a", document={"id": "a", "name": "x"}, version=5)])
    assert done == ["a"]
    assert backend.calls == 4
    assert await backend.get("a") == {"id": "a", "name": "x"}


async def test_sink_write_when_failures_outlast_retries_raises_and_saves_no_checkpoint() -> None:
    backend = FlakyBackend(schema=SCHEMA, document_failures=99)
    await backend.point_alias(await backend.create_index())
    checkpoints = MemoryCheckpointStore()
    sink = Sink(backend=backend, dead_letters=MemoryDeadLetters(), consumer="t", retry=FAST)
    collection = FakeCollection()
    collection.insert({"_id": "a", "name": "x"})
    source = FakeChangeSource(collection)
    batch = await anext(aiter(source.batches(resume_token={"_data": "0"})))
    with pytest.raises(SearchUnavailable, match="still failing"):
        await apply_batch(batch, sink=sink, checkpoints=checkpoints, invalidate=None, read_at=0.0)
    assert checkpoints.saved == {}


async def test_apply_batch_when_document_poisoned_dead_letters_it_and_goes_on() -> None:
    h = Harness()
    await h.backend.point_alias(await h.backend.create_index())
    h.collection.insert({"_id": "good", "name": "fine"})
    h.collection.insert({"_id": "poison", "name": "bad", "stock": "not a number"})
    h.collection.insert({"_id": "after", "name": "also fine"})
    batch = await anext(aiter(h.source.batches(resume_token={"_data": "0"})))
    checkpoint = await apply_batch(batch, sink=h.sink, checkpoints=h.checkpoints, invalidate=h.invalidate, read_at=1.0)
    assert sorted(await h.index_state()) == ["after", "good"]
    letters = await h.dead.letters("test")
    assert [(letter["doc_id"], "stock" in letter["reason"]) for letter in letters] == [("poison", True)]
    assert letters[0]["document"] == {"name": "bad", "stock": "not a number", "id": "poison"}
    assert h.checkpoints.saved["test"] == checkpoint
    assert h.invalidated == [["good", "after"]]


async def test_apply_batch_when_invalidation_fails_still_checkpoints() -> None:
    h = Harness()
    await h.backend.point_alias(await h.backend.create_index())
    h.collection.insert({"_id": "a"})
    batch = await anext(aiter(h.source.batches(resume_token={"_data": "0"})))

    async def broken(ids: Sequence[str]) -> None:
        raise ConnectionError("redis down")

    await apply_batch(batch, sink=h.sink, checkpoints=h.checkpoints, invalidate=broken, read_at=1.0)
    assert "test" in h.checkpoints.saved


async def test_stream_once_when_writer_slow_reader_stays_within_the_queue() -> None:
    h = Harness()
    for number in range(40):
        h.collection.insert({"_id": f"d{number:02d}"})
    read = 0
    written = 0
    max_ahead = 0
    original_batches = h.source.batches

    async def counting_batches(**kwargs: Any) -> AsyncIterator[ChangeBatch]:
        nonlocal read
        async for batch in original_batches(**kwargs):
            read += 1
            yield batch

    class SlowBackend(FakeSearchBackend):
        async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
            nonlocal written, max_ahead
            max_ahead = max(max_ahead, read - written)
            for _ in range(5):  # slower than reading: the reader gets several turns per write
                await asyncio.sleep(0)
            written += 1
            return await super().bulk(actions, index=index)

    slow = SlowBackend(schema=SCHEMA)
    await slow.point_alias(await slow.create_index())
    h.backend = slow
    h.sink = Sink(backend=slow, dead_letters=h.dead, consumer="test", retry=FAST)
    h.source.batches = counting_batches  # type: ignore[method-assign]
    stop = asyncio.Event()
    start = Checkpoint("test", {"_data": "0"}, None, 0, saved_at=0, token_at=9e12)
    task = asyncio.create_task(
        stream_once(
            start, source=h.source, sink=h.sink, checkpoints=h.checkpoints, invalidate=None, options=OPTIONS, stop=stop
        )
    )
    async with asyncio.timeout(HANG_SECONDS):
        while len(await h.index_state()) < 40:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, HANG_SECONDS)
    assert written >= 10
    assert max_ahead <= OPTIONS.queue_batches + 2


async def test_run_reindex_when_done_swaps_alias_and_keeps_previous() -> None:
    h = Harness()
    for number in range(7):
        h.collection.insert({"_id": f"d{number}", "name": f"n{number}"})
    first = await run_reindex(
        source=h.source,
        sink=h.sink,
        checkpoints=h.checkpoints,
        invalidate=h.invalidate,
        options=ReindexOptions(batch_size=3),
    )
    second = await run_reindex(
        source=h.source,
        sink=h.sink,
        checkpoints=h.checkpoints,
        invalidate=h.invalidate,
        options=ReindexOptions(batch_size=3),
    )
    third = await run_reindex(
        source=h.source,
        sink=h.sink,
        checkpoints=h.checkpoints,
        invalidate=h.invalidate,
        options=ReindexOptions(batch_size=3, keep_previous=1),
    )
    assert h.backend.current == third.index
    assert h.backend.optimized == [first.index, second.index, third.index]  # every new index compacted
    assert sorted(h.backend.indices) == [second.index, third.index]
    assert third.dropped == (first.index,)
    assert third.documents == third.copied == 7
    assert await h.index_state() == h.collection_state()
    assert h.invalidated[-1] == []


async def test_run_reindex_when_counts_never_match_leaves_alias_alone() -> None:
    class Losing(FakeSearchBackend):
        async def count(self, index: str | None = None) -> int:
            return (await super().count(index)) - 1

    h = Harness(backend=Losing(schema=SCHEMA))
    h.collection.insert({"_id": "a"})
    before = await h.backend.create_index()
    await h.backend.point_alias(before)
    with pytest.raises(ReindexFailed, match="alias stays"):
        await run_reindex(
            source=h.source,
            sink=h.sink,
            checkpoints=h.checkpoints,
            invalidate=None,
            options=ReindexOptions(verify_rounds=2),
        )
    assert h.backend.current == before
    assert h.backend.optimized == []  # a copy that failed its check is neither compacted nor served


async def test_run_reindex_when_not_owning_checkpoint_leaves_it() -> None:
    h = Harness()
    h.collection.insert({"_id": "a"})
    mine = Checkpoint("test", {"_data": "0"}, None, 0, saved_at=1.0, token_at=1.0)
    h.checkpoints.saved["test"] = mine
    await run_reindex(
        source=h.source,
        sink=h.sink,
        checkpoints=h.checkpoints,
        invalidate=None,
        options=ReindexOptions(save_checkpoint=False),
    )
    assert h.checkpoints.saved["test"] == mine
    assert await h.index_state() == h.collection_state()


async def test_batches_when_events_share_a_cluster_time_versions_still_increase() -> None:
    collection = FakeCollection(shared_time=True)
    for number in range(5):
        collection.insert({"_id": f"t{number}"})
    source = FakeChangeSource(collection, limits=BatchLimits(max_events=2))
    batches: list[ChangeBatch] = []
    async for batch in source.batches(resume_token={"_data": "0"}, until_idle=True):
        batches.append(batch)
    versions = [e.version for b in batches for e in b.events]
    assert versions == sorted(versions)
    assert len(set(versions)) == 5


async def test_stream_once_when_traced_spans_each_batch_with_its_steps(span_exporter: InMemorySpanExporter) -> None:
    h = Harness()
    h.collection.insert({"_id": "seed"})

    async def seeded() -> bool:
        return h.backend.current is not None and await _has(h, "seed")

    await h.run_until(seeded)  # the initial copy, then a checkpoint to tail from
    span_exporter.clear()
    h.collection.insert({"_id": "traced", "name": "followed"})
    await h.run_until(lambda: _has(h, "traced"))
    spans = span_exporter.get_finished_spans()
    batches = [span for span in spans if span.name == "indexer batch" and (span.attributes or {}).get("events")]
    assert batches
    batch = batches[0]
    children = {span.name for span in spans if span.parent is not None and span.parent.span_id == batch.context.span_id}
    assert {"indexer read", "indexer transform", "indexer bulk", "indexer checkpoint", "indexer invalidate"} <= children
    assert batch.parent is None  # each batch is a trace of its own
    bulk = next(span for span in spans if span.name == "indexer bulk" and span.parent == batch.context)
    assert (bulk.attributes or {}).get("documents") == 1


def test_mark_checkpoint_saved_when_time_passes_the_age_grows_until_the_next_save() -> None:
    from unittest import mock

    from prometheus_client import REGISTRY

    from src.observability.metrics import mark_checkpoint_saved

    def age() -> float | None:
        return REGISTRY.get_sample_value("search_indexer_checkpoint_age_seconds", {"consumer": "age-test"})

    with mock.patch("src.observability.metrics.time.monotonic", return_value=1000.0):
        mark_checkpoint_saved("age-test")
    with mock.patch("src.observability.metrics.time.monotonic", return_value=1042.5):
        assert age() == 42.5  # a stalled stream shows, scrape after scrape
        mark_checkpoint_saved("age-test")
        assert age() == 0.0


# --- nothing one document does stops the stream; a stop is honoured whatever the queue holds ----------


FRESH = Checkpoint("test", {"_data": "0"}, None, 0, saved_at=0, token_at=9e12)


@dataclass
class GatedBackend(FakeSearchBackend):
    """Each bulk waits for `gate`; then acknowledges, or raises `failure` when set. Records cancellations."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    failure: Exception | None = None
    cancelled: int = 0

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        self.entered.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.failure is not None:
            raise self.failure
        return await super().bulk(actions, index=index)


async def full_queue_harness(count: int = 12) -> tuple[Harness, GatedBackend, asyncio.Event]:
    """One event per batch, `count` of them; the returned event is set once the reader holds a batch it
    cannot queue (one with the writer, `queue_batches` queued, one more read)."""
    h = Harness()
    h.source.limits = BatchLimits(max_events=1, heartbeat_seconds=0.02)
    for number in range(count):
        h.collection.insert({"_id": f"d{number:02d}"})
    backend = GatedBackend(schema=SCHEMA)
    await backend.point_alias(await backend.create_index())
    h.backend = backend
    h.sink = Sink(backend=backend, dead_letters=h.dead, consumer="test", retry=FAST)
    reader_blocked = asyncio.Event()
    original = h.source.batches
    read = 0

    async def counting(**kwargs: Any) -> AsyncIterator[ChangeBatch]:
        nonlocal read
        async for batch in original(**kwargs):
            read += 1
            if read == OPTIONS.queue_batches + 2:
                reader_blocked.set()  # this batch's put waits: the queue is full
            yield batch

    h.source.batches = counting  # type: ignore[method-assign]
    return h, backend, reader_blocked


async def test_stream_once_when_the_writer_fails_with_a_full_queue_raises_instead_of_hanging() -> None:
    h, backend, reader_blocked = await full_queue_harness()
    backend.failure = SearchUnavailable("503 from the backend")
    task = asyncio.create_task(
        stream_once(FRESH, source=h.source, sink=h.sink, checkpoints=h.checkpoints, invalidate=None, options=OPTIONS)
    )
    await reader_blocked.wait()
    backend.gate.set()
    async with asyncio.timeout(HANG_SECONDS):  # a hang, not a speed: the reader used to wait forever on the full queue
        with pytest.raises(SearchUnavailable):
            await task
    assert h.checkpoints.saved == {}


async def test_stream_once_when_stopped_with_a_full_queue_finishes_the_batch_in_flight_and_drops_the_rest() -> None:
    h, backend, reader_blocked = await full_queue_harness()
    stop = asyncio.Event()
    task = asyncio.create_task(
        stream_once(
            FRESH, source=h.source, sink=h.sink, checkpoints=h.checkpoints, invalidate=None, options=OPTIONS, stop=stop
        )
    )
    await reader_blocked.wait()
    await backend.entered.wait()  # the first batch is in flight
    stop.set()
    backend.gate.set()
    async with asyncio.timeout(HANG_SECONDS):
        last = await task
    assert sorted(await h.index_state()) == ["d00"]  # the queued batches were never written
    assert h.checkpoints.saved["test"] == last
    assert last.resume_token == {"_data": "1"}  # so the next run reads them again


async def test_run_stream_when_stopped_while_the_engine_never_acknowledges_returns_after_the_grace() -> None:
    h, backend, reader_blocked = await full_queue_harness()
    h.checkpoints.saved["test"] = FRESH
    stop = asyncio.Event()
    task = h.start(
        stop,
        options=dataclasses.replace(OPTIONS, shutdown_grace_seconds=0.05),
        reindex=ReindexOptions(),
        invalidating=False,
    )
    await reader_blocked.wait()
    await backend.entered.wait()
    stop.set()
    async with asyncio.timeout(HANG_SECONDS):  # the gate never opens: only the grace ends the write
        await task
    assert backend.cancelled == 1
    assert h.checkpoints.saved["test"] == FRESH  # nothing acknowledged, nothing checkpointed


async def test_run_stream_when_stopped_during_the_first_copy_returns_after_the_grace() -> None:
    h, backend, _ = await full_queue_harness(count=3)
    stop = asyncio.Event()
    task = h.start(
        stop,
        options=dataclasses.replace(OPTIONS, shutdown_grace_seconds=0.05),
        reindex=ReindexOptions(),
        invalidating=False,
    )
    await backend.entered.wait()  # the copy's first bulk, held
    stop.set()
    async with asyncio.timeout(HANG_SECONDS):
        await task
    assert backend.cancelled == 1
    assert h.checkpoints.saved == {}


async def test_stream_once_when_it_starts_the_checkpoint_age_gauge_shows_the_checkpoints_own_age() -> None:
    from unittest import mock

    from prometheus_client import REGISTRY

    h = Harness()
    old = Checkpoint("aged", {"_data": "0"}, None, 0, saved_at=time.time() - 500, token_at=9e12)
    stop = asyncio.Event()
    stop.set()
    with mock.patch("src.observability.metrics.time.monotonic", return_value=5000.0):
        await stream_once(
            old,
            source=h.source,
            sink=h.sink,
            checkpoints=h.checkpoints,
            invalidate=None,
            options=dataclasses.replace(OPTIONS, consumer="aged"),
            stop=stop,
        )
        age = REGISTRY.get_sample_value("search_indexer_checkpoint_age_seconds", {"consumer": "aged"})
    assert age is not None
    assert 500 <= age < 501


async def test_apply_batch_when_an_id_has_no_index_id_dead_letters_it_and_goes_on() -> None:
    h = Harness()
    await h.backend.point_alias(await h.backend.create_index())
    h.collection.insert({"_id": "good", "name": "fine"})
    h.collection.insert({"_id": {"a": 1}, "name": "keyed by a document"})
    h.collection.insert({"_id": 7, "name": "keyed by an integer"})
    batch = await anext(aiter(h.source.batches(resume_token={"_data": "0"})))
    await apply_batch(batch, sink=h.sink, checkpoints=h.checkpoints, invalidate=h.invalidate, read_at=1.0)
    assert sorted(await h.index_state()) == ["7", "good"]
    [letter] = await h.dead.letters("test")
    assert letter["doc_id"] == '{"a": 1}'
    assert letter["reason"] == '_id {"a": 1} (dict) cannot be an index id: only strings, ObjectIds and integers can'
    assert letter["document"] == {"name": "keyed by a document", "id": '{"a": 1}'}
    assert h.checkpoints.saved["test"].resume_token == {"_data": "3"}


async def test_run_reindex_when_an_id_has_no_index_id_dead_letters_it_and_still_swaps() -> None:
    h = Harness()
    h.collection.insert({"_id": "a", "name": "alpha"})
    h.collection.insert({"_id": 2.5, "name": "keyed by a float"})
    result = await run_reindex(
        source=h.source, sink=h.sink, checkpoints=h.checkpoints, invalidate=None, options=ReindexOptions()
    )
    assert (result.documents, result.copied) == (1, 1)  # the count check subtracts the refused document
    assert h.backend.current == result.index
    assert [letter["doc_id"] for letter in await h.dead.letters("test")] == ["2.5"]
