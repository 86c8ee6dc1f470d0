"""Two cache tiers: a small in-process tier in front of a shared cache (Redis), behind one `Cache`.

- Reads: a value the near tier stored less than `near_ttl_seconds` ago is served from memory, with no
  network trip; otherwise the shared tier is asked (one single-key GET) and the near tier refilled.
  When the shared tier fails, the near tier's older copy (if any) is served instead of a miss: the
  cache-aside layer judges its freshness from the entry itself, so a hot key survives a Redis hiccup.
- The search generation is read from the shared tier at most every `generation_poll_seconds` per
  generation key (concurrent readers share one GET) and the last known value is kept through a Redis
  failure. `get_generational` is thus a generation lookup (usually in memory) plus a single-key GET:
  no script, no pipeline spanning two keys, so it works on Redis Cluster.
- Writes go to both tiers; deletes to both; `incr` (the indexer's bump) to the shared tier, and the
  new generation is known here at once. Locks live in the shared tier only (they must be shared).

An entry deleted by another process (the indexer) stays readable here for at most `near_ttl_seconds`,
and a bump made elsewhere is seen within `generation_poll_seconds`: both are settings, in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from src.cache.base import Cache, CacheUnavailable
from src.cache.flight import single_flight
from src.cache.memory import MemoryCache


@dataclass(slots=True)
class _Generation:
    value: int
    read_at: float


class TieredCache:
    """`Cache` made of an in-process `near` tier and a shared `far` tier."""

    def __init__(
        self,
        near: MemoryCache,
        far: Cache,
        *,
        near_ttl_seconds: float,
        generation_poll_seconds: float,
        keep_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.near = near
        self.far = far
        self.kind = f"{far.kind}+memory"
        self._near_ttl = near_ttl_seconds
        self._keep = keep_seconds
        self._poll = generation_poll_seconds
        self._clock = clock
        self._generations: dict[str, _Generation] = {}
        self._reading: dict[str, asyncio.Future[int]] = {}

    async def get(self, key: str) -> bytes | None:
        """Near if recent, else far (refilling near); near's older copy when far fails."""
        held = self.near.get_aged(key)
        if held is not None and held[1] < self._near_ttl:
            return held[0]
        try:
            value = await self.far.get(key)
        except CacheUnavailable:
            if held is not None:
                return held[0]
            raise
        if value is None:
            await self.near.delete(key)
        else:
            # The far tier's TTL is not known here: the copy is kept as long as any entry may still be
            # served (`keep_seconds`; the cache-aside layer judges each entry's freshness from the entry
            # itself), bounded by the near tier's LRU. Its age decides when the far tier is asked again.
            await self.near.set(key, value, self._keep)
        return value

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        """The generation (usually from memory) and the entry it selects."""
        generation = await self.generation(generation_key)
        return generation, await self.get(f"{prefix}{generation}{suffix}")

    async def generation(self, generation_key: str) -> int:
        """The current generation, read from the far tier at most every `generation_poll_seconds`."""
        known = self._generations.get(generation_key)
        if known is not None and self._clock() - known.read_at < self._poll:
            return known.value
        return await single_flight(self._reading, generation_key, lambda: self._read_generation(generation_key, known))

    async def _read_generation(self, generation_key: str, known: _Generation | None) -> int:
        try:
            raw = await self.far.get(generation_key)
        except CacheUnavailable:
            if known is not None:
                return known.value  # keep serving the last known generation through a Redis failure
            raise
        value = int(raw) if raw else 0
        if known is not None and value < known.value:
            value = known.value  # never step back (a lagging replica): an older generation's entries are retired
        self._generations[generation_key] = _Generation(value, self._clock())
        return value

    def learn_generation(self, generation_key: str, value: int) -> None:
        """A generation announced by an event (never stepping back): no poll needed to see it."""
        known = self._generations.get(generation_key)
        if known is None or value > known.value:
            self._generations[generation_key] = _Generation(value, self._clock())

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Both tiers (near first: it answers even when far fails)."""
        await self.near.set(key, value, ttl_seconds)
        await self.far.set(key, value, ttl_seconds)

    async def delete(self, *keys: str) -> None:
        """Both tiers."""
        await self.near.delete(*keys)
        for key in keys:
            self._generations.pop(key, None)
        await self.far.delete(*keys)

    async def delete_prefix(self, prefix: str) -> int:
        """Both tiers; the count is the far tier's (the near one holds copies)."""
        await self.near.delete_prefix(prefix)
        return await self.far.delete_prefix(prefix)

    async def incr(self, key: str) -> int:
        """The far tier's counter; this process knows the new value at once."""
        value = await self.far.incr(key)
        self._generations[key] = _Generation(value, self._clock())
        return value

    async def drop_in_process(self, keys: Sequence[str], generation_key: str, generation: int | None) -> None:
        """The near tier only (the indexer deleted the shared entries); an announced generation is known
        at once (`learn_generation`), without waiting for the next poll."""
        await self.near.delete(*keys)
        if generation is not None:
            self.learn_generation(generation_key, generation)

    async def acquire(self, key: str, lease_seconds: float) -> str | None:
        """Far tier only: a lock must be shared."""
        return await self.far.acquire(key, lease_seconds)

    async def release(self, key: str, token: str) -> None:
        """Far tier only."""
        await self.far.release(key, token)

    async def ping(self) -> None:
        """The far tier answers (the near one always does)."""
        await self.far.ping()

    async def close(self) -> None:
        """Both tiers."""
        await self.near.close()
        await self.far.close()
