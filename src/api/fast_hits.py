"""A fast path for the two cached GET routes, in front of FastAPI's routing.

A hit should cost about one Redis round trip, as a bare endpoint doing one GET does; FastAPI's
parameter solving alone costs more than that. So this ASGI middleware recognises GET /v1/search and
GET /v1/documents/{id}, derives the cache key exactly as the routes do, and answers a fresh hit with
the stored bytes. The query string is bound by `bind_search_params`, from the same `SearchParams`
model the route declares (src/api/search_params.py), so both paths accept, coerce and refuse the same
inputs; its binding and cache key are pure and memoised per raw query string.

Every GET /v1/search is answered here: a fresh hit from the cache; anything else (a miss, a stale
entry, the cache off) through the very service call the route makes (`service.search_cached`:
cache-aside, single flight, admission, stale-if-error), since routing, dependency solving and the
route's own wrapping cost about a fifth of an uncached typo search on the embedded engine. Errors,
invalid parameters included, become the same problem responses, from the app's own exception
handlers; an unexpected one propagates as from the route. A document that is not a fresh hit falls
through to the route, which does the whole job.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from fastapi.exceptions import RequestValidationError
from loguru import logger
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.deps import Services
from src.api.http_cache import accepts_gzip, render
from src.api.outermost import ROUTE_KEY
from src.api.search_params import bind_search_params
from src.cache.keys import GenerationalKey, document_key
from src.cache.models import CacheEntry, Served
from src.search.documents import id_problem
from src.search.errors import SearchError
from src.search.service import SearchRequest, prepare_search, search_cache_key, search_cached

_DOCUMENTS_PREFIX = "/v1/documents/"
_MEMO_ENTRIES = 4096
_SEARCH_PATH = "/v1/search"
_RESPONSE_ENTRIES = 64


@dataclass(frozen=True, slots=True)
class BoundSearch:
    """What one raw query string of GET /v1/search binds to (pure: memoised per query string)."""

    request: SearchRequest | None
    """The request the route would build; None when its parameters refuse the query string."""
    errors: tuple[Any, ...] = ()
    """The validation errors the route would report (RequestValidationError's), when it refuses it."""
    key: GenerationalKey | None = None
    """Its cache key; None with the cache off, or when the service refuses it (its 422 comes from there)."""


def bind_search(query_string: str, services: Services) -> BoundSearch:
    """Bind a query string with the route's own parameter model and, with the cache on, key it."""
    try:
        request = bind_search_params(query_string)
    except RequestValidationError as err:
        return BoundSearch(request=None, errors=tuple(err.errors()))
    if services.aside.cache.kind == "none":  # off: nothing can be a hit, no key is worth computing
        return BoundSearch(request=request)
    try:
        prepared = prepare_search(
            request, schema=services.schema, options=services.options, backend_kind=services.backend.kind
        )
    except SearchError:
        return BoundSearch(request=request)  # search_cached raises it again, for the app's handler
    key = search_cache_key(prepared, request.cursor, schema=services.schema, namespace=services.aside.policy.namespace)
    return BoundSearch(request=request, key=key)


class FastHitMiddleware:
    """ASGI middleware answering GET /v1/search, and fresh hits of GET /v1/documents/{id}, directly."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._searches: OrderedDict[str, BoundSearch] = OrderedDict()
        """Per raw query string: what it binds to (see `bind_search`)."""
        self._responses: OrderedDict[
            tuple[int, str, bool], tuple[CacheEntry, int, tuple[tuple[bytes, bytes], ...], bytes | bool]
        ] = OrderedDict()
        """Per stored entry, X-Cache and gzip choice: status, headers and the body, or, for an entry stating
        its own time (no two hits' bodies alike), whether the body is the gzip one."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            services: Services | None = getattr(scope["app"].state, "services", None)
            if services is not None and scope["path"] == _SEARCH_PATH:
                await self._search(scope, receive, send, services)
                return
            if services is not None and services.aside.cache.kind != "none":  # off: nothing can be a hit
                served = await _peek(self._document_hit(scope, services), scope)
                if served is not None:
                    scope[ROUTE_KEY] = "/v1/documents/{doc_id}"
                    await self._respond(scope, send, served, services)
                    return
        await self.app(scope, receive, send)

    async def _search(self, scope: Scope, receive: Receive, send: Send, services: Services) -> None:
        """Answer GET /v1/search: a fresh hit, the service's answer, or the app's problem response."""
        scope[ROUTE_KEY] = _SEARCH_PATH
        bound = self.bound_search(scope["query_string"].decode("latin-1"), services)
        if bound.request is None:
            await _answer_error(scope, receive, send, RequestValidationError(bound.errors))
            return
        served = None
        if bound.key is not None:
            served = await _peek(services.aside.peek_fresh(bound.key, route="search"), scope)
        if served is None:
            try:
                served = await search_cached(
                    bound.request,
                    backend=services.backend,
                    schema=services.schema,
                    options=services.options,
                    aside=services.aside,
                )
            except Exception as err:
                await _answer_error(scope, receive, send, err)
                return
        await self._respond(scope, send, served, services)

    async def _document_hit(self, scope: Scope, services: Services) -> Served | None:
        path: str = scope["path"]
        if path.startswith(_DOCUMENTS_PREFIX):
            doc_id = unquote(path[len(_DOCUMENTS_PREFIX) :])
            if "/" in doc_id or id_problem(doc_id) is not None:
                return None  # the route answers (422, or 404 for an id no document can have)
            doc_key = document_key(services.aside.policy.namespace, services.schema.fingerprint, doc_id)
            return await services.aside.peek_fresh(doc_key, route="document")
        return None

    def bound_search(self, query_string: str, services: Services) -> BoundSearch:
        """`bind_search`, memoised per raw query string (the last `_MEMO_ENTRIES`)."""
        memo = self._searches
        bound = memo.get(query_string)
        if bound is not None:
            memo.move_to_end(query_string)
            return bound
        bound = memo[query_string] = bind_search(query_string, services)
        if len(memo) > _MEMO_ENTRIES:
            memo.popitem(last=False)
        return bound

    async def _respond(self, scope: Scope, send: Send, served: Served, services: Services) -> None:
        if_none_match = accept_encoding = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"accept-encoding":
                accept_encoding = value.decode("latin-1")
        policy = services.http_cache_policy
        memo_key = None
        stored = served.origin or served.entry
        if if_none_match is None and policy.compress_min_bytes is None:
            # The same entry object comes back for every in-process hit (see CacheAside._decode_memoised):
            # its status and headers are worked out once per entry and Accept-Encoding choice, and its body
            # too unless the body states this hit's own time.
            memo_key = (id(stored), served.x_cache, accepts_gzip(accept_encoding))
            remembered = self._responses.get(memo_key)
            if remembered is not None and remembered[0] is stored:
                kept = remembered[3]
                body = kept if isinstance(kept, bytes) else (kept and served.entry.gzip_body) or served.entry.body
                headers = list(remembered[2])
                if remembered[1] >= 200 and remembered[1] not in (204, 304):  # as Starlette's Response does
                    headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": remembered[1], "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        rendered = render(served, if_none_match=if_none_match, accept_encoding=accept_encoding, policy=policy)
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in rendered.headers.items()]
        if memo_key is not None:
            timed = served.entry.took is not None
            body_or_gzip: bytes | bool = rendered.body if not timed else rendered.body is served.entry.gzip_body
            self._responses[memo_key] = (stored, rendered.status, tuple(raw_headers), body_or_gzip)
            if len(self._responses) > _RESPONSE_ENTRIES:
                self._responses.popitem(last=False)
        if rendered.status >= 200 and rendered.status not in (204, 304):  # as Starlette's Response does
            raw_headers.append((b"content-length", str(len(rendered.body)).encode()))
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


async def _answer_error(scope: Scope, receive: Receive, send: Send, err: Exception) -> None:
    """Answer `err` with the app's handler of it, as the route's would be; an unexpected error is
    answered as Starlette's error middleware answers it, and re-raised as it does."""
    handler = _exception_handler(scope, err)
    response = await (handler or _last_resort(scope))(Request(scope, receive), err)
    await response(scope, receive, send)
    if handler is None:
        raise err


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
    middleware runs in front of Starlette's error middleware (src/main.py, `edge_layers`), so it
    answers an unexpected error itself, as that middleware would."""
    handler: _Handler = scope["app"].exception_handlers[Exception]
    return handler
