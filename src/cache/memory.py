"""In-process LRU cache (the embedded default when REDIS_URL is empty), bounded by entries and bytes.

Single process only: generations and locks are local, so with several workers each keeps its own
(use Redis for a fleet). Expiry uses the monotonic clock; expired entries go on access or eviction.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from src.cache.tokens import lock_token


@dataclass(slots=True)
class _Item:
    value: bytes
    expires_at: float
    stored_at: float


class MemoryCache:
    """`Cache` in this process's memory."""

    kind = "memory"

    def __init__(self, *, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._counters: dict[str, int] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._clock = clock

    @property
    def size_bytes(self) -> int:
        """Bytes held by values (keys and bookkeeping not counted)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> bytes | None:
        """The live value under `key` (and mark it recently used)."""
        item = self._items.get(key)
        if item is None:
            return None
        if item.expires_at <= self._clock():
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item.value

    def get_aged(self, key: str) -> tuple[bytes, float] | None:
        """The live value under `key` and the seconds since it was stored (marks it recently used)."""
        item = self._items.get(key)
        if item is None:
            return None
        now = self._clock()
        if item.expires_at <= now:
            self._drop(key)
            return None
        self._items.move_to_end(key)
        return item.value, now - item.stored_at

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        """The generation and the value of the key it selects."""
        generation = self._counters.get(generation_key, 0)
        return generation, await self.get(f"{prefix}{generation}{suffix}")

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store `value`, then evict least recently used entries until both bounds hold."""
        self._drop(key)  # a value that is not stored must not leave the old one readable either
        if ttl_seconds <= 0 or len(value) > self._max_bytes:
            return
        now = self._clock()
        self._items[key] = _Item(value=value, expires_at=now + ttl_seconds, stored_at=now)
        self._bytes += len(value)
        while len(self._items) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._items)))

    async def delete(self, *keys: str) -> None:
        """Remove values (and counters) under `keys`."""
        for key in keys:
            self._drop(key)
            self._counters.pop(key, None)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every value under a key starting with `prefix`."""
        doomed = [key for key in self._items if key.startswith(prefix)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def incr(self, key: str) -> int:
        """Add one to a counter."""
        self._counters[key] = self._counters.get(key, 0) + 1
        return self._counters[key]

    async def drop_in_process(self, keys: Sequence[str], generation_key: str, generation: int | None) -> None:
        """This cache is the process's whole cache (no shared tier): the keys go, and its own generation
        moves on, which retires every search entry of the old one."""
        await self.delete(*keys)
        await self.incr(generation_key)

    async def acquire(self, key: str, lease_seconds: float) -> str | None:
        """Take the lock unless a live lease holds it."""
        now = self._clock()
        held = self._locks.get(key)
        if held is not None and held[1] > now:
            return None
        token = lock_token()
        self._locks[key] = (token, now + lease_seconds)
        return token

    async def release(self, key: str, token: str) -> None:
        """Free the lock if `token` holds it."""
        held = self._locks.get(key)
        if held is not None and held[0] == token:
            del self._locks[key]

    async def ping(self) -> None:
        """Always answers."""

    async def close(self) -> None:
        """Drop everything."""
        self._items.clear()
        self._counters.clear()
        self._locks.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= len(item.value)
