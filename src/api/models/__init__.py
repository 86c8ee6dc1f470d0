"""Payloads of the HTTP layer that are not search results: health and readiness."""

from __future__ import annotations

from typing import Literal, TypedDict


class Health(TypedDict):
    """GET /healthz: the process is alive."""

    status: Literal["ok"]
    """Always "ok" when the process answers."""


class Readiness(TypedDict):
    """GET /readyz: every dependency answered."""

    status: Literal["ready"]
    """"ready" when every dependency answered."""
    checks: dict[str, str]
    """Dependency name to "ok" or, for the cache (which the service can run without), "degraded"."""
