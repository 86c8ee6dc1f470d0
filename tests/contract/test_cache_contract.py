"""The Cache contract, run against the in-process LRU, fakeredis and a real Redis server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import fakeredis
import pytest
from redis.asyncio.connection import DefaultParser
from redis.utils import HIREDIS_AVAILABLE

from src.cache.base import Cache
from src.cache.memory import MemoryCache
from src.cache.redis import RedisCache, create_redis_cache
from src.resilience import CircuitBreaker
from tests.conftest import REDIS_URL, require_redis


@pytest.fixture(params=["memory", "fakeredis", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    implementation: Cache
    if request.param == "memory":
        implementation = MemoryCache(max_entries=1000, max_bytes=1_000_000)
    elif request.param == "fakeredis":
        breaker = CircuitBreaker(failure_threshold=3, reset_seconds=1)
        implementation = RedisCache(fakeredis.FakeAsyncRedis(), timeout_seconds=1, breaker=breaker)
    else:
        require_redis()
        implementation = create_redis_cache(
            REDIS_URL, timeout_seconds=1, connect_timeout_seconds=1, failure_threshold=3, reset_seconds=1
        )
    yield implementation
    await implementation.close()


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


async def test_set_when_ttl_passes_expires(cache: Cache, prefix: str) -> None:
    if isinstance(cache, MemoryCache):
        clock = [0.0]
        cache = MemoryCache(max_entries=10, max_bytes=1000, clock=lambda: clock[0])
        await cache.set(f"{prefix}k", b"v", 0.05)
        clock[0] = 0.06
    else:
        await cache.set(f"{prefix}k", b"v", 0.05)
        await asyncio.sleep(0.15)
    assert await cache.get(f"{prefix}k") is None


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


async def test_acquire_when_lease_runs_out_can_be_taken_again(cache: Cache, prefix: str) -> None:
    if isinstance(cache, MemoryCache):
        clock = [0.0]
        cache = MemoryCache(max_entries=10, max_bytes=1000, clock=lambda: clock[0])
        assert await cache.acquire(f"{prefix}lock", 0.05) is not None
        clock[0] = 0.06
    else:
        assert await cache.acquire(f"{prefix}lock", 0.05) is not None
        await asyncio.sleep(0.15)
    assert await cache.acquire(f"{prefix}lock", 5) is not None


async def test_ping_when_up_answers(cache: Cache) -> None:
    await cache.ping()


def test_redis_client_when_installed_uses_hiredis_parser() -> None:
    assert HIREDIS_AVAILABLE
    assert DefaultParser.__name__ == "_AsyncHiredisParser"
