"""The admin API: operator actions behind bearer tokens with OAuth2 scopes (src/api/auth.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal, Self, TypedDict

from fastapi import APIRouter, Depends, HTTPException
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from src.api.auth import AuthorizedFirstRoute, require_scope
from src.api.deps import ServicesDep
from src.cache.base import CacheUnavailable
from src.cache.invalidation import bump_search_generation, invalidate_documents
from src.events import ReindexRequest
from src.search.models import Problem

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=AuthorizedFirstRoute)
"""Every route checks its token before FastAPI reads the body: unauthenticated is a 401 whatever the body."""

PURGE_SCOPE = "search:cache:purge"
STATUS_SCOPE = "search:read-status"
REINDEX_SCOPE = "search:reindex"

PurgeClaims = Annotated[dict[str, Any], Depends(require_scope(PURGE_SCOPE))]
StatusClaims = Annotated[dict[str, Any], Depends(require_scope(STATUS_SCOPE))]
ReindexClaims = Annotated[dict[str, Any], Depends(require_scope(REINDEX_SCOPE))]

_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No token, or one that does not verify (`WWW-Authenticate` says why)."},
    403: {"model": Problem, "description": "The token does not grant the scope this route needs."},
}


class PurgeRequest(BaseModel):
    """What to purge: everything, or the responses of some documents (and every search)."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    ids: list[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = Field(
        default_factory=list, max_length=1000
    )

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if self.all == bool(self.ids):
            raise ValueError("give either all: true or a non-empty ids list, not both")
        return self


class PurgeResult(TypedDict):
    purged: Literal["all", "documents"]
    documents: int
    """Document entries removed (for `ids`, how many were asked for)."""
    search_generation: int
    """The new search generation: every cached search response is retired."""


@router.post(
    "/cache/purge",
    summary="Purge cached responses",
    description=f"Needs a bearer token with the `{PURGE_SCOPE}` scope. Purging ids drops those documents' "
    "responses; purging all also drops every document response. Both retire every cached search.",
    responses={**_REFUSED, 503: {"model": Problem, "description": "The cache did not answer."}},
    openapi_extra={"security": [{"bearer": [PURGE_SCOPE]}]},
)
async def purge_cache(body: PurgeRequest, services: ServicesDep, claims: PurgeClaims) -> PurgeResult:
    """Drop cached entries (this process's and the shared cache's)."""
    cache = services.aside.cache
    namespace = services.aside.policy.namespace
    fingerprint = services.schema.fingerprint
    try:
        if body.all:
            removed = await cache.delete_prefix(f"{namespace}:doc:{fingerprint}:")
        else:
            await invalidate_documents(body.ids, cache=cache, namespace=namespace, schema_fingerprint=fingerprint)
            removed = len(body.ids)
        generation = await bump_search_generation(cache=cache, namespace=namespace, schema_fingerprint=fingerprint)
    except CacheUnavailable as err:
        raise HTTPException(503, f"the cache did not answer: {err}") from err
    logger.bind(subject=claims.get("sub")).info(
        "cache purged ({}): {} document entries, search generation now {}",
        "all" if body.all else "documents",
        removed,
        generation,
    )
    return {"purged": "all" if body.all else "documents", "documents": removed, "search_generation": generation}


class OrphanIndexBody(TypedDict):
    """A versioned index a dead load or reindex left behind (src.indexer.models.OrphanIndex; the API does not
    import the indexer's code, which the Lambda handler must not load)."""

    index: str
    """The index name (`<alias>-<timestamp>`)."""
    age_seconds: float
    """Seconds since its build's last heartbeat."""


class IndexerStatusBody(TypedDict, total=False):
    consumer: str
    state: str
    checkpoint_age_seconds: float | None
    token_age_seconds: float | None
    lag_seconds: float | None
    last_cluster_time: int | None
    error: str
    orphans: list[OrphanIndexBody]
    """Versioned indices dead builds left behind (the next load or reindex drops them)."""
    reindex: dict[str, Any]
    """The latest reindex requested through the broker: request_id, state, times, the index it produced."""


@router.get(
    "/indexer/status",
    summary="The indexer's status",
    description=f"Needs a bearer token with the `{STATUS_SCOPE}` scope. The same report as "
    "`python -m indexer status`: state (ok, behind, stalled, no-checkpoint, source-unreachable, "
    "backend-unreachable), checkpoint and token ages, lag, and the orphans of dead index builds.",
    responses={**_REFUSED, 503: {"model": Problem, "description": "No indexer source is configured."}},
    openapi_extra={"security": [{"bearer": [STATUS_SCOPE]}]},
)
async def indexer_status(services: ServicesDep, claims: StatusClaims) -> IndexerStatusBody:
    """Read the checkpoint and what is pending after it."""
    if services.indexer_status is None:
        raise HTTPException(503, "no indexer source is configured (MONGODB_URL)")
    return await services.indexer_status()  # type: ignore[return-value]


class ReindexAccepted(TypedDict):
    request_id: str
    state: Literal["queued"]


@router.post(
    "/reindex",
    status_code=202,
    summary="Request a full reindex",
    description=f"Needs a bearer token with the `{REINDEX_SCOPE}` scope. Publishes a request the indexer "
    "stream runs (one at a time; a request made while one runs is coalesced into the next); "
    "`GET /v1/admin/indexer/status` shows its state under `reindex`.",
    responses={**_REFUSED, 503: {"model": Problem, "description": "No broker (BROKER_URL), or it is unreachable."}},
    openapi_extra={"security": [{"bearer": [REINDEX_SCOPE]}]},
)
async def request_reindex(services: ServicesDep, claims: ReindexClaims) -> ReindexAccepted:
    """Publish a reindex request."""
    if services.request_reindex is None:
        raise HTTPException(503, "no broker is configured (BROKER_URL): reindexes run on the schedule")
    request = ReindexRequest(request_id=uuid.uuid4().hex, requested_by=str(claims.get("sub") or "") or None)
    if not await services.request_reindex(request):
        raise HTTPException(503, "the broker did not take the request; retry shortly")
    logger.bind(subject=claims.get("sub"), request_id=request.request_id).info("reindex requested")
    return {"request_id": request.request_id, "state": "queued"}
