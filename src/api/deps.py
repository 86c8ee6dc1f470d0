"""Dependencies, defined once as `Annotated` aliases; tests override them with dependency_overrides.

Everything a route needs that lives for the whole process is one `Services` value built in the
lifespan: one cheap async dependency per request instead of one per collaborator (a sync dependency
would even cost a thread-pool hop each).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

from fastapi import Depends, Request

from src.api.auth import TokenVerifier
from src.api.http_cache import HttpCachePolicy
from src.cache.aside import CacheAside
from src.events import ReindexRequest
from src.search.backends.base import SearchBackend
from src.search.schema import IndexSchema
from src.search.service import SearchOptions


@dataclass(frozen=True, slots=True)
class Services:
    """The process's collaborators, opened in the lifespan."""

    backend: SearchBackend
    schema: IndexSchema
    options: SearchOptions
    aside: CacheAside
    http_cache_policy: HttpCachePolicy
    verifier: TokenVerifier = field(default_factory=lambda: TokenVerifier(algorithms=("RS256", "ES256")))
    """Bearer tokens of the admin API (and of /metrics when `metrics_scope` is set)."""
    metrics_scope: str = ""
    indexer_status: Callable[[], Awaitable[dict[str, Any]]] | None = None
    """Reads the indexer's status (None when no MongoDB source is configured)."""
    request_reindex: Callable[[ReindexRequest], Awaitable[bool]] | None = None
    """Publishes a reindex request to the broker (None without BROKER_URL); False when it was not taken."""
    warm: asyncio.Event | None = None
    """Set once the engine answered its warm-up search (src/search/warmup.py); None: no warm-up."""


async def get_services(request: Request) -> Services:
    """The collaborators kept on app.state."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]
