"""The ASGI application: `create_app()` builds it; the lifespan opens and closes the clients."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib.resources
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from loguru import logger
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from src.api.auth import JwksCache, TokenVerifier
from src.api.deps import Services
from src.api.edge import HeadMiddleware, RequestLimitsMiddleware
from src.api.fast_hits import FastHitMiddleware
from src.api.http_cache import HttpCachePolicy
from src.api.openapi import make_openapi
from src.api.outermost import ObservabilityMiddleware
from src.api.preview import install_preview
from src.api.problems import install_problem_handlers
from src.api.ratelimit import RateLimitMiddleware, create_engine_budget, parse_networks
from src.api.routes import admin, health, search
from src.api.security import SecurityHeaders
from src.cache.factory import create_cache_aside
from src.events import Invalidation, LazyReindexPublisher, ReindexRequest, apply_invalidation, create_broker, publish
from src.observability.logging import access_log, configure_logging
from src.observability.tracing import ServerSpans, configure_tracing, flush_tracing
from src.resilience import CircuitBreaker
from src.search.backends.base import SearchBackend
from src.search.backends.guarded import GuardedBackend
from src.search.schema import IndexSchema, load_schema
from src.search.service import SearchOptions
from src.search.warmup import warm_up
from src.settings import DEV_CURSOR_SECRET, ApiSettings, ProcessSettings, get_api_settings

if TYPE_CHECKING:
    from faststream.rabbit import RabbitBroker
    from opentelemetry.sdk.trace import TracerProvider


def search_options(settings: ApiSettings) -> SearchOptions:
    """The search service's limits, from settings."""
    signing, *verifying = settings.query.cursor_keys()
    return SearchOptions(
        cursor_secret=signing,
        cursor_verify_secrets=tuple(verifying),
        default_size=settings.query.default_size,
        one_edit_min_chars=settings.query.fuzzy_one_edit_min_chars,
        two_edits_min_chars=settings.query.fuzzy_two_edits_min_chars,
        max_query_chars=settings.query.max_query_chars,
        max_query_terms=settings.query.max_query_terms,
        max_filters=settings.query.max_filters,
        facet_size=settings.query.facet_size,
        track_total_up_to=settings.query.track_total_hits_up_to,
        fragment_chars=settings.query.highlight_fragment_chars,
        max_fragments=settings.query.highlight_max_fragments,
    )


def http_cache_policy(settings: ApiSettings) -> HttpCachePolicy:
    """Cache-Control values, from settings."""
    return HttpCachePolicy(
        max_age_seconds=settings.http_cache.max_age_seconds,
        s_maxage_seconds=settings.http_cache.s_maxage_seconds,
        stale_while_revalidate_seconds=settings.http_cache.stale_while_revalidate_seconds,
        stale_if_error_seconds=settings.http_cache.stale_if_error_seconds,
        negative_max_age_seconds=int(settings.cache.negative_ttl_seconds),
        compress_min_bytes=None if settings.cache.enabled else settings.cache.gzip_min_bytes,
    )


type BackendFactory = Callable[[ProcessSettings, IndexSchema], SearchBackend]
"""Builds the configured search backend (the Lambda handler passes one that imports only its engine)."""


def create_configured_backend(settings: ProcessSettings, schema: IndexSchema) -> SearchBackend:
    """The backend the settings name, through the shared factory (imported on first use)."""
    from src.search.backends.factory import create_backend

    return create_backend(settings, schema)


class SearchApp(FastAPI):
    """FastAPI with the service's edge in front of Starlette's own stack (see `edge_layers`)."""

    edge: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.edge is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await self.edge(scope, receive, send)


def edge_layers(config: ApiSettings, provider: TracerProvider | None) -> list[Middleware]:
    """The layers every HTTP request passes, outermost first, in front of Starlette's own stack:

    observability (request id, span, metrics, access log, security headers) → CORS → rate limit →
    size limits → HEAD → fast hits → Starlette's stack (its error middleware → routes).

    The one order, whatever the settings: CORS is left out when no origin is allowed
    (`CORS_ALLOW_ORIGINS`), and nothing else moves. With it on, refusals, fast hits and errors carry
    CORS headers. None of these is added with `app.add_middleware`, so a fast hit costs none of
    Starlette's layers (a fifth of a hit's time).
    """
    origins = [origin.strip() for origin in config.edge.cors_allow_origins.split(",") if origin.strip()]
    cors = Middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=False,
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=["Accept", "If-None-Match", "X-Request-Id", "traceparent", "tracestate"],
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=600,
    )
    return [
        Middleware(
            ObservabilityMiddleware,
            access_log=config.http.access_log,
            spans=ServerSpans(provider, "search-read-api") if provider is not None else None,
            security_headers=SecurityHeaders(hsts_max_age_seconds=config.edge.hsts_max_age_seconds),
        ),
        *([cors] if origins else []),
        Middleware(
            RateLimitMiddleware,
            limit=config.edge.rate_limit if config.rate_limits_on else None,
            trusted_proxies=parse_networks(config.edge.trusted_proxies),
        ),
        Middleware(
            RequestLimitsMiddleware,
            max_target_bytes=config.http.max_target_bytes,
            max_header_bytes=config.http.max_header_bytes,
            max_body_bytes=config.http.max_body_bytes,
        ),
        Middleware(HeadMiddleware),
        Middleware(FastHitMiddleware),
    ]


def wrap(app: ASGIApp, layers: Sequence[Middleware]) -> ASGIApp:
    """`app` behind `layers`, the first outermost (as Starlette builds its own middleware stack)."""
    for cls, args, kwargs in reversed(layers):
        app = cls(app, *args, **kwargs)
    return app


def create_app(settings: ApiSettings | None = None, *, backend_factory: BackendFactory | None = None) -> SearchApp:
    """Build the app; clients open in the lifespan, so building it does no I/O."""
    config = settings or get_api_settings()
    make_backend = backend_factory or create_configured_backend

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(config.app.log_level, process="api")
        config.check_serving()  # production refuses development secrets before anything opens
        if DEV_CURSOR_SECRET.encode() in config.query.cursor_keys():
            logger.warning("CURSOR_SECRET is the development default: set a secret shared by all instances")
        schema = load_schema(config.index.schema_path)
        breaker = CircuitBreaker(
            name="search",
            failure_threshold=config.engine.breaker_failures,
            reset_seconds=config.engine.breaker_reset_seconds,
        )
        warm = asyncio.Event()
        inner = make_backend(config, schema)
        services = Services(
            backend=GuardedBackend(inner, breaker, warm=warm),
            schema=schema,
            options=search_options(config),
            aside=create_cache_aside(config),
            http_cache_policy=http_cache_policy(config),
            verifier=token_verifier(config),
            metrics_scope=config.edge.metrics_scope,
            indexer_status=indexer_status_reader(config),
            warm=warm,
        )
        tried = asyncio.Event()
        warming = asyncio.create_task(warm_up(inner, warm, tried=tried), name="search warm-up")
        with contextlib.suppress(TimeoutError):  # a warm engine: ready when the process listens
            async with asyncio.timeout(config.engine.timeout_seconds * 2 + 1):
                await tried.wait()
        budget = None
        if config.rate_limits_on:
            budget = create_engine_budget(
                config.edge.rate_limit_engine,
                redis_url=config.redis.url,
                cluster=config.redis.cluster,
                timeout_seconds=config.redis.timeout_seconds,
                key_prefix=f"{services.aside.policy.namespace}:limits",
                # Its own breaker: an outage of the limiter's Redis costs one budget per request only
                # until it opens (the local count decides meanwhile).
                breaker=CircuitBreaker(
                    name="rate-limiter",
                    failure_threshold=config.redis.breaker_failures,
                    reset_seconds=config.redis.breaker_reset_seconds,
                ),
            )
            services.aside.admit = budget.charge
        subscribe = config.broker.url and config.broker.subscribe
        broker = await start_events(config, services) if subscribe else None
        publisher = LazyReindexPublisher(config.broker.url) if config.broker.url and not subscribe else None
        if publisher is not None:
            services = dataclasses.replace(services, request_reindex=publisher)
        elif broker is not None:
            services = dataclasses.replace(services, request_reindex=functools.partial(_publish_reindex, broker))
        elif not config.broker.url:
            logger.info("no BROKER_URL: the in-process cache polls for invalidations; reindexes run on the schedule")
        app.state.services = services
        logger.info(
            "serving {} on {} with a {} cache", schema.fingerprint, services.backend.kind, services.aside.cache.kind
        )
        try:
            yield
        finally:
            warming.cancel()
            await asyncio.gather(warming, return_exceptions=True)
            if broker is not None:
                await broker.stop()
            if publisher is not None:
                await publisher.close()
            await services.aside.close()
            if budget is not None:
                await budget.close()
            await services.backend.close()
            flush_tracing()
            access_log().flush()

    provider = configure_tracing("search-api")
    app = SearchApp(
        title="Search read API",
        version="0.1.0",
        description="Typo-tolerant search over Elasticsearch or an embedded Tantivy index.",
        lifespan=lifespan,
        docs_url=None,  # our own page (self-hosted assets, strict CSP) below, when docs are on
        redoc_url=None,
        openapi_url="/openapi.json" if config.docs_on else None,
        # The server span, metrics and access log come from ObservabilityMiddleware (FastAPI's built-in
        # instrumentation costs three cache hits per request: see src/api/outermost.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.openapi = make_openapi(app, max_query_chars=config.query.max_query_chars)  # type: ignore[method-assign]
    install_problem_handlers(app)
    app.edge = wrap(functools.partial(FastAPI.__call__, app), edge_layers(config, provider))
    app.include_router(search.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    if config.docs_on:
        install_docs(app)
    if config.preview_on:
        install_preview(app)
    return app


CORS_EXPOSED_HEADERS = [
    "ETag",
    "X-Cache",
    "X-Request-Id",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "Surrogate-Key",
]


def install_docs(app: FastAPI) -> None:
    """The OpenAPI page at /docs: Swagger UI 5 from the fastapi-offline package's static files (no CDN;
    Swagger UI 4 cannot read OpenAPI 3.1), started by a script file of ours (the page's CSP allows no
    inline script)."""
    swagger_ui_path = importlib.resources.files("fastapi_offline") / "static"
    static = Path(__file__).resolve().parent / "api" / "static"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(static / "docs.html", media_type="text/html")

    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.mount("/docs/static", StaticFiles(directory=str(static)), name="docs-static")


async def start_events(settings: ApiSettings, services: Services) -> RabbitBroker | None:
    """Subscribe this process to the invalidation fan-out (an exclusive queue of its own) and connect the
    broker reindex requests are published through; None (logged) when the broker cannot be reached."""
    from faststream.rabbit import RabbitQueue

    from src.events import INVALIDATIONS

    broker = create_broker(settings.broker.url)
    namespace, fingerprint = services.aside.policy.namespace, services.schema.fingerprint
    mine = RabbitQueue(f"search.invalidations.{uuid.uuid4().hex[:12]}", exclusive=True, auto_delete=True)

    @broker.subscriber(mine, INVALIDATIONS)
    async def on_invalidation(event: Invalidation) -> None:
        await apply_invalidation(services.aside.cache, event, namespace=namespace, schema_fingerprint=fingerprint)

    try:
        async with asyncio.timeout(10):
            await broker.start()
    except Exception as err:  # events are optional: the service runs on polling without them
        logger.warning("broker unreachable ({!r}): polling for invalidations, no reindex requests", err)
        with contextlib.suppress(Exception):
            await broker.stop()
        return None
    logger.info("broker connected: invalidation events applied at once, reindex requests accepted")
    return broker


async def _publish_reindex(broker: RabbitBroker, request: ReindexRequest) -> bool:
    from src.events import REINDEX_QUEUE

    return await publish(broker, request, queue=REINDEX_QUEUE)


def token_verifier(settings: ApiSettings) -> TokenVerifier:
    """The admin API's token checks, from settings."""
    algorithms = tuple(part.strip() for part in settings.auth.algorithms.split(",") if part.strip())
    jwks = (
        JwksCache(
            settings.auth.jwks_url,
            ttl_seconds=settings.auth.jwks_cache_seconds,
            min_refresh_seconds=settings.auth.jwks_min_refresh_seconds,
        )
        if settings.auth.jwks_url
        else None
    )
    static = settings.auth.static_key.get_secret_value() if settings.auth.static_key else None
    return TokenVerifier(
        algorithms=algorithms,
        jwks=jwks,
        static_key=static or None,
        issuer=settings.auth.issuer,
        audience=settings.auth.audience,
        leeway_seconds=settings.auth.leeway_seconds,
    )


def indexer_status_reader(settings: ApiSettings) -> Callable[[], Awaitable[dict[str, Any]]]:
    """`python -m indexer status` as a call (the admin API's status route); opens and closes its clients."""

    async def read() -> dict[str, Any]:
        from src.indexer.factory import read_indexer_status  # the indexer's code loads on first use only

        return dict(await read_indexer_status(settings, now=time.time()))

    return read
