"""Unit tests of src.cache.tiered (the in-process tier in front of a shared cache) and of the Redis
adapter's loop-fair budget."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from src.cache.base import CacheUnavailable
from src.cache.memory import MemoryCache
from src.cache.redis import RedisCache
from src.cache.tiered import TieredCache
from src.resilience import CircuitBreaker


@dataclass
class Far(MemoryCache):
    """A shared tier that counts its calls and can be made to fail."""

    calls: list[str] = field(default_factory=list)
    down: bool = False

    def __post_init__(self) -> None:
        MemoryCache.__init__(self, max_entries=100, max_bytes=100_000)

    def _check(self, what: str) -> None:
        self.calls.append(what)
        if self.down:
            raise CacheUnavailable("far tier down")

    async def get(self, key: str) -> bytes | None:
        self._check(f"get {key}")
        return await MemoryCache.get(self, key)

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._check(f"set {key}")
        await MemoryCache.set(self, key, value, ttl_seconds)

    async def incr(self, key: str) -> int:
        self._check(f"incr {key}")
        value = int(await MemoryCache.get(self, key) or b"0") + 1
        await MemoryCache.set(self, key, str(value).encode(), 3600)
        return value

    async def delete(self, *keys: str) -> None:
        self._check(f"delete {' '.join(keys)}")
        await MemoryCache.delete(self, *keys)


@dataclass
class Harness:
    now: list[float] = field(default_factory=lambda: [0.0])
    far: Far = field(default_factory=Far)

    def __post_init__(self) -> None:
        near = MemoryCache(max_entries=10, max_bytes=10_000, clock=lambda: self.now[0])
        self.tiered = TieredCache(
            near,
            self.far,
            near_ttl_seconds=2.0,
            generation_poll_seconds=0.25,
            keep_seconds=600.0,
            clock=lambda: self.now[0],
        )


async def test_get_when_recently_stored_answers_from_memory_without_a_network_trip() -> None:
    h = Harness()
    await h.tiered.set("k", b"v", 60)
    h.far.calls.clear()
    assert [await h.tiered.get("k") for _ in range(100)] == [b"v"] * 100
    assert h.far.calls == []


async def test_get_when_near_copy_is_older_than_its_ttl_asks_the_shared_tier() -> None:
    h = Harness()
    await h.tiered.set("k", b"v", 60)
    await MemoryCache.delete(h.far, "k")  # deleted elsewhere (the indexer's invalidation)
    h.now[0] += 1.9
    assert await h.tiered.get("k") == b"v"  # still trusted for its near TTL
    h.now[0] += 0.2
    assert await h.tiered.get("k") is None
    assert await h.tiered.get("k") is None
    assert h.far.calls == ["set k", "get k", "get k"]  # an absent key is asked again: nothing negative is kept


async def test_get_when_shared_tier_fails_serves_the_near_copy_or_raises() -> None:
    h = Harness()
    await h.tiered.set("hot", b"v", 60)
    h.now[0] += 30  # long past the near TTL: normally the shared tier would be asked
    h.far.down = True
    assert await h.tiered.get("hot") == b"v"
    with pytest.raises(CacheUnavailable):
        await h.tiered.get("cold")


async def test_get_when_shared_tier_has_it_fills_the_near_tier() -> None:
    h = Harness()
    await MemoryCache.set(h.far, "k", b"from far", 60)
    assert await h.tiered.get("k") == b"from far"
    h.far.calls.clear()
    assert await h.tiered.get("k") == b"from far"
    assert h.far.calls == []


async def test_generation_when_bumped_elsewhere_is_seen_after_the_poll_interval() -> None:
    h = Harness()
    assert await h.tiered.generation("gen") == 0
    await h.far.incr("gen")  # another process (the indexer) bumps it
    h.now[0] += 0.2
    assert await h.tiered.generation("gen") == 0
    h.now[0] += 0.1
    assert await h.tiered.generation("gen") == 1
    assert [call for call in h.far.calls if call.startswith("get")] == ["get gen", "get gen"]


async def test_generation_when_read_concurrently_costs_one_get() -> None:
    h = Harness()
    values = await asyncio.gather(*(h.tiered.generation("gen") for _ in range(50)))
    assert values == [0] * 50
    assert h.far.calls == ["get gen"]


async def test_generation_when_shared_tier_fails_keeps_the_last_known_value() -> None:
    h = Harness()
    await h.far.incr("gen")
    assert await h.tiered.generation("gen") == 1
    h.far.down = True
    h.now[0] += 10
    assert await h.tiered.generation("gen") == 1
    fresh = Harness()
    fresh.far.down = True
    with pytest.raises(CacheUnavailable):
        await fresh.tiered.generation("gen")


async def test_generation_when_shared_tier_reports_an_older_value_never_steps_back() -> None:
    h = Harness()
    assert await h.tiered.incr("gen") == 1
    assert await h.tiered.incr("gen") == 2
    await MemoryCache.set(h.far, "gen", b"1", 60)  # a lagging replica
    h.now[0] += 1
    assert await h.tiered.generation("gen") == 2


async def test_get_generational_when_bumped_here_reads_the_new_generation_at_once() -> None:
    h = Harness()
    await h.tiered.set("p0s", b"zero", 60)
    await h.tiered.set("p1s", b"one", 60)
    assert await h.tiered.get_generational("gen", "p", "s") == (0, b"zero")
    await h.tiered.incr("gen")
    assert await h.tiered.get_generational("gen", "p", "s") == (1, b"one")


async def test_delete_when_called_removes_both_copies() -> None:
    h = Harness()
    await h.tiered.set("k", b"v", 60)
    await h.tiered.delete("k")
    assert await h.tiered.get("k") is None
    assert await MemoryCache.get(h.far, "k") is None


async def test_acquire_when_called_uses_the_shared_lock() -> None:
    h = Harness()
    token = await h.tiered.acquire("lock", 5)
    assert token is not None
    assert await MemoryCache.acquire(h.far, "lock", 5) is None
    await h.tiered.release("lock", token)
    assert await h.far.acquire("lock", 5) is not None
    assert h.tiered.kind == "memory+memory"


class SlowClient:
    """Stands in for redis.asyncio.Redis: GET answers after `delay` seconds, or never (None)."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay

    def register_script(self, script: str) -> object:
        return object()

    async def get(self, key: str) -> bytes:
        if self.delay is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(self.delay)
        return b"value"


async def test_redis_get_when_loop_is_busy_is_not_a_timeout_and_leaves_the_breaker_closed() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=60)
    cache = RedisCache(SlowClient(0.005), timeout_seconds=0.02, breaker=breaker)  # type: ignore[arg-type]

    async def hog_the_loop() -> None:
        await asyncio.sleep(0)
        time.sleep(0.1)  # noqa: ASYNC251 - a spike: other requests keep the loop busy far past the budget

    hog = asyncio.create_task(hog_the_loop())
    assert await cache.get("k") == b"value"
    await hog
    assert breaker.state == "closed"


async def test_redis_get_when_redis_itself_is_slow_times_out_and_counts() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=60)
    # Redis never answers: the call ends by its budget alone (on time, or, when this loop was late, at the
    # hard limit of 20 budgets), never by waiting for an answer.
    cache = RedisCache(SlowClient(None), timeout_seconds=0.02, breaker=breaker)  # type: ignore[arg-type]
    with pytest.raises(CacheUnavailable, match="TimeoutError"):
        await cache.get("k")
    assert breaker.state == "open"
