"""Unit tests of src.cache.memory: the in-process LRU cache with a fake clock."""

from __future__ import annotations

from src.cache.memory import MemoryCache


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _cache(clock: FakeClock, *, max_entries: int = 100, max_bytes: int = 1_000) -> MemoryCache:
    return MemoryCache(max_entries=max_entries, max_bytes=max_bytes, clock=clock)


async def test_memory_cache_kind_and_ping() -> None:
    cache = _cache(FakeClock())
    assert cache.kind == "memory"
    await cache.ping()


async def test_memory_cache_get_absent_is_none() -> None:
    cache = _cache(FakeClock())
    assert await cache.get("missing") is None


async def test_memory_cache_set_then_get() -> None:
    cache = _cache(FakeClock())
    await cache.set("k", b"value", 10.0)
    assert await cache.get("k") == b"value"
    assert len(cache) == 1
    assert cache.size_bytes == 5


async def test_memory_cache_get_expiry_boundary() -> None:
    clock = FakeClock(100.0)
    cache = _cache(clock)
    await cache.set("k", b"value", 10.0)
    clock.now = 109.5
    assert await cache.get("k") == b"value"
    clock.now = 110.0
    assert await cache.get("k") is None
    assert len(cache) == 0
    assert cache.size_bytes == 0


async def test_memory_cache_set_ttl_not_positive_not_stored() -> None:
    cache = _cache(FakeClock())
    await cache.set("zero", b"v", 0.0)
    await cache.set("negative", b"v", -5.0)
    assert await cache.get("zero") is None
    assert await cache.get("negative") is None
    assert len(cache) == 0
    assert cache.size_bytes == 0


async def test_memory_cache_set_larger_than_max_bytes_not_stored() -> None:
    cache = _cache(FakeClock(), max_bytes=4)
    await cache.set("small", b"abc", 10.0)
    await cache.set("big", b"abcde", 10.0)
    assert await cache.get("big") is None
    assert await cache.get("small") == b"abc"
    assert cache.size_bytes == 3


async def test_memory_cache_set_exactly_max_bytes_stored() -> None:
    cache = _cache(FakeClock(), max_bytes=4)
    await cache.set("k", b"abcd", 10.0)
    assert await cache.get("k") == b"abcd"
    assert cache.size_bytes == 4


async def test_memory_cache_lru_eviction_by_entry_count() -> None:
    cache = _cache(FakeClock(), max_entries=2)
    await cache.set("a", b"1", 10.0)
    await cache.set("b", b"2", 10.0)
    await cache.set("c", b"3", 10.0)
    assert await cache.get("a") is None
    assert await cache.get("b") == b"2"
    assert await cache.get("c") == b"3"
    assert len(cache) == 2
    assert cache.size_bytes == 2


async def test_memory_cache_lru_eviction_by_bytes() -> None:
    cache = _cache(FakeClock(), max_bytes=10)
    await cache.set("a", b"aaaa", 10.0)
    await cache.set("b", b"bbbb", 10.0)
    await cache.set("c", b"cccc", 10.0)
    assert await cache.get("a") is None
    assert await cache.get("b") == b"bbbb"
    assert await cache.get("c") == b"cccc"
    assert cache.size_bytes == 8


async def test_memory_cache_lru_eviction_by_bytes_evicts_several() -> None:
    cache = _cache(FakeClock(), max_bytes=10)
    await cache.set("a", b"aaa", 10.0)
    await cache.set("b", b"bbb", 10.0)
    await cache.set("c", b"ccc", 10.0)
    await cache.set("d", b"dddddddd", 10.0)
    assert await cache.get("a") is None
    assert await cache.get("b") is None
    assert await cache.get("c") is None
    assert await cache.get("d") == b"dddddddd"
    assert len(cache) == 1
    assert cache.size_bytes == 8


async def test_memory_cache_get_refreshes_recency() -> None:
    cache = _cache(FakeClock(), max_entries=2)
    await cache.set("a", b"1", 10.0)
    await cache.set("b", b"2", 10.0)
    assert await cache.get("a") == b"1"
    await cache.set("c", b"3", 10.0)
    assert await cache.get("b") is None
    assert await cache.get("a") == b"1"
    assert await cache.get("c") == b"3"


async def test_memory_cache_get_refreshes_recency_for_byte_eviction() -> None:
    cache = _cache(FakeClock(), max_bytes=10)
    await cache.set("a", b"aaaa", 10.0)
    await cache.set("b", b"bbbb", 10.0)
    assert await cache.get("a") == b"aaaa"
    await cache.set("c", b"cccc", 10.0)
    assert await cache.get("b") is None
    assert await cache.get("a") == b"aaaa"


async def test_memory_cache_overwrite_adjusts_size_bytes() -> None:
    cache = _cache(FakeClock())
    await cache.set("k", b"abc", 10.0)
    await cache.set("k", b"abcdefg", 10.0)
    assert await cache.get("k") == b"abcdefg"
    assert len(cache) == 1
    assert cache.size_bytes == 7
    await cache.set("k", b"a", 10.0)
    assert cache.size_bytes == 1


async def test_memory_cache_overwrite_resets_ttl() -> None:
    clock = FakeClock(100.0)
    cache = _cache(clock)
    await cache.set("k", b"old", 10.0)
    clock.now = 105.0
    await cache.set("k", b"new", 10.0)
    clock.now = 112.0
    assert await cache.get("k") == b"new"


async def test_memory_cache_overwrite_refreshes_recency() -> None:
    cache = _cache(FakeClock(), max_entries=2)
    await cache.set("a", b"1", 10.0)
    await cache.set("b", b"2", 10.0)
    await cache.set("a", b"1bis", 10.0)
    await cache.set("c", b"3", 10.0)
    assert await cache.get("b") is None
    assert await cache.get("a") == b"1bis"


async def test_memory_cache_delete() -> None:
    cache = _cache(FakeClock())
    await cache.set("a", b"aa", 10.0)
    await cache.set("b", b"bbb", 10.0)
    await cache.set("c", b"c", 10.0)
    await cache.delete("a", "c", "absent")
    assert await cache.get("a") is None
    assert await cache.get("c") is None
    assert await cache.get("b") == b"bbb"
    assert len(cache) == 1
    assert cache.size_bytes == 3


async def test_memory_cache_delete_removes_counters() -> None:
    cache = _cache(FakeClock())
    assert await cache.incr("n") == 1
    assert await cache.incr("n") == 2
    await cache.delete("n")
    assert await cache.incr("n") == 1


async def test_memory_cache_incr_from_zero() -> None:
    cache = _cache(FakeClock())
    assert await cache.incr("n") == 1
    assert await cache.incr("n") == 2
    assert await cache.incr("m") == 1
    assert await cache.incr("n") == 3


async def test_memory_cache_incr_never_expires() -> None:
    clock = FakeClock()
    cache = _cache(clock)
    await cache.incr("n")
    clock.now += 1e9
    assert await cache.incr("n") == 2


async def test_memory_cache_get_generational_absent_counter_is_zero() -> None:
    cache = _cache(FakeClock())
    await cache.set("p:g0:s", b"zero", 10.0)
    assert await cache.get_generational("gen", "p:g", ":s") == (0, b"zero")


async def test_memory_cache_get_generational_follows_the_counter() -> None:
    cache = _cache(FakeClock())
    await cache.set("p:g0:s", b"zero", 10.0)
    await cache.set("p:g2:s", b"two", 10.0)
    await cache.incr("gen")
    assert await cache.get_generational("gen", "p:g", ":s") == (1, None)
    await cache.incr("gen")
    assert await cache.get_generational("gen", "p:g", ":s") == (2, b"two")


async def test_memory_cache_get_generational_expired_value() -> None:
    clock = FakeClock(100.0)
    cache = _cache(clock)
    await cache.set("p:g0:s", b"zero", 10.0)
    clock.now = 110.0
    assert await cache.get_generational("gen", "p:g", ":s") == (0, None)


async def test_memory_cache_acquire_returns_a_token() -> None:
    cache = _cache(FakeClock())
    token = await cache.acquire("lock", 5.0)
    other = await cache.acquire("other-lock", 5.0)
    assert isinstance(token, str)
    assert isinstance(other, str)
    assert token != other


async def test_memory_cache_acquire_held_lock_refused() -> None:
    clock = FakeClock(100.0)
    cache = _cache(clock)
    assert await cache.acquire("lock", 5.0) is not None
    clock.now = 104.5
    assert await cache.acquire("lock", 5.0) is None


async def test_memory_cache_acquire_expired_lease_can_be_reacquired() -> None:
    clock = FakeClock(100.0)
    cache = _cache(clock)
    first = await cache.acquire("lock", 5.0)
    clock.now = 105.0
    second = await cache.acquire("lock", 5.0)
    assert second is not None
    assert second != first
    assert await cache.acquire("lock", 5.0) is None


async def test_memory_cache_release_frees_the_lock() -> None:
    cache = _cache(FakeClock())
    token = await cache.acquire("lock", 5.0)
    assert token is not None
    await cache.release("lock", token)
    assert await cache.acquire("lock", 5.0) is not None


async def test_memory_cache_release_wrong_token_keeps_the_lock() -> None:
    cache = _cache(FakeClock())
    assert await cache.acquire("lock", 5.0) is not None
    await cache.release("lock", "not-the-token")
    assert await cache.acquire("lock", 5.0) is None


async def test_memory_cache_release_stale_token_keeps_new_holders_lock() -> None:
    clock = FakeClock(100.0)
    cache = _cache(clock)
    old = await cache.acquire("lock", 5.0)
    assert old is not None
    clock.now = 106.0
    assert await cache.acquire("lock", 5.0) is not None
    await cache.release("lock", old)
    assert await cache.acquire("lock", 5.0) is None


async def test_memory_cache_release_unheld_lock_is_fine() -> None:
    cache = _cache(FakeClock())
    await cache.release("never-taken", "token")
    assert await cache.acquire("never-taken", 5.0) is not None


async def test_memory_cache_close_clears() -> None:
    cache = _cache(FakeClock())
    await cache.set("a", b"aaa", 10.0)
    await cache.set("b", b"bb", 10.0)
    await cache.close()
    assert len(cache) == 0
    assert cache.size_bytes == 0
    assert await cache.get("a") is None
    assert await cache.get("b") is None


async def test_set_when_value_not_storable_removes_previous_value() -> None:
    cache = MemoryCache(max_entries=10, max_bytes=10)
    await cache.set("k", b"old", 10)
    await cache.set("k", b"x" * 11, 10)
    assert await cache.get("k") is None
    await cache.set("k", b"old", 10)
    await cache.set("k", b"new", 0)
    assert await cache.get("k") is None


async def test_close_when_called_drops_counters_and_locks() -> None:
    cache = MemoryCache(max_entries=10, max_bytes=100)
    await cache.incr("gen")
    assert await cache.acquire("lock", 10) is not None
    await cache.close()
    assert await cache.incr("gen") == 1
    assert await cache.acquire("lock", 10) is not None
