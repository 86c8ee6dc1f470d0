"""The sink against an engine that refuses: documents it cannot take, requests too large, a busy engine.

Time is a manual clock that each backoff sleep moves on: how long a write has been held back, when it
counts as a stall and how often that is logged follow from the rounds, never from the machine's speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import orjson
import pytest
from loguru import logger
from prometheus_client import REGISTRY

from src.indexer.pipeline import Sink, WriteLimits
from src.indexer.pressure import PressureWatch
from src.indexer.retry import RetryPolicy
from src.search.backends.base import BulkItemResult, IndexAction
from src.search.errors import EnginePressure
from src.search.models import Document
from tests.fakes.change_source import MemoryDeadLetters
from tests.fakes.search_backend import FakeSearchBackend
from tests.fixtures.catalog import SCHEMA

FAST = RetryPolicy(attempts=3, base_seconds=0.001, cap_seconds=0.005)
FLOOD_STAGE = "cluster_block_exception: index [i] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage]"


@dataclass
class ManualTime:
    """A clock that only each sleep moves, by `step` seconds (a backoff round on a busy engine)."""

    now: float = 1000.0
    step: float = 10.0
    sleeps: int = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += self.step
        await asyncio.sleep(0)


@dataclass
class RefusingBackend(FakeSearchBackend):
    """Refuses as Elasticsearch does: a request whose documents total more than `budget_bytes` as a whole
    (several documents) or as too large on its own (one); and everything for its load (busy) for the next
    `busy_rounds` requests, as a whole or, with `busy_per_item`, per document."""

    budget_bytes: int = 2000
    busy_rounds: int = 0
    busy_per_item: bool = False
    requests: list[list[str]] = field(default_factory=list)

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        self.requests.append([action.doc_id for action in actions])
        if self.busy_rounds > 0:
            self.busy_rounds -= 1
            if self.busy_per_item:
                return [
                    BulkItemResult(a.doc_id, ok=False, retryable=True, pressure=True, error=FLOOD_STAGE)
                    for a in actions
                ]
            raise EnginePressure("fake refused the bulk request (429): busy", status=429, reason="busy")
        size = sum(len(orjson.dumps(action.document)) for action in actions if action.document is not None)
        if size > self.budget_bytes and len(actions) > 1:
            raise EnginePressure(f"fake refused the bulk request (429): {size} bytes", status=429, reason="pressure")
        if size > self.budget_bytes:
            return [BulkItemResult(actions[0].doc_id, ok=False, error=f"too large for fake on its own (429): {size}")]
        return await super().bulk(actions, index=index)


async def refusing(**changes: object) -> RefusingBackend:
    backend = RefusingBackend(schema=SCHEMA, **changes)  # type: ignore[arg-type]
    await backend.point_alias(await backend.create_index())
    return backend


def upsert(doc_id: str, *, size: int = 10) -> IndexAction:
    return IndexAction(op="upsert", doc_id=doc_id, document={"id": doc_id, "body": "x" * size}, version=5)


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The indexer's WARNING-and-above log lines, as `LEVEL message`."""
    lines: list[str] = []
    handle = logger.add(lambda message: lines.append(f"{message.record['level'].name} {message.record['message']}"),
                        level="WARNING")  # fmt: skip
    yield lines
    logger.remove(handle)


def gauge(name: str, consumer: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"consumer": consumer})


async def test_sink_write_when_a_batch_is_too_large_splits_it_and_dead_letters_only_the_document_too_large() -> None:
    backend = await refusing()
    dead = MemoryDeadLetters()
    time = ManualTime()
    sink = Sink(backend=backend, dead_letters=dead, consumer="split", retry=FAST, sleep=time.sleep, clock=time.clock)
    actions = [upsert(f"d{n}", size=3000 if n == 5 else 10) for n in range(8)]
    rejected: set[str] = set()
    done = await sink.write(actions, rejected=rejected)
    assert done == ["d0", "d1", "d2", "d3", "d4", "d6", "d7"]
    assert backend.requests == [
        ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"],
        ["d0", "d1", "d2", "d3"],
        ["d4", "d5", "d6", "d7"],
        ["d4", "d5"],
        ["d4"],
        ["d5"],
        ["d6", "d7"],
    ]
    [letter] = await dead.letters("split")
    assert (letter["doc_id"], letter["reason"]) == ("d5", "too large for fake on its own (429): 3021")
    assert letter["document"] == actions[5].document  # small enough to keep beside its reason
    assert rejected == {"d5"}
    assert time.sleeps == 3  # one backoff before each of the three splits
    assert gauge("search_indexer_write_blocked_seconds", "split") == 0.0


async def test_sink_write_when_the_engine_stays_busy_retries_until_it_takes_the_write_and_alerts_on_the_stall(
    logged: list[str],
) -> None:
    backend = await refusing(busy_rounds=12)
    dead = MemoryDeadLetters()
    time = ManualTime(step=10.0)
    sink = Sink(
        backend=backend,
        dead_letters=dead,
        consumer="busy",
        retry=FAST,
        limits=WriteLimits(pressure_alert_seconds=60.0),
        sleep=time.sleep,
        clock=time.clock,
    )
    seen: list[tuple[float | None, float | None]] = []
    original_sleep = time.sleep

    async def watching(seconds: float) -> None:
        seen.append(
            (gauge("search_indexer_write_blocked_seconds", "busy"), gauge("search_indexer_write_stalled", "busy"))
        )
        await original_sleep(seconds)

    sink.sleep = watching
    assert await sink.write([upsert("a")]) == ["a"]  # never dead-lettered: a busy engine is not its fault
    assert await dead.letters("busy") == []
    assert len(backend.requests) == 13
    # Blocked time grows by one round (10 s) each refusal; past 60 s the write is a stall.
    assert [blocked for blocked, _ in seen] == [10.0 * n for n in range(12)]
    assert [stalled for _, stalled in seen] == [0.0] * 7 + [1.0] * 5
    assert gauge("search_indexer_write_blocked_seconds", "busy") == 0.0
    assert gauge("search_indexer_write_stalled", "busy") == 0.0
    refusals = REGISTRY.get_sample_value("search_indexer_failures_total", {"consumer": "busy", "kind": "pressure"})
    assert refusals == 12
    # Logged at the first refusal (0 s), then at most every 30 s (30, 60; 100 after the stall's own line
    # at 70), the stall as an error.
    assert [line.split(" ")[0] for line in logged] == ["WARNING", "WARNING", "WARNING", "ERROR", "ERROR"]
    assert logged[3].startswith("ERROR INDEXER STALLED: the engine has refused writes for its load for 70 s")


async def test_sink_write_when_busy_per_document_resends_the_refused_ones_in_halves() -> None:
    backend = await refusing(busy_rounds=1, busy_per_item=True)
    time = ManualTime()
    sink = Sink(backend=backend, dead_letters=MemoryDeadLetters(), consumer="t", retry=FAST, sleep=time.sleep)
    done = await sink.write([upsert("a"), upsert("b"), upsert("c")])
    assert sorted(done) == ["a", "b", "c"]
    assert backend.requests == [["a", "b", "c"], ["a"], ["b", "c"]]


async def test_sink_write_when_the_document_is_over_the_limit_dead_letters_it_unsent() -> None:
    backend = await refusing(budget_bytes=10**9)
    dead = MemoryDeadLetters()
    sink = Sink(
        backend=backend, dead_letters=dead, consumer="limit", retry=FAST, limits=WriteLimits(max_document_bytes=2048)
    )
    big = upsert("big", size=4000)
    size = len(orjson.dumps(big.document))
    rejected: set[str] = set()
    assert await sink.write([upsert("small"), big], rejected=rejected) == ["small"]
    assert backend.requests == [["small"]]
    [letter] = await dead.letters("limit")
    assert letter["reason"] == f"document is {size} bytes, over INDEXER_MAX_DOCUMENT_BYTES=2048"
    assert letter["document"] is None  # too large to keep: the source collection still has it
    assert rejected == {"big"}


async def test_sink_write_when_the_id_was_refused_dead_letters_the_upsert_and_skips_the_delete() -> None:
    backend = await refusing()
    dead = MemoryDeadLetters()
    sink = Sink(backend=backend, dead_letters=dead, consumer="ids", retry=FAST)
    reason = '_id {"a": 1} (dict) cannot be an index id: only strings, ObjectIds and integers can'
    document: Document = {"id": '{"a": 1}', "name": "lamp"}
    rejected: set[str] = set()
    await sink.write(
        [IndexAction(op="upsert", doc_id='{"a": 1}', document=document, refused=reason)], rejected=rejected
    )
    assert rejected == {'{"a": 1}'}
    assert await sink.write([IndexAction(op="delete", doc_id='{"a": 1}', refused=reason)], rejected=rejected) == []
    assert rejected == set()  # gone from the collection, and the index never held it
    assert backend.requests == []
    [letter] = await dead.letters("ids")
    assert (letter["doc_id"], letter["reason"], letter["document"]) == ('{"a": 1}', reason, document)


def test_pressure_watch_when_writes_overlap_measures_from_the_oldest() -> None:
    time = ManualTime()
    watch = PressureWatch("overlap", alert_seconds=30.0, clock=time.clock)
    watch.refused(1, 10, "busy")
    time.now += 20
    watch.refused(2, 5, "busy")
    time.now += 20
    assert (watch.blocked_seconds(), watch.stalled) == (40.0, True)
    watch.cleared(1)
    assert (watch.blocked_seconds(), watch.stalled) == (20.0, False)
    watch.cleared(2)
    assert watch.blocked_seconds() == 0.0


@dataclass
class QuotingBackend(FakeSearchBackend):
    """Refuses every document with Elasticsearch's habit of quoting the whole refused value."""

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        preview = "n" * 40_000
        return [BulkItemResult(a.doc_id, ok=False, error=f"document_parsing_exception: {preview}") for a in actions]


async def test_sink_write_when_the_engine_quotes_a_huge_value_keeps_a_bounded_reason() -> None:
    dead = MemoryDeadLetters()
    sink = Sink(backend=QuotingBackend(schema=SCHEMA), dead_letters=dead, consumer="quote", retry=FAST)
    assert await sink.write([upsert("a")]) == []
    [letter] = await dead.letters("quote")
    assert letter["reason"] == f"document_parsing_exception: {'n' * 972}... (40028 characters)"
