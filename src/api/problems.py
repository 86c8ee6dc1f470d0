"""RFC 9457 problem details: the one place that turns errors into HTTP responses.

Every error leaves the service as `application/problem+json`; nothing ever shows a stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from src.api.auth import AuthError
from src.api.ratelimit import RateLimited
from src.observability.metrics import UNAVAILABLE_RESPONSES
from src.resilience import Overloaded, Unavailable
from src.search.errors import InvalidParameter, SearchRejected
from src.search.models import Problem, ProblemError

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemResponse(Response):
    """A problem details response."""

    media_type = PROBLEM_MEDIA_TYPE

    def __init__(self, problem: Problem, headers: dict[str, str] | None = None) -> None:
        super().__init__(content=orjson.dumps(problem), status_code=problem["status"], headers=headers)


def problem(status: int, detail: str, request: Request, *, type_: str = "about:blank") -> Problem:
    """A problem body for `status` with the standard title of that status."""
    return {
        "type": type_,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }


async def _invalid_parameter(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidParameter)
    body = problem(
        422, f"invalid parameter {exc.parameter!r}: {exc.detail}", request, type_="/problems/invalid-parameter"
    )
    body["errors"] = [{"parameter": exc.parameter, "detail": exc.detail}]
    return ProblemResponse(body)


def _parameter(location: Sequence[object]) -> str:
    """A query parameter's name, or `body` and the path to the field inside it (`body.ids`)."""
    if not location:
        return "request"
    if location[0] == "body":
        inside = [str(part) for part in location[1:] if isinstance(part, str)]
        return ".".join(["body", *inside])
    return str(location[-1])


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: list[ProblemError] = [
        {"parameter": _parameter(error.get("loc", ())), "detail": str(error["msg"])} for error in exc.errors()
    ]
    names = ", ".join(sorted({error["parameter"] for error in errors}))
    body = problem(422, f"invalid parameter(s): {names}", request, type_="/problems/invalid-parameter")
    body["errors"] = errors
    return ProblemResponse(body)


async def _unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unavailable)
    # Not logged per request: the breaker logs each state change, and this counter counts the 503s.
    UNAVAILABLE_RESPONSES.labels(exc.dependency).inc()
    logger.debug("dependency unavailable: {}", exc.detail)
    if isinstance(exc, Overloaded):
        body = problem(503, "too many searches in flight; retry shortly", request, type_="/problems/overloaded")
    else:
        body = problem(503, f"the {exc.dependency} backend is unavailable", request, type_="/problems/unavailable")
    body["dependency"] = exc.dependency
    return ProblemResponse(body, headers={"Retry-After": "1"})


async def _search_rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SearchRejected)
    logger.info("search engine refused a request on {}: {}", request.url.path, exc.detail)
    return ProblemResponse(problem(400, "the search engine refused this request", request, type_="/problems/rejected"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # FastAPI's, for non-UTF-8
        body = problem(422, "invalid parameter(s): body", request, type_="/problems/invalid-parameter")
        body["errors"] = [{"parameter": "body", "detail": "the body is not JSON in UTF-8"}]
        return ProblemResponse(body)
    return ProblemResponse(
        problem(exc.status_code, str(exc.detail), request), headers=dict(exc.headers) if exc.headers else None
    )


async def _auth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    type_ = "/problems/unauthorized" if exc.status == 401 else "/problems/forbidden"
    return ProblemResponse(
        problem(exc.status, exc.detail, request, type_=type_), headers={"WWW-Authenticate": exc.www_authenticate()}
    )


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    return ProblemResponse(problem(429, exc.detail(), request, type_="/problems/rate-limited"), headers=exc.headers())


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.opt(exception=exc).error("unhandled error on {}", request.url.path)
    return ProblemResponse(problem(500, "an internal error occurred; it has been logged", request))


def install_problem_handlers(app: FastAPI) -> None:
    """Register every error-to-problem translation on `app`."""
    app.add_exception_handler(InvalidParameter, _invalid_parameter)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(SearchRejected, _search_rejected)
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
