"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from src.api.deps import SearchBackendDep
from src.api.models import Health, Readiness
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
async def readyz(backend: SearchBackendDep) -> Readiness:
    """Ping the search backend (a SearchUnavailable becomes a 503 problem naming it)."""
    await backend.ping()
    return {"status": "ready", "checks": {"search": "ok"}}
