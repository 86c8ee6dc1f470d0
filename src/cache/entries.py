"""Pure encoding of cache entries, ETags, TTL jitter and freshness.

An entry is stored as `b"SE1"`, a 4-byte big-endian header length, an orjson header, the body and
the optional gzip body; a hit slices the bytes out without touching the JSON payload.

A body that states how long it took (a search page's last member, `"took_ms":<number>}`) keeps where that
number is (`TookSlot`), so a hit states its own time (`with_took_ms`) by splicing bytes: the identity body
around the number, and the gzip body too, which is built for it: the bytes before the number deflated and
flushed to a byte boundary, then the rest (number and `}`) in a final stored (uncompressed) deflate block,
then the gzip trailer, whose CRC-32 continues the head's. A splice therefore rewrites a few dozen bytes,
never compresses, and gives one ordinary gzip member any client decodes. Such an entry's ETag hashes the
body without the number and is weak (RFC 9110: the bodies it names differ in that number only), so a
recomputation of the same result keeps its tag and If-None-Match still finds it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
import zlib
from typing import Literal, cast

import orjson

from src.cache.models import CacheEntry, TookSlot

_MAGIC = b"SE1"
_HEADER_LENGTH = struct.Struct(">I")

type Freshness = Literal["fresh", "stale", "expired"]


class EntryCorrupt(ValueError):
    """The cached bytes are not an entry this code wrote (garbage, truncation, old format)."""


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""A gzip member's header: deflate, no flags, no timestamp (deterministic), unknown OS (as `gzip.compress`)."""
_STORED_MAX = 0xFFFF
_GZIP_MIN_SAVING = 0.9
"""A gzip body is kept only when it is at most this fraction of the body."""


def etag_for(body: bytes, *, weak: bool = False) -> str:
    """An ETag (RFC 9110 quoted string) from a hash of the body: same bytes, same tag, anywhere."""
    tag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
    return f"W/{tag}" if weak else tag


def jittered(seconds: float, *, jitter: float, draw: float) -> float:
    """`seconds` shortened by up to `jitter` (a fraction) according to `draw` in [0, 1)."""
    return seconds * (1.0 - jitter * draw)


def gzipped(body: bytes) -> bytes | None:
    """`body` gzipped (deterministically: no timestamp), or None when that saves less than a tenth."""
    candidate = gzip.compress(body, compresslevel=6, mtime=0)
    return candidate if len(candidate) <= len(body) * _GZIP_MIN_SAVING else None


def _stored_blocks(data: bytes) -> bytes:
    """`data` as stored (uncompressed) deflate blocks, the last one final; the stream must be at a byte
    boundary (after a sync flush), where a stored block's 3 header bits are padded to a whole byte."""
    if 0 < len(data) <= _STORED_MAX:  # a page's tail after its took_ms (every hit): one block, no loop
        return struct.pack("<BHH", 1, len(data), len(data) ^ 0xFFFF) + data
    blocks = []
    for offset in range(0, max(len(data), 1), _STORED_MAX):
        chunk = data[offset : offset + _STORED_MAX]
        final = offset + _STORED_MAX >= len(data)
        blocks.append(struct.pack("<BHH", int(final), len(chunk), len(chunk) ^ 0xFFFF) + chunk)
    return b"".join(blocks)


def _gzip_tail(rest: bytes, head_crc: int, total: int) -> bytes:
    """What follows a spliceable gzip body's head: `rest` in final stored blocks, then the trailer."""
    return _stored_blocks(rest) + struct.pack("<II", zlib.crc32(rest, head_crc), total & 0xFFFFFFFF)


def _spliceable_gzip(body: bytes, start: int) -> tuple[bytes, int] | None:
    """(gzip of `body` whose bytes from `start` sit in its last stored block, bytes before that block), or
    None when compressing saves less than a tenth."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = _GZIP_HEADER + deflate.compress(body[:start]) + deflate.flush(zlib.Z_SYNC_FLUSH)
    candidate = head + _gzip_tail(body[start:], zlib.crc32(body[:start]), len(body))
    return (candidate, len(head)) if len(candidate) <= len(body) * _GZIP_MIN_SAVING else None


def with_took_ms(entry: CacheEntry, took_ms: float) -> CacheEntry:
    """`entry` stating `took_ms` (rounded to microseconds, as a computed page) instead of its computation's
    time, in its body and its gzip body; unchanged when its body states no time."""
    slot = entry.took
    if slot is None:
        return entry
    number = orjson.dumps(round(took_ms, 3))
    rest = number + entry.body[slot.end :]
    body = entry.body[: slot.start] + rest
    gzip_body = entry.gzip_body
    if gzip_body is not None:
        gzip_body = gzip_body[: slot.gzip_head] + _gzip_tail(rest, slot.head_crc, len(body))
    # Built directly, not with dataclasses.replace (a hit's hot path: that costs more than the splice).
    took = TookSlot(slot.start, slot.start + len(number), slot.gzip_head, slot.head_crc)
    return CacheEntry(
        entry.status,
        body,
        entry.content_type,
        entry.etag,
        entry.surrogate_keys,
        entry.soft_expires_at,
        entry.hard_expires_at,
        gzip_body,
        took,
    )


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
    took_span: tuple[int, int] | None = None,
) -> CacheEntry:
    """Build an entry (ETag, expiry times, gzip body when compression saves at least a tenth).

    `took_span`: where in `body` the took_ms number is (start, end), for a body that states its time."""
    compress = len(body) >= gzip_min_bytes
    if took_span is None:
        return CacheEntry(
            status=status,
            body=body,
            content_type=content_type,
            etag=etag_for(body),
            surrogate_keys=surrogate_keys,
            soft_expires_at=now + soft_ttl,
            hard_expires_at=now + max(hard_ttl, soft_ttl),
            gzip_body=gzipped(body) if compress else None,
        )
    start, end = took_span
    spliceable = _spliceable_gzip(body, start) if compress else None
    return CacheEntry(
        status=status,
        body=body,
        content_type=content_type,
        etag=etag_for(body[:start] + body[end:], weak=True),
        surrogate_keys=surrogate_keys,
        soft_expires_at=now + soft_ttl,
        hard_expires_at=now + max(hard_ttl, soft_ttl),
        gzip_body=spliceable[0] if spliceable is not None else None,
        took=TookSlot(
            start=start,
            end=end,
            gzip_head=spliceable[1] if spliceable is not None else 0,
            head_crc=zlib.crc32(body[:start]),
        ),
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
        | ({"tk": dataclasses.astuple(entry.took)} if entry.took is not None else {})
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
        took = header.get("tk")
        slot = TookSlot(*cast(list[int], took)) if took is not None else None
        if slot is not None and not (0 <= slot.start <= slot.end <= body_length):
            raise EntryCorrupt("took_ms slot outside the body")
        return CacheEntry(
            status=cast(int, header["s"]),
            body=body,
            content_type=cast(str, header["t"]),
            etag=cast(str, header["e"]),
            surrogate_keys=tuple(cast(list[str], header["k"])),
            soft_expires_at=float(cast(float, header["soft"])),
            hard_expires_at=float(cast(float, header["hard"])),
            gzip_body=gzip_body,
            took=slot,
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
