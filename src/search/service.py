"""The search service: validates a request against the schema, runs it on a backend, shapes the page.

Module-level async functions with keyword-only collaborators; the pure parts (parsing, cursors,
highlighting, fingerprints) live in their own modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

import orjson

from src.cache.aside import CacheAside, Computed
from src.cache.keys import GenerationalKey, document_key, schema_key, search_key, surrogate_keys
from src.cache.models import Served
from src.search.backends.base import BackendHit, BackendPage, SearchBackend
from src.search.cursor import CursorState, decode_cursor, encode_cursor
from src.search.documents import id_problem, project
from src.search.errors import InvalidParameter
from src.search.highlight import highlight
from src.search.models import Document, FacetBucket, QueryLimits, SearchHit, SearchPage
from src.search.plan import relaxations
from src.search.public_schema import MAX_PAGE_SIZE, public_schema
from src.search.query import (
    BackendQuery,
    Filter,
    FilterValue,
    ParsedQuery,
    RangeFilter,
    SortSpec,
    parse_facets,
    parse_filters,
    parse_q,
    parse_sort,
)
from src.search.ranking import tiers_for
from src.search.schema import IndexSchema
from src.search.suggest import suggestion


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """Limits and tuning of the search service (built from settings at start-up)."""

    cursor_secret: bytes
    """The key that signs new cursors."""
    cursor_verify_secrets: tuple[bytes, ...] = ()
    """Further keys that still verify cursors (rotation); the signing key always verifies."""
    default_size: int = 10
    one_edit_min_chars: int = 4
    two_edits_min_chars: int = 8
    max_query_chars: int = 512
    max_query_terms: int = 16
    max_filters: int = 20
    facet_size: int = 20
    track_total_up_to: int = 10_000
    fragment_chars: int = 160
    max_fragments: int = 3


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """The raw parameters of GET /v1/search."""

    q: str = ""
    filters: list[str] = field(default_factory=list)
    facets: str | None = None
    sort: str | None = None
    size: int | None = None
    """Hits per page; None means the configured default."""
    cursor: str | None = None
    highlight: bool = False
    ranking_score_details: bool = False


@dataclass(frozen=True, slots=True)
class PreparedSearch:
    """A validated request: what the backend runs plus what shaping the page needs."""

    backend_query: BackendQuery
    fingerprint: str
    size: int
    highlight: bool
    ranking_score_details: bool = False


def prepare_search(
    request: SearchRequest, *, schema: IndexSchema, options: SearchOptions, backend_kind: str
) -> PreparedSearch:
    """Validate every parameter (InvalidParameter names the first bad one) and build the backend query."""
    if len(request.q) > options.max_query_chars:
        raise InvalidParameter("q", f"at most {options.max_query_chars} characters are allowed")
    if len(request.filters) > options.max_filters:
        raise InvalidParameter("filter", f"at most {options.max_filters} filters are allowed")
    parsed = parse_q(
        request.q,
        one_edit_min_chars=options.one_edit_min_chars,
        two_edits_min_chars=options.two_edits_min_chars,
        max_terms=options.max_query_terms,
    )
    filters = parse_filters(request.filters, schema)
    facets = parse_facets(request.facets, schema)
    sort = parse_sort(request.sort, schema)
    if sort.field is None and parsed.is_match_all and schema.ranking is not None:
        # Relevance over match-all is a constant score: the custom ranking rule orders it, then the id.
        name, descending = schema.ranking
        sort = SortSpec(field=schema.field(name), descending=descending)
    size = request.size or options.default_size
    fingerprint = request_fingerprint(parsed, filters, sort, schema=schema, backend_kind=backend_kind)
    state = (
        decode_cursor(
            request.cursor,
            secret=(options.cursor_secret, *options.cursor_verify_secrets),
            fingerprint=fingerprint,
            sort_type=sort.field.type if sort.field else None,
            tie_types=_tie_types(schema) if sort.field is None else (),
        )
        if request.cursor
        else None
    )
    backend_query = BackendQuery(
        query=parsed,
        filters=filters,
        facets=facets,
        sort=sort,
        limit=size + 1,
        after=state.after if state else None,
        offset=state.offset if state else 0,
        facet_size=options.facet_size,
        track_total_up_to=options.track_total_up_to,
    )
    return PreparedSearch(
        backend_query=backend_query,
        fingerprint=fingerprint,
        size=size,
        highlight=request.highlight,
        ranking_score_details=request.ranking_score_details,
    )


def _tie_types(schema: IndexSchema) -> tuple[str, ...]:
    """The types of the custom ranking fields a relevance page's sort values carry after the score."""
    return tuple(spec.type for name, _ in schema.custom if (spec := schema.field(name)) is not None)


def request_fingerprint(
    parsed: ParsedQuery, filters: tuple[Filter, ...], sort: SortSpec, *, schema: IndexSchema, backend_kind: str
) -> str:
    """A stable hash of what decides a result list's order (not the page size nor the facets)."""
    canonical = {
        "backend": backend_kind,
        "schema": schema.fingerprint,
        "terms": [[t.text, t.edits, t.prefix] for t in parsed.terms],
        "truncated": list(parsed.truncated),
        "phrases": [list(p) for p in parsed.phrases],
        "not_terms": sorted(parsed.excluded_terms),
        "not_phrases": sorted(list(p) for p in parsed.excluded_phrases),
        "filters": sorted(_filter_key(item) for item in filters),
        "sort": [sort.field.name if sort.field else None, sort.descending],
    }
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _filter_key(item: Filter) -> str:
    if isinstance(item, RangeFilter):
        parts = [item.field.name, "range", _value_key(item.lower), _value_key(item.upper)]
        parts += [str(item.include_lower), str(item.include_upper)]
    else:
        parts = [item.field.name, "in", *sorted(_value_key(value) for value in item.values)]
    return orjson.dumps(parts).decode()


def _value_key(value: FilterValue | None) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


async def search_documents(
    request: SearchRequest, *, backend: SearchBackend, schema: IndexSchema, options: SearchOptions
) -> SearchPage:
    """Run GET /v1/search without the cache: validate, query the backend, page, highlight."""
    started = time.perf_counter()
    prepared = prepare_search(request, schema=schema, options=options, backend_kind=backend.kind)
    return await execute_search(prepared, backend=backend, schema=schema, options=options, started=started)


async def execute_search(
    prepared: PreparedSearch,
    *,
    backend: SearchBackend,
    schema: IndexSchema,
    options: SearchOptions,
    started: float | None = None,
) -> SearchPage:
    """Query the backend for a validated request and shape the page."""
    started = time.perf_counter() if started is None else started
    page, ignored = await _search_relaxing(prepared.backend_query, backend)
    shown = page.hits[: prepared.size]
    next_cursor = None
    if len(page.hits) > prepared.size and shown:
        state = CursorState(
            fingerprint=prepared.fingerprint,
            after=shown[-1].sort_values,
            offset=prepared.backend_query.offset + len(shown),
        )
        next_cursor = encode_cursor(state, secret=options.cursor_secret)
    query = prepared.backend_query.query
    hits = [_hit(hit, schema, query if prepared.highlight else None, options) for hit in shown]
    if prepared.ranking_score_details:
        _explain(hits, shown, prepared.backend_query, ignored, schema)
    facets: dict[str, list[FacetBucket]] = {
        name: [{"value": value, "count": count} for value, count in buckets] for name, buckets in page.facets.items()
    }
    return {
        "hits": hits,
        "total": {"value": page.total, "exact": page.total_exact},
        "facets": facets,
        "next_cursor": next_cursor,
        "ignored_words": [*ignored, *query.truncated],  # in query order: relaxed away, then past the limit
        "suggestion": suggestion(query, shown[0].document if shown else None, schema),
        "took_ms": round((time.perf_counter() - started) * 1000, 3),
    }


async def _search_relaxing(query: BackendQuery, backend: SearchBackend) -> tuple[BackendPage, tuple[str, ...]]:
    """The page of `query`; when it matches nothing, the page of the first relaxation that matches
    something (words dropped from the end), with the words it ignored.

    Deterministic for a given index: a cursor's next page relaxes the same way, so paging stays consistent.
    """
    page = await backend.search(query)
    if page.total or len(query.query.terms) < 2:
        return page, ()
    for relaxed, ignored in relaxations(query.query):
        candidate = await backend.search(dataclasses.replace(query, query=relaxed))
        if candidate.total:
            return candidate, ignored
    return page, ()


def _explain(
    hits: list[SearchHit],
    shown: tuple[BackendHit, ...],
    query: BackendQuery,
    ignored: tuple[str, ...],
    schema: IndexSchema,
) -> None:
    """Add each hit's ranking rule values (decoded from its score: see src/search/ranking.py)."""
    clauses = len(query.query.terms) - len(ignored) + len(query.query.phrases)
    tiers = tiers_for(schema, clauses)
    relevance = query.sort.field is None
    for hit, found in zip(hits, shown, strict=True):
        custom = tuple(found.sort_values[1:-1]) if relevance else ()
        hit["ranking_score_details"] = tiers.explain(found.score if relevance else None, custom)


def canonical_request(prepared: PreparedSearch, cursor: str | None) -> bytes:
    """Everything that shapes a search response, canonicalised: equal requests give equal bytes.

    The fingerprint already holds the normalised query, sorted filters and the sort; parameter order,
    repeated filters and the case or spacing of `q` therefore make no new key.
    """
    query = prepared.backend_query
    return orjson.dumps(
        {
            "fingerprint": prepared.fingerprint,
            "size": prepared.size,
            "facets": sorted(spec.name for spec in query.facets),
            "highlight": prepared.highlight,
            "details": prepared.ranking_score_details,
            "cursor": cursor or "",
        },
        option=orjson.OPT_SORT_KEYS,
    )


def search_cache_key(
    prepared: PreparedSearch, cursor: str | None, *, schema: IndexSchema, namespace: str
) -> GenerationalKey:
    """The cache key of a validated search request (the fast hit path computes the very same)."""
    return search_key(namespace, schema.fingerprint, canonical_request(prepared, cursor))


async def search_cached(
    request: SearchRequest,
    *,
    backend: SearchBackend,
    schema: IndexSchema,
    options: SearchOptions,
    aside: CacheAside,
) -> Served:
    """GET /v1/search through the cache: bad input fails before any cache work, hits skip the backend."""
    prepared = prepare_search(request, schema=schema, options=options, backend_kind=backend.kind)
    key = search_cache_key(prepared, request.cursor, schema=schema, namespace=aside.policy.namespace)

    async def compute(generation: int | None) -> Computed:
        page = await execute_search(prepared, backend=backend, schema=schema, options=options)
        ids = [hit["id"] for hit in page["hits"]]
        body, took_span = encode_page(page)
        return Computed(200, body, "application/json", surrogate_keys(ids, generation), took_span)

    return await aside.fetch_generational(key, compute, route="search")


def encode_page(page: SearchPage) -> tuple[bytes, tuple[int, int]]:
    """The page's JSON with `took_ms` its last member, and where that number is (start, end): a cache hit
    states its own time there (src/cache/entries.py)."""
    rest = orjson.dumps({name: value for name, value in page.items() if name != "took_ms"})
    number = orjson.dumps(page["took_ms"])
    head = rest[:-1] + (b',"took_ms":' if len(rest) > 2 else b'"took_ms":')
    return head + number + b"}", (len(head), len(head) + len(number))


async def document_cached(doc_id: str, *, backend: SearchBackend, schema: IndexSchema, aside: CacheAside) -> Served:
    """GET /v1/documents/{id} through the cache; a 404 is cached briefly (negative caching)."""
    key = document_key(aside.policy.namespace, schema.fingerprint, doc_id)

    async def compute(generation: int | None) -> Computed:
        found = await get_document(doc_id, backend=backend, schema=schema)
        keys = surrogate_keys([doc_id], None)
        if found is None:
            problem = {
                "type": "/problems/not-found",
                "title": "Not Found",
                "status": 404,
                "detail": f"no document with id {doc_id!r}",
                "instance": f"/v1/documents/{quote(doc_id, safe='')}",
            }
            return Computed(404, orjson.dumps(problem), "application/problem+json", keys)
        return Computed(200, orjson.dumps(found), "application/json", keys)

    return await aside.fetch(key, compute, route="document")


def query_limits(options: SearchOptions) -> QueryLimits:
    """The request limits GET /v1/schema reports, from the service's options."""
    return {
        "max_query_chars": options.max_query_chars,
        "max_query_terms": options.max_query_terms,
        "max_filters": options.max_filters,
        "default_size": options.default_size,
        "max_size": MAX_PAGE_SIZE,
        "one_edit_min_chars": options.one_edit_min_chars,
        "two_edits_min_chars": options.two_edits_min_chars,
    }


SCHEMA_SURROGATE_KEY = "schema"


async def schema_cached(*, schema: IndexSchema, options: SearchOptions, aside: CacheAside) -> Served:
    """GET /v1/schema through the cache like every GET (ETag, Cache-Control, X-Cache); no engine call."""
    limits = query_limits(options)
    key = schema_key(aside.policy.namespace, schema.fingerprint, orjson.dumps(limits, option=orjson.OPT_SORT_KEYS))

    async def compute(generation: int | None) -> Computed:
        body = orjson.dumps(public_schema(schema, limits))
        return Computed(200, body, "application/json", (SCHEMA_SURROGATE_KEY,))

    return await aside.fetch(key, compute, route="schema")


def _hit(hit: BackendHit, schema: IndexSchema, query: ParsedQuery | None, options: SearchOptions) -> SearchHit:
    document = project(hit.document, schema)
    highlights: dict[str, list[str]] = {}
    if query is not None and not query.is_match_all:
        for spec in schema.searchable:
            value = document.get(spec.name)
            texts = value if isinstance(value, list) else [value]
            fragments = [
                fragment
                for text in texts
                if isinstance(text, str)
                for fragment in highlight(
                    text, query, fragment_chars=options.fragment_chars, max_fragments=options.max_fragments
                )
            ][: options.max_fragments]
            if fragments:
                highlights[spec.name] = fragments
    return {"id": hit.id, "score": hit.score, "document": document, "highlights": highlights}


async def get_document(doc_id: str, *, backend: SearchBackend, schema: IndexSchema) -> Document | None:
    """Run GET /v1/documents/{id}: the stored document limited to returned fields, or None.

    An id no document can have (see `id_problem`) is not sent to the backend at all.
    """
    if id_problem(doc_id) is not None:
        return None
    found = await backend.get(doc_id)
    return None if found is None else project(found, schema)
