"""Structures of the cache module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

type XCache = Literal["HIT", "MISS", "STALE"]


@dataclass(frozen=True, slots=True)
class TookSlot:
    """Where a cached body states how long its computation took (`took_ms`), so that a hit can state its
    own time instead (`src.cache.entries.with_took_ms`) without re-encoding anything."""

    start: int
    """Offset in the body of the took_ms number's first byte."""
    end: int
    """Offset just past the number; the body's bytes from here on follow it (`}`)."""
    gzip_head: int
    """Bytes of the gzip body before its last deflate block, which holds body[start:] stored uncompressed
    (0 when the entry has no gzip body)."""
    head_crc: int
    """CRC-32 of body[:start] (the gzip trailer of a spliced body continues it)."""


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
    """ETag (quoted) from a deterministic hash of `body`: strong, or weak when the body states its took_ms
    (`took`), which the hash leaves out (a hit's body differs from the miss's in that number only)."""
    surrogate_keys: tuple[str, ...]
    """CDN purge keys: the document ids in the response and the search generation."""
    soft_expires_at: float
    """Wall-clock time (epoch seconds) after which the entry is served stale and refreshed."""
    hard_expires_at: float
    """Wall-clock time after which the entry is a miss (kept longer only for stale-if-error)."""
    gzip_body: bytes | None = None
    """`body` gzip-compressed, when it was worth compressing."""
    took: TookSlot | None = None
    """Where `body` states its took_ms (search responses); None when it does not."""


@dataclass(frozen=True, slots=True)
class Served:
    """What the cache-aside layer hands to the controller."""

    entry: CacheEntry
    x_cache: XCache
    """HIT (fresh from cache), MISS (computed now) or STALE (served past its soft TTL)."""
    origin: CacheEntry | None = None
    """For an entry that states its own time (`entry` is then a copy with this hit's took_ms), the entry as
    stored: one object per stored value, so what depends only on it (status, headers) can be remembered."""
