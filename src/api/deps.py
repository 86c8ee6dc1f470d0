"""Dependencies, defined once as `Annotated` aliases; tests override them with dependency_overrides."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from src.api.http_cache import HttpCachePolicy
from src.cache.aside import CacheAside
from src.search.backends.base import SearchBackend
from src.search.schema import IndexSchema
from src.search.service import SearchOptions


def get_search_backend(request: Request) -> SearchBackend:
    """The backend opened in the lifespan."""
    return cast(SearchBackend, request.app.state.backend)


def get_index_schema(request: Request) -> IndexSchema:
    """The index schema loaded in the lifespan."""
    return cast(IndexSchema, request.app.state.schema)


def get_search_options(request: Request) -> SearchOptions:
    """Search limits built from settings in the lifespan."""
    return cast(SearchOptions, request.app.state.search_options)


def get_cache_aside(request: Request) -> CacheAside:
    """The process-wide cache-aside layer."""
    return cast(CacheAside, request.app.state.aside)


def get_http_cache_policy(request: Request) -> HttpCachePolicy:
    """Cache-Control values."""
    return cast(HttpCachePolicy, request.app.state.http_cache_policy)


SearchBackendDep = Annotated[SearchBackend, Depends(get_search_backend)]
IndexSchemaDep = Annotated[IndexSchema, Depends(get_index_schema)]
SearchOptionsDep = Annotated[SearchOptions, Depends(get_search_options)]
CacheAsideDep = Annotated[CacheAside, Depends(get_cache_aside)]
HttpCachePolicyDep = Annotated[HttpCachePolicy, Depends(get_http_cache_policy)]
