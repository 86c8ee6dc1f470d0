"""Pure encoding of cache entries, ETags, TTL jitter and freshness.

An entry is stored as `b"SE1"`, a 4-byte big-endian header length, an orjson header, the body and
the optional gzip body; a hit slices the bytes out without touching the JSON payload.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from typing import Literal, cast

import orjson

from src.cache.models import CacheEntry

_MAGIC = b"SE1"
_HEADER_LENGTH = struct.Struct(">I")

type Freshness = Literal["fresh", "stale", "expired"]


class EntryCorrupt(ValueError):
    """The cached bytes are not an entry this code wrote (garbage, truncation, old format)."""


def etag_for(body: bytes) -> str:
    """A strong ETag (RFC 9110 quoted string) from a hash of the body: same bytes, same tag, anywhere."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def jittered(seconds: float, *, jitter: float, draw: float) -> float:
    """`seconds` shortened by up to `jitter` (a fraction) according to `draw` in [0, 1)."""
    return seconds * (1.0 - jitter * draw)


def gzipped(body: bytes) -> bytes | None:
    """`body` gzipped (deterministically: no timestamp), or None when that saves less than a tenth."""
    candidate = gzip.compress(body, compresslevel=6, mtime=0)
    return candidate if len(candidate) <= len(body) * 0.9 else None


def make_entry(
    *,
    status: int,
    body: bytes,
    content_type: str,
    surrogate_keys: tuple[str, ...],
    now: float,
    soft_ttl: float,
    hard_ttl: float,
    gzip_min_bytes: int,
) -> CacheEntry:
    """Build an entry (ETag, expiry times, gzip body when compression saves at least a tenth)."""
    compressed = gzipped(body) if len(body) >= gzip_min_bytes else None
    return CacheEntry(
        status=status,
        body=body,
        content_type=content_type,
        etag=etag_for(body),
        surrogate_keys=surrogate_keys,
        soft_expires_at=now + soft_ttl,
        hard_expires_at=now + max(hard_ttl, soft_ttl),
        gzip_body=compressed,
    )


def encode_entry(entry: CacheEntry) -> bytes:
    """The stored form of an entry."""
    header = orjson.dumps(
        {
            "s": entry.status,
            "t": entry.content_type,
            "e": entry.etag,
            "k": entry.surrogate_keys,
            "soft": entry.soft_expires_at,
            "hard": entry.hard_expires_at,
            "b": len(entry.body),
            "z": len(entry.gzip_body) if entry.gzip_body is not None else -1,
        }
    )
    return b"".join((_MAGIC, _HEADER_LENGTH.pack(len(header)), header, entry.body, entry.gzip_body or b""))


def decode_entry(raw: bytes) -> CacheEntry:
    """Parse stored bytes; EntryCorrupt when they are not a complete entry."""
    if raw[:3] != _MAGIC or len(raw) < 7:
        raise EntryCorrupt("not a cache entry")
    (header_length,) = _HEADER_LENGTH.unpack_from(raw, 3)
    start = 7 + header_length
    if start > len(raw):
        raise EntryCorrupt("truncated cache entry header")
    try:
        header = cast(dict[str, object], orjson.loads(raw[7:start]))
        body_length = cast(int, header["b"])
        gzip_length = cast(int, header["z"])
        body = raw[start : start + body_length]
        gzip_body = raw[start + body_length :] if gzip_length >= 0 else None
        if len(body) != body_length or (gzip_body is not None and len(gzip_body) != gzip_length):
            raise EntryCorrupt("truncated cache entry")
        return CacheEntry(
            status=cast(int, header["s"]),
            body=body,
            content_type=cast(str, header["t"]),
            etag=cast(str, header["e"]),
            surrogate_keys=tuple(cast(list[str], header["k"])),
            soft_expires_at=float(cast(float, header["soft"])),
            hard_expires_at=float(cast(float, header["hard"])),
            gzip_body=gzip_body,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise EntryCorrupt(f"unreadable cache entry header: {err}") from err


def freshness(entry: CacheEntry, now: float) -> Freshness:
    """fresh before the soft expiry, stale before the hard one, expired after."""
    if now < entry.soft_expires_at:
        return "fresh"
    if now < entry.hard_expires_at:
        return "stale"
    return "expired"
