"""Pure HTTP caching: Cache-Control, ETag / If-None-Match, Vary, surrogate keys, gzip choice.

`render(served, ...)` decides status, headers and body of a cached route's response from a cache
entry and the request's conditional and encoding headers; the controller only wraps the result.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from src.cache.entries import gzipped
from src.cache.models import Served

GZIP_ETAG_SUFFIX = "-gzip"


@dataclass(frozen=True, slots=True)
class HttpCachePolicy:
    """Cache-Control values (from settings)."""

    max_age_seconds: int = 30
    s_maxage_seconds: int = 60
    stale_while_revalidate_seconds: int = 30
    stale_if_error_seconds: int = 300
    negative_max_age_seconds: int = 5
    compress_min_bytes: int | None = None
    """Gzip a body of at least this size when it is served, for a client that accepts gzip. Only when
    the cache keeps nothing (its entries then carry no gzip body): compressing at store time, once per
    entry, is better when entries are kept, and a client that does not accept gzip costs nothing."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a cached route sends."""

    status: int
    headers: dict[str, str]
    body: bytes


def cache_control(policy: HttpCachePolicy, status: int) -> str:
    """Shared-cache friendly directives; 404s get only a short max-age."""
    if status != 200:
        return f"public, max-age={policy.negative_max_age_seconds}"
    return (
        f"public, max-age={policy.max_age_seconds}, s-maxage={policy.s_maxage_seconds}, "
        f"stale-while-revalidate={policy.stale_while_revalidate_seconds}, "
        f"stale-if-error={policy.stale_if_error_seconds}"
    )


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip representation (a different representation needs another tag), weak when
    `etag` is."""
    return f'{etag[:-1]}{GZIP_ETAG_SUFFIX}"'


def if_none_match_matches(header: str | None, etags: tuple[str, ...]) -> bool:
    """RFC 9110 If-None-Match: `*` or any listed tag equal to ours under weak comparison (the opaque
    tags compared, whether either side is weak)."""
    if header is None:
        return False
    candidates = [part.strip() for part in header.split(",")]
    if "*" in candidates:
        return True
    ours = {etag.removeprefix("W/") for etag in etags}
    return any(candidate.removeprefix("W/") in ours for candidate in candidates)


@functools.lru_cache(maxsize=256)
def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether Accept-Encoding allows gzip (explicitly or by `*`) with a non-zero q-value (remembered
    per header value: clients send a handful of distinct values)."""
    if not accept_encoding:
        return False
    allowed: dict[str, bool] = {}
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        allowed[coding.strip().lower()] = q > 0
    return allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", False)))


def render(
    served: Served, *, if_none_match: str | None, accept_encoding: str | None, policy: HttpCachePolicy
) -> Rendered:
    """Status, headers and body for a cached entry (304 when the client already has it)."""
    entry = served.entry
    if (
        policy.compress_min_bytes is not None
        and entry.status == 200
        and entry.gzip_body is None
        and len(entry.body) >= policy.compress_min_bytes
        and accepts_gzip(accept_encoding)
    ):
        entry = dataclasses.replace(entry, gzip_body=gzipped(entry.body))
    use_gzip = entry.gzip_body is not None and accepts_gzip(accept_encoding)
    headers = {
        "cache-control": cache_control(policy, entry.status),
        "vary": "Accept-Encoding",
        "x-cache": served.x_cache,
        "surrogate-key": " ".join(entry.surrogate_keys),
        "cache-tag": ",".join(entry.surrogate_keys),
    }
    if entry.status != 200:
        return Rendered(status=entry.status, headers=headers | {"content-type": entry.content_type}, body=entry.body)
    etag = gzip_etag(entry.etag) if use_gzip else entry.etag
    headers["etag"] = etag
    if if_none_match_matches(if_none_match, (entry.etag, gzip_etag(entry.etag))):
        return Rendered(status=304, headers=headers, body=b"")
    headers["content-type"] = entry.content_type
    if use_gzip and entry.gzip_body is not None:
        headers["content-encoding"] = "gzip"
        return Rendered(status=200, headers=headers, body=entry.gzip_body)
    return Rendered(status=200, headers=headers, body=entry.body)
