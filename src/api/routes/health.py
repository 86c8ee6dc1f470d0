"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder

from src.api.auth import authorize
from src.api.deps import ServicesDep
from src.api.models import Health, Readiness
from src.cache.base import CacheUnavailable
from src.search.errors import SearchUnavailable
from src.search.models import Problem

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Health:
    """Answer without touching any dependency."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Dependencies are reachable",
    responses={503: {"model": Problem, "description": "A dependency failed; `dependency` names it."}},
)
async def readyz(services: ServicesDep) -> Readiness:
    """Ping the search backend (a SearchUnavailable becomes a 503 problem naming it) and the cache.

    Until the engine answered its warm-up search (src/search/warmup.py) the process is not ready. A cache
    that does not answer leaves the service ready (requests are served as misses) and is reported as
    "degraded".
    """
    if services.warm is not None and not services.warm.is_set():
        raise SearchUnavailable(f"{services.backend.kind}: warming up (the first search has not answered yet)")
    await services.backend.ping()
    try:
        await services.aside.cache.ping()
        cache = "ok"
    except CacheUnavailable:
        cache = "degraded"
    return {"status": "ready", "checks": {"search": "ok", "cache": cache}}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """The process's metrics in the Prometheus text format, or OpenMetrics (with the trace-id exemplars of
    the latency histograms) for a scraper that asks for `application/openmetrics-text`."""
    services = getattr(request.app.state, "services", None)
    if services is not None and services.metrics_scope:
        await authorize(request, services.verifier, services.metrics_scope)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(content=encoder(REGISTRY), media_type=content_type)
