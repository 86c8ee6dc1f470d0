"""Cache-aside policy on an in-process cache (and fakeredis for two processes) with a controlled clock."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass, field

import fakeredis
import orjson
import pytest
from loguru import logger

from src.cache import aside as aside_module
from src.cache.aside import CacheAside, CachePolicy, Computed
from src.cache.base import CacheUnavailable
from src.cache.entries import decode_entry
from src.cache.keys import lock_key, search_key
from src.cache.memory import MemoryCache
from src.cache.models import CacheEntry, Served
from src.cache.null import NullCache
from src.cache.redis import RedisCache
from src.resilience import CircuitBreaker, Overloaded, Unavailable

POLICY = CachePolicy(
    soft_ttl_seconds=10,
    hard_ttl_seconds=100,
    jitter=0.0,
    stale_if_error_seconds=50,
    negative_ttl_seconds=2,
    max_entry_bytes=1000,
    lock_wait_seconds=0.05,
    lock_poll_seconds=0.01,
)
WAITING = dataclasses.replace(POLICY, lock_wait_seconds=60.0)
"""For tests where another process's computation must be waited for: a waiter returns as soon as the entry
is there, so the wait only bounds a hang (POLICY's 0.05 s could run out on a loaded machine)."""
KEY = search_key("t", "schema:v1", b"request")


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """A compute function that counts calls, can be slowed down, fail, or return 404."""

    calls: int = 0
    gate: asyncio.Event | None = None
    """When set, compute waits for it (a backend that is slow until the test says otherwise)."""
    fail: bool = False
    error: Exception = field(default_factory=lambda: Unavailable("backend down", dependency="search"))
    """What compute raises when `fail` is set."""
    status: int = 200
    bodies: list[bytes] = field(default_factory=list)
    timed: bool = False
    """Bodies state how long they took (250 ms), as search pages do."""

    async def compute(self, generation: int | None) -> Computed:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise self.error
        body = self.bodies[min(self.calls, len(self.bodies)) - 1] if self.bodies else b'{"n": %d}' % self.calls
        keys = ("doc-a",) if generation is None else ("doc-a", f"gen-{generation}")
        if self.timed:
            body = b'{"n":%d,"took_ms":250.0}' % self.calls
            return Computed(self.status, body, "application/json", keys, (len(body) - 6, len(body) - 1))
        return Computed(self.status, body, "application/json", keys)


async def settle() -> None:
    """Let every runnable task run until it waits (no wall-clock time involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


@dataclass
class Ticks:
    """A monotonic timer for took_ms: each reading is `step` seconds after the previous one."""

    step: float = 0.0005
    now: float = 50.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def make(clock: Clock, cache: MemoryCache | RedisCache | None = None, policy: CachePolicy = POLICY) -> CacheAside:
    store = cache if cache is not None else MemoryCache(max_entries=100, max_bytes=100_000, clock=lambda: clock.now)
    return CacheAside(store, policy, clock=clock, draw=lambda: 0.5, timer=Ticks())


def took_ms(served: Served | None) -> float:
    assert served is not None
    return float(orjson.loads(served.entry.body)["took_ms"])


async def test_fetch_generational_when_repeated_is_hit_with_same_etag() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    first = await aside.fetch_generational(KEY, backend.compute, route="search")
    second = await aside.fetch_generational(KEY, backend.compute, route="search")
    assert (first.x_cache, second.x_cache) == ("MISS", "HIT")
    assert second.entry.etag == first.entry.etag
    assert second.entry.body == first.entry.body
    assert first.entry.surrogate_keys == ("doc-a", "gen-0")
    assert backend.calls == 1


async def test_fetch_generational_when_inside_soft_window_serves_stale_and_refreshes_once() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    first = await aside.fetch_generational(KEY, backend.compute, route="search")
    clock.now += 20  # past soft (10), before hard (100)
    served = await asyncio.gather(*(aside.fetch_generational(KEY, backend.compute, route="search") for _ in range(5)))
    assert {s.x_cache for s in served} == {"STALE"}
    assert {s.entry.body for s in served} == {first.entry.body}
    await aside.drain()
    assert backend.calls == 2
    refreshed = await aside.fetch_generational(KEY, backend.compute, route="search")
    assert refreshed.x_cache == "HIT"
    assert refreshed.entry.body == b'{"n": 2}'


async def test_fetch_generational_when_fifty_concurrent_misses_computes_once() -> None:
    clock, backend = Clock(), Backend(gate=asyncio.Event())
    aside = make(clock)
    misses = [asyncio.create_task(aside.fetch_generational(KEY, backend.compute, route="search")) for _ in range(50)]
    await settle()
    backend.gate.set()  # type: ignore[union-attr]
    served = await asyncio.gather(*misses)
    assert backend.calls == 1
    assert len({s.entry.etag for s in served}) == 1


async def test_fetch_generational_when_two_processes_miss_together_computes_once() -> None:
    server = fakeredis.FakeServer()
    clock, backend = Clock(), Backend(gate=asyncio.Event())

    def process() -> CacheAside:
        redis = fakeredis.FakeAsyncRedis(server=server)
        breaker = CircuitBreaker(failure_threshold=3, reset_seconds=1)
        return make(clock, RedisCache(redis, timeout_seconds=30, breaker=breaker), WAITING)

    one, two = process(), process()
    misses = [
        asyncio.create_task(aside.fetch_generational(KEY, backend.compute, route="search")) for aside in [one, two] * 25
    ]
    await settle()
    assert backend.calls == 1  # every other miss waits for the one computing
    backend.gate.set()  # type: ignore[union-attr]
    served = await asyncio.gather(*misses)
    assert backend.calls == 1
    assert {s.x_cache for s in served} == {"MISS", "HIT"}
    assert len({s.entry.etag for s in served}) == 1


async def test_fetch_generational_when_lock_holder_never_finishes_computes_itself() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    assert await aside.cache.acquire(lock_key(KEY.at(0)), 60) is not None  # a stuck holder elsewhere
    served = await aside.fetch_generational(KEY, backend.compute, route="search")
    assert served.x_cache == "MISS"
    assert backend.calls == 1


async def test_fetch_generational_when_backend_fails_serves_expired_entry_within_grace() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    first = await aside.fetch_generational(KEY, backend.compute, route="search")
    backend.fail = True
    clock.now += 120  # past hard (100), within hard + grace (150)
    served = await aside.fetch_generational(KEY, backend.compute, route="search")
    assert served.x_cache == "STALE"
    assert served.entry.body == first.entry.body


async def test_fetch_generational_when_backend_fails_past_grace_raises() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock, MemoryCache(max_entries=10, max_bytes=10_000, clock=lambda: 0.0))
    await aside.fetch_generational(KEY, backend.compute, route="search")
    backend.fail = True
    clock.now += 151
    with pytest.raises(Unavailable):
        await aside.fetch_generational(KEY, backend.compute, route="search")


async def test_fetch_generational_when_backend_fails_and_nothing_cached_raises() -> None:
    aside = make(Clock())
    with pytest.raises(Unavailable):
        await aside.fetch_generational(KEY, Backend(fail=True).compute, route="search")


async def test_fetch_generational_when_generation_bumped_misses() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    await aside.fetch_generational(KEY, backend.compute, route="search")
    await aside.cache.incr(KEY.generation_key)
    served = await aside.fetch_generational(KEY, backend.compute, route="search")
    assert served.x_cache == "MISS"
    assert served.entry.surrogate_keys == ("doc-a", "gen-1")


async def test_fetch_when_not_found_caches_briefly() -> None:
    clock, backend = Clock(), Backend(status=404)
    aside = make(clock)
    assert (await aside.fetch("doc", backend.compute, route="document")).entry.status == 404
    assert (await aside.fetch("doc", backend.compute, route="document")).x_cache == "HIT"
    clock.now += 3  # past the negative TTL (2): no stale serving for 404s
    assert (await aside.fetch("doc", backend.compute, route="document")).x_cache == "MISS"
    assert backend.calls == 2


async def test_fetch_when_entry_too_large_is_not_cached() -> None:
    clock, backend = Clock(), Backend(bodies=[b"x" * 2000])
    aside = make(clock)
    await aside.fetch("big", backend.compute, route="document")
    assert (await aside.fetch("big", backend.compute, route="document")).x_cache == "MISS"
    assert backend.calls == 2


async def test_fetch_when_cache_holds_garbage_recomputes_and_overwrites() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    await aside.cache.set("k", b"\x00garbage", 100)
    assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "MISS"
    assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "HIT"


class BrokenCache(MemoryCache):
    """Every operation fails, as Redis does when it is down."""

    async def get(self, key: str) -> bytes | None:
        raise CacheUnavailable("down")

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        raise CacheUnavailable("down")

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        raise CacheUnavailable("down")

    async def acquire(self, key: str, lease_seconds: float) -> str | None:
        raise CacheUnavailable("down")


async def test_fetch_when_cache_down_serves_every_request_from_backend() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock, BrokenCache(max_entries=1, max_bytes=1))
    for _ in range(3):
        served = await aside.fetch_generational(KEY, backend.compute, route="search")
        assert served.x_cache == "MISS"
        assert served.entry.surrogate_keys == ("doc-a",)
    assert (await aside.fetch("doc", backend.compute, route="document")).x_cache == "MISS"
    assert backend.calls == 4


class SetFails(MemoryCache):
    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        raise CacheUnavailable("read only")

    async def release(self, key: str, token: str) -> None:
        raise CacheUnavailable("gone")


async def test_fetch_when_store_and_release_fail_still_serves() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock, SetFails(max_entries=10, max_bytes=10_000))
    assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "MISS"
    assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "MISS"


async def test_fetch_when_refresh_fails_keeps_serving_stale() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    await aside.fetch("k", backend.compute, route="document")
    clock.now += 20
    backend.fail = True
    assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "STALE"
    await aside.drain()
    assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "STALE"


async def test_fetch_when_refresh_is_refused_logs_it_and_keeps_the_entry() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    await aside.fetch("k", backend.compute, route="document")
    clock.now += 20
    backend.fail, backend.error = True, ValueError("the engine refused the request")
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "STALE"
        await aside.drain()
    finally:
        logger.remove(sink)
    assert any("background refresh of k failed" in line for line in warnings)
    assert (await aside.fetch("k", backend.compute, route="document")).x_cache == "STALE"


async def test_fetch_when_refresh_lock_held_elsewhere_skips_refresh() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    await aside.fetch("k", backend.compute, route="document")
    clock.now += 20
    await aside.cache.acquire(lock_key("k"), 60)
    await aside.fetch("k", backend.compute, route="document")
    await aside.drain()
    assert backend.calls == 1


async def test_fetch_when_waiting_process_sees_lock_and_cache_fails_computes() -> None:
    class GetFailsAfterLock(MemoryCache):
        async def get(self, key: str) -> bytes | None:
            if key.endswith("after"):
                raise CacheUnavailable("flaky")
            return await super().get(key)

    clock, backend = Clock(), Backend()
    cache = GetFailsAfterLock(max_entries=10, max_bytes=10_000)
    aside = make(clock, cache)
    await cache.acquire(lock_key("after"), 60)
    with pytest.raises(CacheUnavailable):
        await cache.get("after")
    assert (await aside.fetch_generational(KEY, backend.compute, route="search")).x_cache == "MISS"


async def test_close_when_refresh_running_cancels_it() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    await aside.fetch("k", backend.compute, route="document")
    clock.now += 20
    backend.gate = asyncio.Event()  # the background refresh never finishes by itself
    await aside.fetch("k", backend.compute, route="document")
    await asyncio.sleep(0)
    await aside.close()
    assert backend.calls == 2


class DownCache(MemoryCache):
    """A cache whose every read fails (Redis down, its breaker open)."""

    def __init__(self) -> None:
        super().__init__(max_entries=10, max_bytes=10_000)

    async def get(self, key: str) -> bytes | None:
        raise CacheUnavailable("down")

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        raise CacheUnavailable("down")


async def test_fetch_generational_when_cache_is_down_still_computes_concurrent_misses_once() -> None:
    clock, backend = Clock(), Backend(gate=asyncio.Event())
    aside = make(clock, DownCache())
    misses = [asyncio.create_task(aside.fetch_generational(KEY, backend.compute, route="search")) for _ in range(40)]
    await settle()
    backend.gate.set()  # type: ignore[union-attr]
    served = await asyncio.gather(*misses)
    assert backend.calls == 1
    assert {s.x_cache for s in served} == {"MISS"}


async def test_fetch_when_engine_calls_at_the_limit_refuses_more_at_once() -> None:
    clock, backend = Clock(), Backend(gate=asyncio.Event())
    aside = make(clock, policy=dataclasses.replace(POLICY, max_inflight=2))
    running = [asyncio.create_task(aside.fetch(f"k{n}", backend.compute, route="document")) for n in range(2)]
    same_key = asyncio.create_task(aside.fetch("k0", backend.compute, route="document"))
    await settle()
    assert aside.engine_inflight == 2
    with pytest.raises(Overloaded):
        await aside.fetch("k2", backend.compute, route="document")
    backend.gate.set()  # type: ignore[union-attr]
    await asyncio.gather(*running, same_key)  # a waiter on a running key was coalesced, not refused
    assert backend.calls == 2
    assert aside.engine_inflight == 0
    assert (await aside.fetch("k2", backend.compute, route="document")).x_cache == "MISS"


async def test_fetch_when_overloaded_with_an_expired_entry_serves_it_stale() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock, policy=dataclasses.replace(POLICY, max_inflight=1))
    await aside.fetch("hot", backend.compute, route="document")
    clock.now += 120  # past the hard TTL (100), inside stale-if-error (50 more)
    blocker = Backend(gate=asyncio.Event())
    busy = asyncio.create_task(aside.fetch("other", blocker.compute, route="document"))
    await settle()
    served = await aside.fetch("hot", backend.compute, route="document")
    assert served.x_cache == "STALE"
    blocker.gate.set()  # type: ignore[union-attr]
    await busy


async def test_fetch_when_overloaded_a_fresh_hit_never_waits() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock, policy=dataclasses.replace(POLICY, max_inflight=1))
    await aside.fetch("hot", backend.compute, route="document")
    blocker = Backend(gate=asyncio.Event())
    busy = asyncio.create_task(aside.fetch("other", blocker.compute, route="document"))
    await settle()
    assert (await aside.fetch("hot", backend.compute, route="document")).x_cache == "HIT"
    blocker.gate.set()  # type: ignore[union-attr]
    await busy


async def test_null_cache_when_used_computes_every_request() -> None:
    clock, backend = Clock(), Backend()
    aside = CacheAside(NullCache(), POLICY, clock=clock)
    first = await aside.fetch_generational(KEY, backend.compute, route="search")
    second = await aside.fetch_generational(KEY, backend.compute, route="search")
    assert (first.x_cache, second.x_cache, backend.calls) == ("MISS", "MISS", 2)
    assert await NullCache().incr("g") == 0
    assert await NullCache().acquire("l", 1) is not None


async def test_peek_fresh_when_same_stored_value_decodes_it_once(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    await aside.fetch_generational(KEY, backend.compute, route="search")
    decoded: list[bytes] = []

    def counting(raw: bytes) -> CacheEntry:
        decoded.append(raw)
        return decode_entry(raw)

    monkeypatch.setattr("src.cache.aside.decode_entry", counting)
    aside._decoded.clear()
    first = await aside.peek_fresh(KEY, route="search")
    second = await aside.peek_fresh(KEY, route="search")
    assert first is not None
    assert second is not None
    assert second.entry is first.entry
    assert len(decoded) == 1
    clock.now += POLICY.soft_ttl_seconds + 1  # the memo never makes a stale entry look fresh
    assert await aside.peek_fresh(KEY, route="search") is None


async def test_peek_fresh_when_many_stored_values_bounds_the_decode_memo() -> None:
    clock, backend = Clock(), Backend()
    aside = make(clock)
    keys = [search_key("t", "schema:v1", f"request-{number}".encode()) for number in range(80)]
    for key in keys:
        await aside.fetch_generational(key, backend.compute, route="search")
        assert await aside.peek_fresh(key, route="search") is not None
    assert len(aside._decoded) == aside_module._DECODED_ENTRIES


# --- took_ms: a response served from the cache states its own time --------------------------------


async def test_fetch_generational_when_hit_states_its_own_took_ms() -> None:
    clock, backend = Clock(), Backend(timed=True)
    aside = make(clock)
    miss = await aside.fetch_generational(KEY, backend.compute, route="search")
    hit = await aside.fetch_generational(KEY, backend.compute, route="search")
    peeked = await aside.peek_fresh(KEY, route="search")
    assert (miss.x_cache, hit.x_cache) == ("MISS", "HIT")
    assert took_ms(miss) == 250.0  # the computation's own time
    assert took_ms(hit) == took_ms(peeked) == 0.5  # one timer step from the lookup to the answer
    assert hit.entry.etag == miss.entry.etag


async def test_fetch_generational_when_stale_states_its_own_took_ms() -> None:
    clock, backend = Clock(), Backend(timed=True)
    aside = make(clock)
    await aside.fetch_generational(KEY, backend.compute, route="search")
    clock.now += 20  # past soft (10), before hard (100)
    stale = await aside.fetch_generational(KEY, backend.compute, route="search")
    await aside.drain()
    assert stale.x_cache == "STALE"
    assert took_ms(stale) == 0.5


async def test_fetch_generational_when_backend_fails_serves_expired_entry_with_its_own_took_ms() -> None:
    clock, backend = Clock(), Backend(timed=True)
    aside = make(clock)
    await aside.fetch_generational(KEY, backend.compute, route="search")
    backend.fail = True
    clock.now += 120  # past hard (100), within hard + grace (150)
    served = await aside.fetch_generational(KEY, backend.compute, route="search")
    assert served.x_cache == "STALE"
    assert took_ms(served) == 0.5


async def test_fetch_generational_when_another_process_computed_states_the_waiters_own_took_ms() -> None:
    server = fakeredis.FakeServer()
    clock, backend = Clock(), Backend(gate=asyncio.Event(), timed=True)

    def process() -> CacheAside:
        redis = fakeredis.FakeAsyncRedis(server=server)
        breaker = CircuitBreaker(failure_threshold=3, reset_seconds=1)
        return make(clock, RedisCache(redis, timeout_seconds=30, breaker=breaker), WAITING)

    one, two = process(), process()
    first = asyncio.create_task(one.fetch_generational(KEY, backend.compute, route="search"))
    await settle()
    second = asyncio.create_task(two.fetch_generational(KEY, backend.compute, route="search"))
    await settle()
    backend.gate.set()  # type: ignore[union-attr]
    computed, waited = await asyncio.gather(first, second)
    assert (computed.x_cache, waited.x_cache) == ("MISS", "HIT")
    assert took_ms(computed) == 250.0
    assert took_ms(waited) > 0.0
    assert took_ms(waited) != 250.0


async def test_fetch_when_jittering_ttls_leaves_the_random_modules_state_alone() -> None:
    # Hypothesis, drawing in a test's thread while an app served in another, failed a run when the app's
    # jitter moved the shared state of the `random` module.
    aside = CacheAside(MemoryCache(max_entries=10, max_bytes=10_000), POLICY)
    before = random.getstate()
    await aside.fetch_generational(KEY, Backend().compute, route="search")
    assert random.getstate() == before
