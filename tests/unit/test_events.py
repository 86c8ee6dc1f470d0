"""Unit tests of src.events and src.indexer.requests: invalidations applied to the in-process tier, and
reindex requests run one at a time and coalesced (FastStream's test broker for the wiring)."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
from faststream.rabbit import RabbitBroker, TestRabbitBroker

from src.cache.base import Cache
from src.cache.keys import document_key, generation_key
from src.cache.memory import MemoryCache
from src.cache.null import NullCache
from src.cache.redis import RedisCache
from src.cache.tiered import TieredCache
from src.events import INVALIDATIONS, REINDEX_QUEUE, Invalidation, ReindexRequest, apply_invalidation, publish
from src.indexer.reindex import ReindexResult
from src.indexer.requests import ReindexRequests
from src.resilience import CircuitBreaker

NS, FP = "ns:alias", "schema:v1"


def _tiered() -> TieredCache:
    return TieredCache(
        MemoryCache(max_entries=100, max_bytes=100_000),
        MemoryCache(max_entries=100, max_bytes=100_000),
        near_ttl_seconds=60,
        generation_poll_seconds=60,
        keep_seconds=600,
    )


async def test_apply_invalidation_when_tiered_drops_near_entries_and_learns_the_generation() -> None:
    cache = _tiered()
    key = document_key(NS, FP, "a")
    await cache.set(key, b"old", 60)
    assert await cache.generation(generation_key(NS, FP)) == 0
    dropped = await apply_invalidation(
        cache, Invalidation(namespace=NS, schema_fingerprint=FP, ids=["a"], generation=5), namespace=NS,
        schema_fingerprint=FP,
    )  # fmt: skip
    assert dropped == 1
    assert cache.near.get_aged(key) is None
    assert await cache.generation(generation_key(NS, FP)) == 5  # known at once, no poll


async def test_apply_invalidation_when_memory_only_deletes_and_moves_its_own_generation() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=100_000)
    key = document_key(NS, FP, "a")
    await cache.set(key, b"old", 60)
    event = Invalidation(namespace=NS, schema_fingerprint=FP, ids=["a"], generation=None)
    await apply_invalidation(cache, event, namespace=NS, schema_fingerprint=FP)
    assert await cache.get(key) is None
    assert await cache.incr(generation_key(NS, FP)) == 2  # the event moved it to 1


async def test_apply_invalidation_when_tiered_event_has_no_generation_keeps_the_known_one() -> None:
    cache = _tiered()
    key = document_key(NS, FP, "a")
    await cache.set(key, b"old", 60)
    await cache.incr(generation_key(NS, FP))
    event = Invalidation(namespace=NS, schema_fingerprint=FP, ids=["a"], generation=None)
    assert await apply_invalidation(cache, event, namespace=NS, schema_fingerprint=FP) == 1
    assert cache.near.get_aged(key) is None
    assert await cache.generation(generation_key(NS, FP)) == 1


@pytest.mark.parametrize("kind", ["redis", "none"])
async def test_apply_invalidation_when_nothing_is_held_in_process_leaves_the_shared_cache(kind: str) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=1)
    cache: Cache = (
        RedisCache(fakeredis.FakeAsyncRedis(), timeout_seconds=1, breaker=breaker) if kind == "redis" else NullCache()
    )
    key = document_key(NS, FP, "a")
    await cache.set(key, b"shared", 60)
    event = Invalidation(namespace=NS, schema_fingerprint=FP, ids=["a"], generation=3)
    assert await apply_invalidation(cache, event, namespace=NS, schema_fingerprint=FP) == 1
    assert await cache.get(key) == (b"shared" if kind == "redis" else None)  # the indexer deletes shared entries
    assert (await cache.get_generational(generation_key(NS, FP), "p", "s"))[0] == 0
    await cache.close()


async def test_apply_invalidation_when_for_another_alias_ignores_it() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=100_000)
    key = document_key(NS, FP, "a")
    await cache.set(key, b"kept", 60)
    event = Invalidation(namespace="other:alias", schema_fingerprint=FP, ids=["a"])
    assert await apply_invalidation(cache, event, namespace=NS, schema_fingerprint=FP) == 0
    assert await cache.get(key) == b"kept"


async def test_publish_when_subscribed_delivers_to_the_fanout_and_the_queue() -> None:
    broker = RabbitBroker()
    seen: list[Any] = []

    @broker.subscriber("mine", INVALIDATIONS)
    async def on_invalidation(event: Invalidation) -> None:
        seen.append(event)

    @broker.subscriber(REINDEX_QUEUE)
    async def on_request(request: ReindexRequest) -> None:
        seen.append(request)

    async with TestRabbitBroker(broker):
        assert await publish(
            broker, Invalidation(namespace=NS, schema_fingerprint=FP, ids=["x"]), exchange=INVALIDATIONS
        )
        assert await publish(broker, ReindexRequest(request_id="r1"), queue=REINDEX_QUEUE)
    assert [type(item).__name__ for item in seen] == ["Invalidation", "ReindexRequest"]
    assert seen[0].ids == ["x"]


async def test_publish_when_the_broker_is_not_connected_returns_false() -> None:
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:1/")
    assert not await publish(broker, ReindexRequest(request_id="r1"), queue=REINDEX_QUEUE)


class FakeLog:
    def __init__(self) -> None:
        self.records: list[dict[str, object]] = []

    async def record(self, **fields: object) -> None:
        self.records.append(fields)

    async def latest(self) -> dict[str, Any] | None:
        merged: dict[str, Any] = {}
        for record in self.records:
            merged.update(record)
        return merged or None


async def test_reindex_requests_when_more_arrive_while_one_runs_coalesces_them_into_one_more_run() -> None:
    release = asyncio.Event()
    runs = 0

    async def run() -> ReindexResult:
        nonlocal runs
        runs += 1
        await release.wait()
        return ReindexResult(index=f"idx-{runs}", documents=3, copied=3, replayed=0, dropped=(), seconds=0.1,
                             checkpoint=None)  # type: ignore[arg-type]  # fmt: skip

    log = FakeLog()
    requests = ReindexRequests(run, log)  # type: ignore[arg-type]
    await requests.handle(ReindexRequest(request_id="first"))
    await asyncio.sleep(0)
    await requests.handle(ReindexRequest(request_id="second"))
    await requests.handle(ReindexRequest(request_id="third"))
    busy = requests.running
    assert busy
    release.set()
    async with asyncio.timeout(60):  # a hang, not a speed
        while requests.running:
            await asyncio.sleep(0.01)
    assert runs == 2  # the first, then one for both requests made meanwhile
    states = [record.get("state") for record in log.records]
    assert states.count("coalesced") == 2
    latest = await log.latest()
    assert latest is not None
    assert latest["state"] == "done"
    assert latest["index"] == "idx-2"
    assert latest["request_id"] == "third"
    await requests.close()


async def test_reindex_requests_when_the_reindex_fails_records_it_and_accepts_the_next() -> None:
    async def run() -> ReindexResult:
        raise RuntimeError("collection count never matched")

    log = FakeLog()
    requests = ReindexRequests(run, log)  # type: ignore[arg-type]
    await requests.handle(ReindexRequest(request_id="doomed"))
    async with asyncio.timeout(60):  # a hang, not a speed
        while requests.running:
            await asyncio.sleep(0.01)
    latest = await log.latest()
    assert latest is not None
    assert latest["state"] == "failed"
    assert "never matched" in str(latest["error"])
    await requests.close()
