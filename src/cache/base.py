"""The `Cache` seam: bytes in, bytes out, with TTLs, a generation counter and short-lease locks.

Contract (tests/contract/test_cache_contract.py runs it on the in-process LRU, fakeredis and a real
Redis server):

- `get(key)` returns the bytes last `set` under `key` within their TTL, else None. `set` with
  `ttl_seconds` > 0 stores a copy; values are opaque bytes.
- `get_generational(generation_key, prefix, suffix)` reads the integer under `generation_key` (0 when
  absent) and the value under `f"{prefix}{generation}{suffix}"` in one round trip.
- `incr(key)` atomically adds one and returns the new value (from 0); it never expires.
- `delete(*keys)` removes keys; absent keys are fine.
- `acquire(key, lease_seconds)` returns a token when nobody holds the lock (or the holder's lease
  ran out), else None; `release(key, token)` frees it only for the token's holder.
- `drop_in_process(keys, generation_key, generation)` applies an invalidation event to what this
  process holds in memory: those keys are gone from it, and its view of the generation moved on (to
  `generation` when the event carries one). A cache that holds nothing in the process does nothing;
  the shared entries are the indexer's to delete.
- Every call fails with `CacheUnavailable` (never a vendor error) within the adapter's timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class CacheUnavailable(Exception):
    """The cache failed, timed out, or its circuit is open; callers treat it as a miss."""


class Cache(Protocol):
    """A shared byte cache."""

    kind: str
    """"redis" or "memory"; shown in logs and readiness."""

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None."""
        ...

    async def get_generational(self, generation_key: str, prefix: str, suffix: str) -> tuple[int, bytes | None]:
        """The current generation and the value under prefix + generation + suffix."""
        ...

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        """Store `value` under `key` for `ttl_seconds`."""
        ...

    async def delete(self, *keys: str) -> None:
        """Remove `keys`."""
        ...

    async def incr(self, key: str) -> int:
        """Atomically increment the counter under `key`; returns the new value."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every value whose key starts with `prefix` (an operator's purge); returns how many."""
        ...

    async def acquire(self, key: str, lease_seconds: float) -> str | None:
        """Take the lock `key` for `lease_seconds`; a token on success, None when held."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Release the lock `key` if `token` still holds it."""
        ...

    async def drop_in_process(self, keys: Sequence[str], generation_key: str, generation: int | None) -> None:
        """Forget `keys` held in this process and move its generation on (an invalidation event)."""
        ...

    async def ping(self) -> None:
        """Raise CacheUnavailable unless the cache answers."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
