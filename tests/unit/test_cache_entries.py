"""Unit tests of src.cache.entries: ETags, TTL jitter, entry building, the stored form, freshness."""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from dataclasses import replace

import orjson
import pytest

from src.cache.entries import (
    EntryCorrupt,
    decode_entry,
    encode_entry,
    etag_for,
    freshness,
    jittered,
    make_entry,
    with_took_ms,
)
from src.cache.models import CacheEntry

COMPRESSIBLE = b'{"hits": [' + b'{"id": "doc", "title": "nginx reverse proxy"},' * 40 + b"]}"
# Hash output looks random to gzip: compressing it never saves a tenth.
INCOMPRESSIBLE = b"".join(hashlib.sha256(str(i).encode()).digest() for i in range(64))
HEADER_KEYS = ("s", "t", "e", "k", "soft", "hard", "b", "z")


def _entry(**overrides: object) -> CacheEntry:
    values: dict[str, object] = {
        "status": 200,
        "body": b'{"hits": []}',
        "content_type": "application/json",
        "etag": '"0123456789abcdef0123456789abcdef"',
        "surrogate_keys": ("doc-1", "g7"),
        "soft_expires_at": 1_000.5,
        "hard_expires_at": 1_300.25,
        "gzip_body": None,
    }
    values.update(overrides)
    return CacheEntry(**values)  # type: ignore[arg-type]


def _make(body: bytes, *, gzip_min_bytes: int = 0, now: float = 0.0) -> CacheEntry:
    return make_entry(
        status=200,
        body=body,
        content_type="application/json",
        surrogate_keys=(),
        now=now,
        soft_ttl=30.0,
        hard_ttl=300.0,
        gzip_min_bytes=gzip_min_bytes,
    )


def _raw(header: bytes, tail: bytes = b"", *, header_length: int | None = None) -> bytes:
    """Stored bytes with an arbitrary header (and, optionally, a lying header length)."""
    length = len(header) if header_length is None else header_length
    return b"SE1" + struct.pack(">I", length) + header + tail


def _header(**overrides: object) -> dict[str, object]:
    header: dict[str, object] = {
        "s": 200,
        "t": "application/json",
        "e": '"x"',
        "k": ["a"],
        "soft": 1.0,
        "hard": 2.0,
        "b": 2,
        "z": -1,
    }
    header.update(overrides)
    return header


# --- etag_for ---------------------------------------------------------------------------------


def test_etag_for_known_value_of_empty_object() -> None:
    # A fixed value: ETags must not change between releases or processes, or every CDN copy revalidates.
    assert etag_for(b"{}") == '"2afb9b83f9314e5d029766197f539792"'


def test_etag_for_is_a_quoted_strong_tag() -> None:
    tag = etag_for(b"body")
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert not tag.startswith("W/")
    assert len(tag) == 34
    assert all(char in "0123456789abcdef" for char in tag[1:-1])


def test_etag_for_same_bytes_same_tag_across_calls() -> None:
    first = etag_for(b'{"a": 1}')
    second = etag_for(bytes(bytearray(b'{"a": 1}')))
    assert first == second


def test_etag_for_different_bytes_different_tag() -> None:
    tags = {etag_for(b"{}"), etag_for(b"{ }"), etag_for(b""), etag_for(b"{}\n")}
    assert len(tags) == 4


def test_etag_for_empty_body() -> None:
    assert etag_for(b"") == '"cae66941d9efbd404e4d88758ea67670"'


# --- jittered ---------------------------------------------------------------------------------


def test_jittered_draw_zero_is_unchanged() -> None:
    assert jittered(100.0, jitter=0.1, draw=0.0) == 100.0


def test_jittered_draw_near_one_shortens_by_the_jitter_fraction() -> None:
    assert jittered(100.0, jitter=0.1, draw=0.999999) == pytest.approx(90.00001, abs=1e-9)


def test_jittered_draw_half_shortens_by_half_the_fraction() -> None:
    assert jittered(100.0, jitter=0.2, draw=0.5) == pytest.approx(90.0, abs=1e-9)


def test_jittered_zero_jitter_is_unchanged() -> None:
    assert jittered(42.0, jitter=0.0, draw=0.9) == 42.0


# --- make_entry -------------------------------------------------------------------------------


def test_make_entry_copies_fields_and_tags_the_body() -> None:
    entry = make_entry(
        status=404,
        body=b'{"title": "Not Found"}',
        content_type="application/problem+json",
        surrogate_keys=("doc-9",),
        now=50.0,
        soft_ttl=5.0,
        hard_ttl=5.0,
        gzip_min_bytes=1024,
    )
    assert entry == CacheEntry(
        status=404,
        body=b'{"title": "Not Found"}',
        content_type="application/problem+json",
        etag=etag_for(b'{"title": "Not Found"}'),
        surrogate_keys=("doc-9",),
        soft_expires_at=55.0,
        hard_expires_at=55.0,
        gzip_body=None,
    )


def test_make_entry_expiry_times_from_now() -> None:
    entry = make_entry(
        status=200,
        body=b"{}",
        content_type="application/json",
        surrogate_keys=(),
        now=1_000.0,
        soft_ttl=30.0,
        hard_ttl=300.0,
        gzip_min_bytes=1024,
    )
    assert entry.soft_expires_at == 1_030.0
    assert entry.hard_expires_at == 1_300.0


def test_make_entry_hard_never_below_soft() -> None:
    entry = make_entry(
        status=200,
        body=b"{}",
        content_type="application/json",
        surrogate_keys=(),
        now=1_000.0,
        soft_ttl=60.0,
        hard_ttl=10.0,
        gzip_min_bytes=1024,
    )
    assert entry.soft_expires_at == 1_060.0
    assert entry.hard_expires_at == 1_060.0


def test_make_entry_gzip_when_large_and_compressible() -> None:
    entry = _make(COMPRESSIBLE, gzip_min_bytes=len(COMPRESSIBLE))
    assert entry.gzip_body is not None
    assert len(entry.gzip_body) < len(COMPRESSIBLE) * 0.9
    assert gzip.decompress(entry.gzip_body) == COMPRESSIBLE


def test_make_entry_no_gzip_below_min_bytes() -> None:
    entry = _make(COMPRESSIBLE, gzip_min_bytes=len(COMPRESSIBLE) + 1)
    assert entry.gzip_body is None


def test_make_entry_no_gzip_when_incompressible() -> None:
    assert len(gzip.compress(INCOMPRESSIBLE, compresslevel=6, mtime=0)) > len(INCOMPRESSIBLE) * 0.9
    entry = _make(INCOMPRESSIBLE, gzip_min_bytes=0)
    assert entry.gzip_body is None


def test_make_entry_gzip_when_saving_exactly_a_tenth() -> None:
    body = bytes(range(5)) + b"a" * 25
    assert len(gzip.compress(body, compresslevel=6, mtime=0)) == 27  # exactly 90% of 30
    entry = _make(body)
    assert entry.gzip_body == gzip.compress(body, compresslevel=6, mtime=0)


def test_make_entry_no_gzip_when_saving_just_under_a_tenth() -> None:
    body = bytes(range(6)) + b"a" * 24
    assert len(gzip.compress(body, compresslevel=6, mtime=0)) == 28  # 93% of 30
    entry = _make(body)
    assert entry.gzip_body is None


def test_make_entry_gzip_is_byte_for_byte_deterministic() -> None:
    first = _make(COMPRESSIBLE, now=0.0)
    second = _make(COMPRESSIBLE, now=1_700_000_000.0)
    assert first.gzip_body is not None
    assert first.gzip_body == second.gzip_body
    assert first.gzip_body == gzip.compress(COMPRESSIBLE, compresslevel=6, mtime=0)
    assert first.gzip_body[4:8] == b"\x00\x00\x00\x00"  # MTIME field of the gzip header
    assert gzip.decompress(first.gzip_body) == COMPRESSIBLE


# --- encode_entry / decode_entry --------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(_entry(), id="identity"),
        pytest.param(_make(COMPRESSIBLE), id="gzip"),
        pytest.param(
            _entry(status=404, body=b'{"status": 404}', content_type="application/problem+json", surrogate_keys=()),
            id="404",
        ),
        pytest.param(_entry(body=b"", gzip_body=None), id="empty-body"),
        pytest.param(_entry(body=b"", gzip_body=b""), id="empty-body-empty-gzip"),
        pytest.param(_entry(surrogate_keys=("café", "日本語", "emoji-🎉", "a b")), id="non-ascii-keys"),
    ],
)
def test_encode_entry_decode_entry_round_trip(entry: CacheEntry) -> None:
    raw = encode_entry(entry)
    assert raw.startswith(b"SE1")
    assert decode_entry(raw) == entry


def test_encode_entry_layout() -> None:
    entry = _entry(body=b"BODY", gzip_body=b"GZ")
    raw = encode_entry(entry)
    (header_length,) = struct.unpack_from(">I", raw, 3)
    header = orjson.loads(raw[7 : 7 + header_length])
    assert header == {
        "s": 200,
        "t": "application/json",
        "e": '"0123456789abcdef0123456789abcdef"',
        "k": ["doc-1", "g7"],
        "soft": 1_000.5,
        "hard": 1_300.25,
        "b": 4,
        "z": 2,
    }
    assert raw[7 + header_length :] == b"BODYGZ"


def test_decode_entry_keeps_gzip_none_apart_from_empty_gzip() -> None:
    assert decode_entry(encode_entry(_entry(gzip_body=None))).gzip_body is None
    assert decode_entry(encode_entry(_entry(gzip_body=b""))).gzip_body == b""


def test_decode_entry_times_are_floats() -> None:
    decoded = decode_entry(encode_entry(_entry(soft_expires_at=10, hard_expires_at=20)))
    assert type(decoded.soft_expires_at) is float
    assert type(decoded.hard_expires_at) is float
    assert decoded.soft_expires_at == 10.0
    assert decoded.hard_expires_at == 20.0


_VALID_PLAIN = encode_entry(_entry(body=b"0123456789"))
_VALID_GZIP = encode_entry(_entry(body=b"0123456789", gzip_body=b"GZIPBYTES"))
_PLAIN_HEADER_LENGTH = struct.unpack_from(">I", _VALID_PLAIN, 3)[0]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"xyz", id="xyz"),
        pytest.param(b"SE1", id="magic-only"),
        pytest.param(b"SE1\x00\x00\x00", id="short-length"),
        pytest.param(b"SE2" + _VALID_PLAIN[3:], id="wrong-magic"),
        pytest.param(b"se1" + _VALID_PLAIN[3:], id="lowercase-magic"),
        pytest.param(_VALID_PLAIN[1:], id="shifted"),
        pytest.param(_VALID_PLAIN[:-1], id="truncated-body"),
        pytest.param(_VALID_PLAIN[: 7 + _PLAIN_HEADER_LENGTH], id="body-missing"),
        pytest.param(_VALID_PLAIN[: 7 + _PLAIN_HEADER_LENGTH - 1], id="truncated-header"),
        pytest.param(_VALID_GZIP[:-1], id="truncated-gzip"),
        pytest.param(_VALID_GZIP[:-9], id="gzip-missing"),
        pytest.param(_VALID_GZIP + b"X", id="gzip-too-long"),
        pytest.param(_raw(b"", b"ab"), id="header-empty"),
        pytest.param(_raw(b"not json", b"ab"), id="header-not-json"),
        pytest.param(_raw(b"\xff\xfe{}", b"ab"), id="header-not-utf8"),
        pytest.param(_raw(b"[1, 2]", b"ab"), id="header-list"),
        pytest.param(_raw(b'"text"', b"ab"), id="header-string"),
        pytest.param(_raw(b"null", b"ab"), id="header-null"),
        pytest.param(_raw(b"{}", b"ab"), id="header-empty-object"),
        pytest.param(_raw(orjson.dumps(_header(b="2")), b"ab"), id="body-length-string"),
        pytest.param(_raw(orjson.dumps(_header(b=2.0)), b"ab"), id="body-length-float"),
        pytest.param(_raw(orjson.dumps(_header(b=-1)), b"ab"), id="body-length-negative"),
        pytest.param(_raw(orjson.dumps(_header(z="1")), b"ab"), id="gzip-length-string"),
        pytest.param(_raw(orjson.dumps(_header(soft="soon")), b"ab"), id="soft-not-a-number"),
        pytest.param(_raw(orjson.dumps(_header(k=None)), b"ab"), id="keys-null"),
        pytest.param(
            _VALID_PLAIN[:3] + struct.pack(">I", _PLAIN_HEADER_LENGTH + 100) + _VALID_PLAIN[7:],
            id="header-length-past-end",
        ),
        pytest.param(
            _VALID_PLAIN[:3] + struct.pack(">I", _PLAIN_HEADER_LENGTH - 1) + _VALID_PLAIN[7:],
            id="header-length-short",
        ),
        pytest.param(_VALID_PLAIN[:3] + struct.pack(">I", 0xFFFFFFFF) + _VALID_PLAIN[7:], id="header-length-max"),
    ],
)
def test_decode_entry_garbage_is_corrupt(raw: bytes) -> None:
    with pytest.raises(EntryCorrupt):
        decode_entry(raw)


@pytest.mark.parametrize("missing", HEADER_KEYS)
def test_decode_entry_header_missing_key_is_corrupt(missing: str) -> None:
    header = _header()
    del header[missing]
    with pytest.raises(EntryCorrupt):
        decode_entry(_raw(orjson.dumps(header), b"ab"))


def test_decode_entry_hand_built_header_is_read() -> None:
    assert decode_entry(_raw(orjson.dumps(_header()), b"ab")) == CacheEntry(
        status=200,
        body=b"ab",
        content_type="application/json",
        etag='"x"',
        surrogate_keys=("a",),
        soft_expires_at=1.0,
        hard_expires_at=2.0,
        gzip_body=None,
    )


def test_entry_corrupt_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a cache entry"):
        decode_entry(b"xyz")


def test_decode_entry_header_length_past_end_with_empty_body_is_corrupt() -> None:
    # Regression: with b=0 and z=-1 the short slice raw[7:start] still held the whole header and parsed.
    raw = encode_entry(_entry(body=b"", gzip_body=None))
    (header_length,) = struct.unpack_from(">I", raw, 3)
    lying = raw[:3] + struct.pack(">I", header_length + 100) + raw[7:]
    with pytest.raises(EntryCorrupt):
        decode_entry(lying)


# --- freshness --------------------------------------------------------------------------------

_TIMED = _entry(soft_expires_at=100.0, hard_expires_at=200.0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (0.0, "fresh"),
        (99.999, "fresh"),
        (100.0, "stale"),
        (150.0, "stale"),
        (199.999, "stale"),
        (200.0, "expired"),
        (1e9, "expired"),
    ],
)
def test_freshness_boundaries(now: float, expected: str) -> None:
    assert freshness(_TIMED, now) == expected


def test_freshness_soft_equal_to_hard_goes_straight_to_expired() -> None:
    entry = replace(_TIMED, hard_expires_at=100.0)
    assert freshness(entry, 99.0) == "fresh"
    assert freshness(entry, 100.0) == "expired"


# --- with_took_ms: a hit states its own time ---------------------------------------------------


def _page(took: bytes, head: bytes = COMPRESSIBLE[:-1]) -> tuple[bytes, tuple[int, int]]:
    """A body whose last member states `took` (as the service encodes a page), and where the number is."""
    start = len(head) + len(b',"took_ms":')
    return head + b',"took_ms":' + took + b"}", (start, start + len(took))


def _timed(took: bytes = b"123.456", *, gzip_min_bytes: int = 0, head: bytes = COMPRESSIBLE[:-1]) -> CacheEntry:
    body, span = _page(took, head)
    return make_entry(
        status=200,
        body=body,
        content_type="application/json",
        surrogate_keys=(),
        now=0.0,
        soft_ttl=30.0,
        hard_ttl=300.0,
        gzip_min_bytes=gzip_min_bytes,
        took_span=span,
    )


def _one_gzip_member(data: bytes) -> bytes:
    """Decode as clients that read one gzip member only do (httpx, zlib's own gunzip): nothing may follow."""
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
    decoded = decoder.decompress(data)
    assert decoder.eof
    assert decoder.unused_data == b""
    return decoded


def test_with_took_ms_when_hit_states_its_own_time_in_both_bodies() -> None:
    entry = _timed(b"123.456")
    hit = with_took_ms(entry, 0.04213)
    assert hit.body == _page(b"0.042")[0]
    assert hit.gzip_body is not None
    assert _one_gzip_member(hit.gzip_body) == hit.body
    assert gzip.decompress(hit.gzip_body) == hit.body
    assert (hit.etag, hit.surrogate_keys) == (entry.etag, entry.surrogate_keys)


def test_with_took_ms_when_spliced_again_replaces_the_new_number() -> None:
    once = with_took_ms(_timed(b"1.5"), 12345678.25)
    twice = with_took_ms(once, 7.0)
    assert twice.body == _page(b"7.0")[0]
    assert twice.gzip_body is not None
    assert _one_gzip_member(twice.gzip_body) == twice.body
    assert twice.took is not None
    assert twice.body[twice.took.start : twice.took.end] == b"7.0"


def test_with_took_ms_when_entry_states_no_time_returns_it_unchanged() -> None:
    entry = _make(COMPRESSIBLE)
    assert with_took_ms(entry, 1.0) is entry


def test_with_took_ms_when_entry_has_no_gzip_body_splices_the_body_only() -> None:
    entry = _timed(gzip_min_bytes=10**6)
    assert entry.gzip_body is None
    assert entry.took is not None
    assert entry.took.gzip_head == 0
    hit = with_took_ms(entry, 2.0)
    assert (hit.body, hit.gzip_body) == (_page(b"2.0")[0], None)


def test_with_took_ms_when_the_rest_passes_one_stored_block_splits_it() -> None:
    # A stored deflate block holds at most 65535 bytes: the rest after the number spans two.
    head = b'{"pad":"' + b"a" * 200_000 + b'"'
    body = head + b',"took_ms":' + b"1.0" + b',"tail":"' + b"z" * 70_000 + b'"}'
    start = len(head) + len(b',"took_ms":')
    entry = make_entry(
        status=200,
        body=body,
        content_type="application/json",
        surrogate_keys=(),
        now=0.0,
        soft_ttl=30.0,
        hard_ttl=300.0,
        gzip_min_bytes=0,
        took_span=(start, start + 3),
    )
    hit = with_took_ms(entry, 3.25)
    assert hit.body == body.replace(b'"took_ms":1.0', b'"took_ms":3.25')
    assert hit.gzip_body is not None
    assert _one_gzip_member(hit.gzip_body) == hit.body


def test_make_entry_when_body_states_took_ms_tags_it_weak_without_the_number() -> None:
    slow, fast = _timed(b"250.5"), _timed(b"0.1")
    assert slow.etag == fast.etag == etag_for(COMPRESSIBLE[:-1] + b',"took_ms":}', weak=True)
    assert slow.etag.startswith('W/"')
    assert slow.gzip_body is not None
    assert _one_gzip_member(slow.gzip_body) == slow.body


def test_make_entry_when_body_states_took_ms_but_is_incompressible_keeps_no_gzip() -> None:
    entry = _timed(head=b'{"h":"' + INCOMPRESSIBLE + b'"')
    assert entry.gzip_body is None
    assert entry.took is not None


def test_encode_entry_when_it_states_took_ms_round_trips_the_slot() -> None:
    entry = with_took_ms(_timed(), 9.5)
    assert decode_entry(encode_entry(entry)) == entry


def test_decode_entry_when_took_slot_is_outside_the_body_is_corrupt() -> None:
    with pytest.raises(EntryCorrupt, match="took_ms slot"):
        decode_entry(_raw(orjson.dumps(_header(tk=[1, 5, 0, 0])), b"ab"))


def test_decode_entry_when_took_slot_is_malformed_is_corrupt() -> None:
    with pytest.raises(EntryCorrupt):
        decode_entry(_raw(orjson.dumps(_header(tk=[1])), b"ab"))


def test_make_entry_when_body_states_took_ms_points_the_slot_at_the_number() -> None:
    entry = _timed(b"123.456")
    assert entry.took is not None
    assert entry.body[entry.took.start : entry.took.end] == b"123.456"
    assert entry.took.head_crc == zlib.crc32(entry.body[: entry.took.start])
