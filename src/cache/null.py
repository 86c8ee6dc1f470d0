"""`Cache` that stores nothing: `CACHE_ENABLED=false` (benchmarks of the engine path, debugging).

Every read is a miss, writes are dropped, the generation is always 0 and every lock is granted, so
each request computes its response (concurrent identical misses in one process are still coalesced
by the cache-aside layer, which needs no cache for that).
"""

from __future__ import annotations

from collections.abc import Sequence

from src.cache.tokens import lock_token


class NullCache:
    """A cache that is always empty."""

    kind = "none"

    async def get(self, key: str) -> bytes | None:
        """Always a miss."""
        return None

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        """Generation 0, no entry."""
        return 0, None

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Dropped."""

    async def delete(self, *keys: str) -> None:
        """Nothing to delete."""

    async def delete_prefix(self, prefix: str) -> int:
        """Nothing to delete."""
        return 0

    async def incr(self, key: str) -> int:
        """Always 0: nothing is ever retired because nothing is kept."""
        return 0

    async def drop_in_process(self, keys: Sequence[str], generation_key: str, generation: int | None) -> None:
        """Nothing held."""

    async def acquire(self, key: str, lease_seconds: float) -> str | None:
        """Always granted."""
        return lock_token()

    async def release(self, key: str, token: str) -> None:
        """Nothing held."""

    async def ping(self) -> None:
        """Always answers."""

    async def close(self) -> None:
        """Nothing to close."""
