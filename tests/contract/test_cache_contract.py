"""The Cache contract, run against the in-process LRU, fakeredis and a real Redis server."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import fakeredis
import pytest
from redis.asyncio.connection import DefaultParser
from redis.utils import HIREDIS_AVAILABLE

from src.cache.base import Cache, CacheUnavailable
from src.cache.memory import MemoryCache
from src.cache.redis import RedisCache, create_redis_cache
from src.cache.tiered import TieredCache
from src.resilience import CircuitBreaker
from tests.conftest import REDIS_URL, RedisClusterNodes, require_redis

type Advance = Callable[[float], Awaitable[None]]
SERVER_BUDGET_SECONDS = 10.0
"""A real server's call budget here: the contract is about answers, not latency, and a loaded machine (the
servers are processes competing for the same cores) took more than a second now and then."""


@pytest.fixture
def clock() -> list[float]:
    """The in-process cache's clock, moved by `advance`."""
    return [0.0]


@pytest.fixture(
    params=[
        "memory",
        "fakeredis",
        "tiered",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("redis-cluster", marks=pytest.mark.integration),
    ]
)
async def cache(request: pytest.FixtureRequest, clock: list[float]) -> AsyncIterator[Cache]:
    implementation: Cache
    if request.param == "memory":
        implementation = MemoryCache(max_entries=1000, max_bytes=1_000_000, clock=lambda: clock[0])
    elif request.param == "tiered":
        breaker = CircuitBreaker(failure_threshold=3, reset_seconds=1)
        implementation = TieredCache(
            MemoryCache(max_entries=100, max_bytes=100_000, clock=lambda: clock[0]),
            RedisCache(fakeredis.FakeAsyncRedis(), timeout_seconds=1, breaker=breaker),
            near_ttl_seconds=1.0,
            generation_poll_seconds=0.0,  # the contract's generation reads are immediate
            keep_seconds=600.0,
            clock=lambda: clock[0],
        )
    elif request.param == "fakeredis":
        breaker = CircuitBreaker(failure_threshold=3, reset_seconds=1)
        implementation = RedisCache(fakeredis.FakeAsyncRedis(), timeout_seconds=1, breaker=breaker)
    elif request.param == "redis-cluster":
        nodes: RedisClusterNodes = request.getfixturevalue("redis_cluster")
        implementation = create_redis_cache(
            nodes.url,
            timeout_seconds=SERVER_BUDGET_SECONDS,
            connect_timeout_seconds=SERVER_BUDGET_SECONDS,
            failure_threshold=3,
            reset_seconds=1,
            cluster=True,
        )
    else:
        require_redis()
        implementation = create_redis_cache(
            REDIS_URL,
            timeout_seconds=SERVER_BUDGET_SECONDS,
            connect_timeout_seconds=SERVER_BUDGET_SECONDS,
            failure_threshold=3,
            reset_seconds=1,
        )
    yield implementation
    await implementation.close()


@pytest.fixture
def advance(cache: Cache, clock: list[float], monkeypatch: pytest.MonkeyPatch) -> Advance:
    """Let `seconds` pass for the cache: its injected clock, fakeredis's patched clock, or real time on
    a real server (whose own expiry is then what is tested)."""
    offset = [0.0]
    real_time = time.time

    async def move(seconds: float) -> None:
        far = cache.far if isinstance(cache, TieredCache) else cache
        if isinstance(cache, MemoryCache | TieredCache):
            clock[0] += seconds
        if isinstance(far, MemoryCache):
            pass
        elif isinstance(far, RedisCache) and isinstance(far._client, fakeredis.FakeAsyncRedis):
            offset[0] += seconds
            monkeypatch.setattr(fakeredis._socket._base.time, "time", lambda: real_time() + offset[0])  # type: ignore[attr-defined]
        else:
            await asyncio.sleep(seconds)

    return move


@pytest.fixture
def prefix() -> str:
    """Keys unique to one test, so runs against a shared server never collide."""
    return f"contract:{uuid.uuid4().hex}:"


async def test_get_when_absent_returns_none(cache: Cache, prefix: str) -> None:
    assert await cache.get(f"{prefix}nothing") is None


async def test_set_when_read_back_returns_same_bytes(cache: Cache, prefix: str) -> None:
    value = bytes(range(256)) * 4
    await cache.set(f"{prefix}k", value, 10)
    assert await cache.get(f"{prefix}k") == value


async def test_set_when_overwritten_returns_latest(cache: Cache, prefix: str) -> None:
    await cache.set(f"{prefix}k", b"one", 10)
    await cache.set(f"{prefix}k", b"two", 10)
    assert await cache.get(f"{prefix}k") == b"two"


async def test_set_when_ttl_passes_expires(cache: Cache, prefix: str, advance: Advance) -> None:
    await cache.set(f"{prefix}k", b"v", 0.05)
    await cache.set(f"{prefix}long", b"v", 10)
    await advance(0.15)
    assert await cache.get(f"{prefix}k") is None
    assert await cache.get(f"{prefix}long") == b"v"


async def test_delete_when_keys_mixed_removes_present_ignores_absent(cache: Cache, prefix: str) -> None:
    await cache.set(f"{prefix}a", b"1", 10)
    await cache.set(f"{prefix}b", b"2", 10)
    await cache.delete(f"{prefix}a", f"{prefix}missing")
    assert await cache.get(f"{prefix}a") is None
    assert await cache.get(f"{prefix}b") == b"2"


async def test_incr_when_called_counts_from_zero(cache: Cache, prefix: str) -> None:
    assert [await cache.incr(f"{prefix}gen") for _ in range(3)] == [1, 2, 3]


async def test_get_generational_when_generation_moves_reads_other_key(cache: Cache, prefix: str) -> None:
    generation_key, key_prefix, suffix = f"{prefix}gen", f"{prefix}s:g", ":hash"
    assert await cache.get_generational(generation_key, key_prefix, suffix) == (0, None)
    await cache.set(f"{key_prefix}0{suffix}", b"at zero", 10)
    assert await cache.get_generational(generation_key, key_prefix, suffix) == (0, b"at zero")
    await cache.incr(generation_key)
    assert await cache.get_generational(generation_key, key_prefix, suffix) == (1, None)
    await cache.set(f"{key_prefix}1{suffix}", b"at one", 10)
    assert await cache.get_generational(generation_key, key_prefix, suffix) == (1, b"at one")


async def test_acquire_when_held_refuses_until_released(cache: Cache, prefix: str) -> None:
    token = await cache.acquire(f"{prefix}lock", 5)
    assert token is not None
    assert await cache.acquire(f"{prefix}lock", 5) is None
    await cache.release(f"{prefix}lock", "not-the-holder")
    assert await cache.acquire(f"{prefix}lock", 5) is None
    await cache.release(f"{prefix}lock", token)
    assert await cache.acquire(f"{prefix}lock", 5) is not None


async def test_acquire_when_lease_runs_out_can_be_taken_again(cache: Cache, prefix: str, advance: Advance) -> None:
    assert await cache.acquire(f"{prefix}lock", 0.05) is not None
    assert await cache.acquire(f"{prefix}lock", 5) is None
    await advance(0.15)
    assert await cache.acquire(f"{prefix}lock", 5) is not None


async def test_ping_when_up_answers(cache: Cache) -> None:
    try:
        await cache.ping()
    except CacheUnavailable as err:
        pytest.fail(f"ping of a cache that is up failed: {err}")


async def test_ping_when_server_unreachable_raises_cache_unavailable() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    breaker = CircuitBreaker(failure_threshold=3, reset_seconds=1)
    down = RedisCache(fakeredis.FakeAsyncRedis(server=server), timeout_seconds=1, breaker=breaker)
    with pytest.raises(CacheUnavailable):
        await down.ping()
    await down.close()


def test_redis_client_when_installed_uses_hiredis_parser() -> None:
    assert HIREDIS_AVAILABLE
    assert DefaultParser.__name__ == "_AsyncHiredisParser"


async def test_incr_when_redis_refuses_the_command_is_a_miss_that_leaves_the_breaker_closed() -> None:
    client = fakeredis.FakeAsyncRedis()
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=60)
    cache = RedisCache(client, timeout_seconds=1, breaker=breaker)
    await client.set("not-a-number", b"text")
    for _ in range(3):
        with pytest.raises(CacheUnavailable, match="ResponseError"):
            await cache.incr("not-a-number")
    assert breaker.state == "closed"
    await cache.close()
