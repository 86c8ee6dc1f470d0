"""Unit tests of src.api.http_cache: Cache-Control, ETags, If-None-Match, gzip choice and render."""

from __future__ import annotations

import gzip

import pytest

from src.api.http_cache import (
    GZIP_ETAG_SUFFIX,
    HttpCachePolicy,
    Rendered,
    accepts_gzip,
    cache_control,
    gzip_etag,
    if_none_match_matches,
    render,
)
from src.cache.entries import etag_for
from src.cache.models import CacheEntry, Served, XCache

POLICY = HttpCachePolicy()
OK_CACHE_CONTROL = "public, max-age=30, s-maxage=60, stale-while-revalidate=30, stale-if-error=300"
BODY = b'{"hits": [{"id": "a"}, {"id": "b"}]}'
ETAG = etag_for(BODY)
GZ_ETAG = ETAG[:-1] + '-gzip"'
GZ_BODY = gzip.compress(BODY, mtime=0)
NOT_FOUND_BODY = b'{"status": 404, "title": "Not Found"}'
NOT_FOUND_ETAG = etag_for(NOT_FOUND_BODY)


def _served(
    *, gzip_body: bytes | None = GZ_BODY, x_cache: XCache = "HIT", keys: tuple[str, ...] = ("a", "b", "g3")
) -> Served:
    entry = CacheEntry(
        status=200,
        body=BODY,
        content_type="application/json",
        etag=ETAG,
        surrogate_keys=keys,
        soft_expires_at=10.0,
        hard_expires_at=20.0,
        gzip_body=gzip_body,
    )
    return Served(entry, x_cache)


def _not_found(x_cache: XCache = "MISS") -> Served:
    entry = CacheEntry(
        status=404,
        body=NOT_FOUND_BODY,
        content_type="application/problem+json",
        etag=NOT_FOUND_ETAG,
        surrogate_keys=("missing-doc",),
        soft_expires_at=10.0,
        hard_expires_at=10.0,
        gzip_body=None,
    )
    return Served(entry, x_cache)


# --- cache_control / gzip_etag ----------------------------------------------------------------


def test_cache_control_200_default_policy() -> None:
    assert cache_control(POLICY, 200) == OK_CACHE_CONTROL


def test_cache_control_200_custom_policy() -> None:
    policy = HttpCachePolicy(
        max_age_seconds=1,
        s_maxage_seconds=2,
        stale_while_revalidate_seconds=3,
        stale_if_error_seconds=4,
        negative_max_age_seconds=5,
    )
    assert cache_control(policy, 200) == "public, max-age=1, s-maxage=2, stale-while-revalidate=3, stale-if-error=4"


def test_cache_control_404_short_max_age() -> None:
    assert cache_control(POLICY, 404) == "public, max-age=5"
    assert cache_control(HttpCachePolicy(negative_max_age_seconds=9), 404) == "public, max-age=9"


def test_gzip_etag_inside_the_quotes() -> None:
    assert gzip_etag('"abc"') == '"abc-gzip"'
    assert gzip_etag(ETAG) == GZ_ETAG
    assert GZIP_ETAG_SUFFIX == "-gzip"


# --- if_none_match_matches --------------------------------------------------------------------

TAGS = ('"abc"', '"abc-gzip"')


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ('"abc"', True),
        ("abc", False),
        ('"ab"', False),
        ('"xyz"', False),
        ('"xyz", "abc"', True),
        ('"xyz","abc"', True),
        ('  "xyz" ,   "abc"  ', True),
        ('"xyz", "uvw"', False),
        ('W/"abc"', True),
        ('"xyz", W/"abc"', True),
        ('w/"abc"', False),
        ("*", True),
        (" * ", True),
        ('"xyz", *', True),
        ('"abc-gzip"', True),
        ('W/"abc-gzip"', True),
    ],
)
def test_if_none_match_matches_cases(header: str | None, expected: bool) -> None:
    assert if_none_match_matches(header, TAGS) is expected


def test_if_none_match_matches_only_given_tags() -> None:
    assert if_none_match_matches('"abc-gzip"', ('"abc"',)) is False


# --- accepts_gzip -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("GZIP", True),
        ("Gzip;Q=1", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("gzip;q=0.001", True),
        ("gzip;q=1.0", True),
        ("deflate, gzip;q=0.5", True),
        ("gzip, deflate, br", True),
        ("br, deflate", False),
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.1", True),
        ("gzip;q=0, *", False),
        ("identity", False),
        ("gzip;q=abc", False),
        ("gzip;q=", False),
        ("x-gzip", True),
        ("x-gzip;q=0", False),
        ("gzip;level=1", True),
    ],
)
def test_accepts_gzip_cases(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


# --- render -----------------------------------------------------------------------------------


def test_render_200_identity() -> None:
    rendered = render(_served(), if_none_match=None, accept_encoding=None, policy=POLICY)
    assert rendered == Rendered(
        status=200,
        headers={
            "cache-control": OK_CACHE_CONTROL,
            "vary": "Accept-Encoding",
            "x-cache": "HIT",
            "surrogate-key": "a b g3",
            "cache-tag": "a,b,g3",
            "etag": ETAG,
            "content-type": "application/json",
        },
        body=BODY,
    )


def test_render_200_gzip_when_accepted() -> None:
    rendered = render(_served(x_cache="MISS"), if_none_match=None, accept_encoding="gzip, br", policy=POLICY)
    assert rendered == Rendered(
        status=200,
        headers={
            "cache-control": OK_CACHE_CONTROL,
            "vary": "Accept-Encoding",
            "x-cache": "MISS",
            "surrogate-key": "a b g3",
            "cache-tag": "a,b,g3",
            "etag": GZ_ETAG,
            "content-type": "application/json",
            "content-encoding": "gzip",
        },
        body=GZ_BODY,
    )
    assert gzip.decompress(rendered.body) == BODY


def test_render_200_identity_when_gzip_refused() -> None:
    rendered = render(_served(), if_none_match=None, accept_encoding="gzip;q=0", policy=POLICY)
    assert rendered.body == BODY
    assert rendered.headers["etag"] == ETAG
    assert "content-encoding" not in rendered.headers


def test_render_200_no_gzip_when_entry_has_none() -> None:
    rendered = render(_served(gzip_body=None), if_none_match=None, accept_encoding="gzip", policy=POLICY)
    assert rendered.status == 200
    assert rendered.body == BODY
    assert rendered.headers["etag"] == ETAG
    assert "content-encoding" not in rendered.headers


def test_render_when_nothing_is_stored_gzips_for_a_client_that_accepts_it() -> None:
    body = b'{"hits": [' + b'{"id": "same"}, ' * 200 + b"]}"
    entry = CacheEntry(
        status=200,
        body=body,
        content_type="application/json",
        etag=etag_for(body),
        surrogate_keys=(),
        soft_expires_at=10.0,
        hard_expires_at=20.0,
    )
    policy = HttpCachePolicy(compress_min_bytes=1024)
    zipped = render(Served(entry, "MISS"), if_none_match=None, accept_encoding="gzip", policy=policy)
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == body
    assert zipped.headers["etag"] == gzip_etag(entry.etag)
    plain = render(Served(entry, "MISS"), if_none_match=None, accept_encoding=None, policy=policy)
    assert plain.body == body
    assert "content-encoding" not in plain.headers
    small = HttpCachePolicy(compress_min_bytes=len(body) + 1)
    assert render(Served(entry, "MISS"), if_none_match=None, accept_encoding="gzip", policy=small).body == body


def test_render_304_on_matching_if_none_match() -> None:
    rendered = render(_served(x_cache="STALE"), if_none_match=ETAG, accept_encoding=None, policy=POLICY)
    assert rendered == Rendered(
        status=304,
        headers={
            "cache-control": OK_CACHE_CONTROL,
            "vary": "Accept-Encoding",
            "x-cache": "STALE",
            "surrogate-key": "a b g3",
            "cache-tag": "a,b,g3",
            "etag": ETAG,
        },
        body=b"",
    )


def test_render_304_gzip_tag_when_gzip_accepted() -> None:
    rendered = render(_served(), if_none_match=GZ_ETAG, accept_encoding="gzip", policy=POLICY)
    assert rendered.status == 304
    assert rendered.body == b""
    assert rendered.headers["etag"] == GZ_ETAG
    assert "content-encoding" not in rendered.headers
    assert "content-type" not in rendered.headers


def test_render_304_gzip_variant_tag_without_accepting_gzip() -> None:
    rendered = render(_served(), if_none_match=GZ_ETAG, accept_encoding="identity", policy=POLICY)
    assert rendered.status == 304
    assert rendered.body == b""
    assert rendered.headers["etag"] == ETAG
    assert rendered.headers["cache-control"] == OK_CACHE_CONTROL
    assert rendered.headers["vary"] == "Accept-Encoding"


def test_render_304_on_weak_and_listed_tags() -> None:
    header = f'"other", W/{ETAG}'
    rendered = render(_served(), if_none_match=header, accept_encoding=None, policy=POLICY)
    assert rendered.status == 304


def test_render_304_on_star() -> None:
    rendered = render(_served(), if_none_match="*", accept_encoding=None, policy=POLICY)
    assert rendered.status == 304


def test_render_200_on_stale_tag() -> None:
    rendered = render(_served(), if_none_match=etag_for(b"old body"), accept_encoding=None, policy=POLICY)
    assert rendered.status == 200
    assert rendered.body == BODY


def test_render_404_entry() -> None:
    served = _not_found()
    rendered = render(served, if_none_match=None, accept_encoding="gzip", policy=POLICY)
    assert rendered == Rendered(
        status=404,
        headers={
            "cache-control": "public, max-age=5",
            "vary": "Accept-Encoding",
            "x-cache": "MISS",
            "surrogate-key": "missing-doc",
            "cache-tag": "missing-doc",
            "content-type": "application/problem+json",
        },
        body=served.entry.body,
    )


@pytest.mark.parametrize("if_none_match", ["*", NOT_FOUND_ETAG, f"W/{NOT_FOUND_ETAG}"])
def test_render_404_even_when_if_none_match_matches(if_none_match: str) -> None:
    served = _not_found()
    rendered = render(served, if_none_match=if_none_match, accept_encoding=None, policy=POLICY)
    assert rendered.status == 404
    assert rendered.body == served.entry.body
    assert "etag" not in rendered.headers


def test_render_surrogate_key_and_cache_tag_separators() -> None:
    rendered = render(_served(keys=("doc-1", "doc-2", "g9")), if_none_match=None, accept_encoding=None, policy=POLICY)
    assert rendered.headers["surrogate-key"] == "doc-1 doc-2 g9"
    assert rendered.headers["cache-tag"] == "doc-1,doc-2,g9"


def test_render_empty_surrogate_keys() -> None:
    rendered = render(_served(keys=()), if_none_match=None, accept_encoding=None, policy=POLICY)
    assert rendered.headers["surrogate-key"] == ""
    assert rendered.headers["cache-tag"] == ""


def test_render_uses_policy() -> None:
    policy = HttpCachePolicy(max_age_seconds=7, negative_max_age_seconds=2)
    ok = render(_served(), if_none_match=None, accept_encoding=None, policy=policy)
    missing = render(_not_found(), if_none_match=None, accept_encoding=None, policy=policy)
    assert ok.headers["cache-control"].startswith("public, max-age=7, ")
    assert missing.headers["cache-control"] == "public, max-age=2"
