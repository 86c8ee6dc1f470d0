"""A fast path for the two cached GET routes, in front of FastAPI's routing.

A hit should cost about one Redis round trip, as a bare endpoint doing one GET does; FastAPI's
parameter solving alone costs more than that. So this ASGI middleware recognises GET /v1/search and
GET /v1/documents/{id}, derives the cache key exactly as the routes do (the query string's parse and
validation are pure and memoised per raw query string), and answers a fresh hit with the stored bytes.

A search it fully understands that is not a fresh hit (a miss, a stale entry, the cache off) it also
serves itself, through the very service call the route makes (`service.search_cached`: cache-aside,
single flight, admission, stale-if-error); routing, dependency solving and the route's own wrapping
cost about a fifth of an uncached typo search on the embedded engine. Errors become the same problem
responses, from the app's own exception handlers; an unexpected one propagates as from the route.
Everything else (a document miss, a request the routes would reject before the service or that this
parser does not fully understand) falls through to the routes, which do the whole job.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl, unquote

from loguru import logger
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.deps import Services
from src.api.http_cache import accepts_gzip, render
from src.cache.keys import GenerationalKey, document_key
from src.cache.models import CacheEntry, Served
from src.observability.middleware import ROUTE_KEY
from src.search.documents import id_problem
from src.search.errors import SearchError
from src.search.public_schema import MAX_PAGE_SIZE
from src.search.service import SearchRequest, prepare_search, search_cache_key, search_cached

_SIZE = re.compile(r"^[0-9]{1,3}$")
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_DOCUMENTS_PREFIX = "/v1/documents/"
_MEMO_ENTRIES = 4096
_SEARCH_PATH = "/v1/search"
_RESPONSE_ENTRIES = 64
_LOOKED_UP = "search_api.fast_hit_looked_up"
"""Scope key: an instance nearer the client already looked this GET up and left it to the routes."""


def parse_search_query(query_string: str) -> SearchRequest | None:
    """The SearchRequest the route would build from this query string, or None when unsure (pure).

    Mirrors FastAPI's binding: a repeated scalar parameter takes its last value, `filter` collects all;
    any value FastAPI would have to coerce or reject (size outside 1-100, other boolean spellings)
    gives None, so the route decides.
    """
    scalars: dict[str, str] = {}
    filters: list[str] = []
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    for name, value in pairs:
        if name == "filter":
            filters.append(value)
        else:
            scalars[name] = value
    size = scalars.get("size")
    if size is not None and (not _SIZE.match(size) or not 1 <= int(size) <= MAX_PAGE_SIZE):
        return None
    highlight = scalars.get("highlight", "false").lower()
    details = scalars.get("ranking_score_details", "false").lower()
    if highlight not in _BOOLEANS or details not in _BOOLEANS:
        return None
    return SearchRequest(
        q=scalars.get("q", ""),
        filters=filters,
        facets=scalars.get("facets"),
        sort=scalars.get("sort"),
        size=int(size) if size is not None else None,
        cursor=scalars.get("cursor"),
        highlight=_BOOLEANS[highlight],
        ranking_score_details=_BOOLEANS[details],
    )


class FastHitMiddleware:
    """ASGI middleware answering fresh cache hits of the two cached GET routes directly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._search_keys: OrderedDict[str, tuple[GenerationalKey | None, SearchRequest | None]] = OrderedDict()
        """Per raw query string: its cache key (None when the route must answer) and its parsed request."""
        self._responses: OrderedDict[
            tuple[int, str, bool], tuple[CacheEntry, int, tuple[tuple[bytes, bytes], ...], bytes]
        ] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and _LOOKED_UP not in scope:
            services: Services | None = getattr(scope["app"].state, "services", None)
            if services is not None and scope["path"] == _SEARCH_PATH:
                if await self._search(scope, receive, send, services):
                    return
            elif services is not None and services.aside.cache.kind != "none":  # off: nothing can be a hit
                served = await _peek(self._document_hit(scope, services), scope)
                if served is not None:
                    scope[ROUTE_KEY] = "/v1/documents/{doc_id}"
                    await self._respond(scope, send, served, services)
                    return
            scope[_LOOKED_UP] = True  # a second instance further in (HEAD, CORS) does not look again
        await self.app(scope, receive, send)

    async def _search(self, scope: Scope, receive: Receive, send: Send, services: Services) -> bool:
        """Answer GET /v1/search unless the route must (False): a fresh hit, or the service's answer."""
        query_string = scope["query_string"].decode("latin-1")
        cache_on = services.aside.cache.kind != "none"  # off: nothing can be a hit, no key is worth computing
        key = self._search_key(query_string, services) if cache_on else None
        if cache_on and key is None:
            return False  # not understood, or invalid: the route answers (its 422 names the parameter)
        request = parse_search_query(query_string) if key is None else self._search_keys[query_string][1]
        if request is None:
            return False
        scope[ROUTE_KEY] = _SEARCH_PATH
        served = await _peek(services.aside.peek_fresh(key, route="search"), scope) if key is not None else None
        if served is None:
            try:
                served = await search_cached(
                    request,
                    backend=services.backend,
                    schema=services.schema,
                    options=services.options,
                    aside=services.aside,
                )
            except Exception as err:
                handler = _exception_handler(scope, err)
                response = await (handler or _last_resort(scope))(Request(scope, receive), err)
                await response(scope, receive, send)
                if handler is None:
                    raise  # answered as Starlette's error middleware answers, and re-raised as it does
                return True
        await self._respond(scope, send, served, services)
        return True

    async def _document_hit(self, scope: Scope, services: Services) -> Served | None:
        path: str = scope["path"]
        if path.startswith(_DOCUMENTS_PREFIX):
            doc_id = unquote(path[len(_DOCUMENTS_PREFIX) :])
            if "/" in doc_id or id_problem(doc_id) is not None:
                return None  # the route answers (422, or 404 for an id no document can have)
            doc_key = document_key(services.aside.policy.namespace, services.schema.fingerprint, doc_id)
            return await services.aside.peek_fresh(doc_key, route="document")
        return None

    def _search_key(self, query_string: str, services: Services) -> GenerationalKey | None:
        memo = self._search_keys
        if query_string in memo:
            memo.move_to_end(query_string)
            return memo[query_string][0]
        key = None
        request = parse_search_query(query_string)
        if request is not None:
            try:
                prepared = prepare_search(
                    request, schema=services.schema, options=services.options, backend_kind=services.backend.kind
                )
                key = search_cache_key(
                    prepared, request.cursor, schema=services.schema, namespace=services.aside.policy.namespace
                )
            except SearchError:
                key = None  # the route answers with the 422
        memo[query_string] = (key, request)
        if len(memo) > _MEMO_ENTRIES:
            memo.popitem(last=False)
        return key

    async def _respond(self, scope: Scope, send: Send, served: Served, services: Services) -> None:
        if_none_match = accept_encoding = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"accept-encoding":
                accept_encoding = value.decode("latin-1")
        policy = services.http_cache_policy
        memo_key = None
        if if_none_match is None and policy.compress_min_bytes is None and served.entry.took is None:
            # The same entry object comes back for every in-process hit (see CacheAside._decode_memoised):
            # its status, headers and body are worked out once per entry and Accept-Encoding choice.
            memo_key = (id(served.entry), served.x_cache, accepts_gzip(accept_encoding))
            remembered = self._responses.get(memo_key)
            if remembered is not None and remembered[0] is served.entry:
                await send({"type": "http.response.start", "status": remembered[1], "headers": list(remembered[2])})
                await send({"type": "http.response.body", "body": remembered[3]})
                return
        rendered = render(served, if_none_match=if_none_match, accept_encoding=accept_encoding, policy=policy)
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in rendered.headers.items()]
        if rendered.status >= 200 and rendered.status not in (204, 304):  # as Starlette's Response does
            raw_headers.append((b"content-length", str(len(rendered.body)).encode()))
        if memo_key is not None:
            self._responses[memo_key] = (served.entry, rendered.status, tuple(raw_headers), rendered.body)
            if len(self._responses) > _RESPONSE_ENTRIES:
                self._responses.popitem(last=False)
        start: Message = {"type": "http.response.start", "status": rendered.status, "headers": raw_headers}
        await send(start)
        await send({"type": "http.response.body", "body": rendered.body})


async def _peek(lookup: Awaitable[Served | None], scope: Scope) -> Served | None:
    """A fresh hit, or None; a fault of this shortcut must not fail the request (the route does the job)."""
    try:
        return await lookup
    except Exception:
        logger.opt(exception=True).warning("fast hit lookup failed for {}; the route answers", scope["path"])
        return None


type _Handler = Callable[[Request, Exception], Awaitable[Response]]


def _exception_handler(scope: Scope, err: Exception) -> _Handler | None:
    """The app's handler of `err`'s class or its nearest base, as Starlette's exception middleware finds
    it; None for the catch-all (`Exception`), which Starlette's error middleware applies."""
    handlers: Mapping[object, _Handler] = scope["app"].exception_handlers
    for cls in type(err).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _last_resort(scope: Scope) -> _Handler:
    """The app's catch-all handler (a bare 500 problem, registered by install_problem_handlers): this
    middleware may run in front of Starlette's error middleware (src/main.py), so it answers an
    unexpected error itself, as that middleware would."""
    handler: _Handler = scope["app"].exception_handlers[Exception]
    return handler
