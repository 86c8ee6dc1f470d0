"""The OpenAPI document, made true to what the service sends.

FastAPI documents every error body as `application/json` and its own validation schema; the service
sends RFC 9457 `application/problem+json` with the `Problem` schema. This rewrites every error response
(4xx/5xx) of every operation to that, adds the errors the edge middleware can send on any route (413,
414, 431), and writes the limits that only settings know (the length of `q`) into the parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_EDGE_ERRORS = {
    "413": "The request body is over `HTTP_MAX_BODY_BYTES` (any method; the connection is closed).",
    "414": "The request target (path and query) is too long.",
    "431": "The request headers are too large.",
}
_RATE_LIMITED = "Over a per-client rate limit (`Retry-After`, `RateLimit-Policy` and `RateLimit` say when to retry)."
_NOT_LIMITED = frozenset({"/healthz", "/readyz", "/metrics"})
_UNUSED_SCHEMAS = ("HTTPValidationError", "ValidationError")
BEARER_SCHEME = "bearer"
"""The admin API's security scheme: a bearer JWT whose `scope` claim grants the operation's scope."""


def problem_content() -> dict[str, Any]:
    """The content of an error response: a problem document."""
    return {"application/problem+json": {"schema": dict(PROBLEM_REF)}}


def make_openapi(app: FastAPI, *, max_query_chars: int) -> Callable[[], dict[str, Any]]:
    """`app.openapi` for this service (built once, then cached on the app like FastAPI's own)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses: dict[str, Any] = operation.setdefault("responses", {})
                for code, text in _EDGE_ERRORS.items():
                    responses.setdefault(code, {"description": text})
                if path not in _NOT_LIMITED:
                    responses.setdefault("429", {"description": _RATE_LIMITED})
                for code, response in responses.items():
                    if code[0] in "45":
                        response["content"] = problem_content()
                        if code == "422":
                            response["description"] = "A parameter is invalid; `errors` names it."
                if path == "/v1/search":
                    _limit_q(operation, max_query_chars)
        document.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_SCHEME] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT from the configured issuer; each admin operation names the scope it needs.",
        }
        schemas = document.get("components", {}).get("schemas", {})
        for name in _UNUSED_SCHEMAS:
            schemas.pop(name, None)
        app.openapi_schema = document
        return document

    return openapi


def _limit_q(operation: dict[str, Any], max_query_chars: int) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "q":
            parameter.setdefault("schema", {})["maxLength"] = max_query_chars
