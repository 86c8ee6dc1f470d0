"""Structures of the cache module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

type XCache = Literal["HIT", "MISS", "STALE"]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One cached response: the final encoded bytes plus what HTTP caching needs."""

    status: int
    """HTTP status of the cached response (200, or 404 for negative caching)."""
    body: bytes
    """The response body exactly as sent (identity encoding)."""
    content_type: str
    """Media type of `body`."""
    etag: str
    """Strong ETag (quoted) of `body`, from a deterministic hash."""
    surrogate_keys: tuple[str, ...]
    """CDN purge keys: the document ids in the response and the search generation."""
    soft_expires_at: float
    """Wall-clock time (epoch seconds) after which the entry is served stale and refreshed."""
    hard_expires_at: float
    """Wall-clock time after which the entry is a miss (kept longer only for stale-if-error)."""
    gzip_body: bytes | None = None
    """`body` gzip-compressed, when it was worth compressing."""


@dataclass(frozen=True, slots=True)
class Served:
    """What the cache-aside layer hands to the controller."""

    entry: CacheEntry
    x_cache: XCache
    """HIT (fresh from cache), MISS (computed now) or STALE (served past its soft TTL)."""
