"""Build the indexer's collaborators from settings (the only place the indexer reads settings)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from faststream.rabbit import RabbitBroker
from loguru import logger

from src.cache.base import Cache
from src.cache.factory import cache_policy, create_shared_cache
from src.cache.invalidation import make_invalidator
from src.cache.purge import PurgeQueue, Purger, create_purger
from src.events import INVALIDATIONS, create_broker, invalidation_event, publish
from src.indexer.checkpoint import MongoCheckpointStore, MongoDeadLetterStore
from src.indexer.models import IndexerStatus
from src.indexer.pipeline import Invalidate, Sink, StreamOptions, WriteLimits
from src.indexer.reindex import ReindexOptions
from src.indexer.requests import MongoReindexLog
from src.indexer.retry import RetryPolicy
from src.indexer.source import BatchLimits, MongoChangeSource, SourceConnection, create_mongo_source
from src.indexer.status import read_status
from src.search.backends.base import SearchBackend
from src.search.backends.factory import create_backend
from src.search.schema import load_schema
from src.settings import Settings


@dataclass(slots=True)
class Indexer:
    """Everything the indexer jobs use."""

    source: MongoChangeSource
    sink: Sink
    checkpoints: MongoCheckpointStore
    invalidate: Invalidate | None
    stream_options: StreamOptions
    reindex_options: ReindexOptions
    purges: PurgeQueue | None = None
    """CDN purges in the background (CDN_PURGER), fed by `invalidate`."""
    broker: RabbitBroker | None = None
    """BROKER_URL's broker (started by the stream job): invalidation events out, reindex requests in."""
    reindex_log: MongoReindexLog | None = None
    cache: Cache | None = None
    """The shared cache `invalidate` writes to (closed with the rest)."""

    @property
    def backend(self) -> SearchBackend:
        """The search backend the sink writes to."""
        return self.sink.backend

    async def close(self, *, timeout_seconds: float | None = None) -> None:
        """Send the pending CDN purges (a few seconds at most), then close the source and the backend;
        within `timeout_seconds` when given (a shutdown's grace: what is left unsent is logged)."""
        try:
            async with asyncio.timeout(timeout_seconds):
                await self._close()
        except TimeoutError:
            logger.warning("closing the indexer's clients took over {:g} s; exiting without waiting", timeout_seconds)

    async def _close(self) -> None:
        if self.purges is not None:
            await self.purges.close()
        if self.broker is not None:
            await self.broker.stop()
        if self.cache is not None:
            await self.cache.close()
        await self.source.close()
        await self.sink.backend.close()


CLOSE_SECONDS = 2.0
"""Of INDEXER_SHUTDOWN_GRACE_SECONDS, what closing the clients may take (the pending CDN purges are sent
within it); the stream's batch in flight gets the rest, half the grace at least."""


def stream_grace_seconds(grace_seconds: float) -> float:
    """How long the stream's batch in flight may take after the stop, out of the whole shutdown grace."""
    return max(grace_seconds - CLOSE_SECONDS, grace_seconds / 2)


def source_connection(settings: Settings) -> SourceConnection:
    """The source's TLS, credentials and flavour from settings."""
    return SourceConnection(
        flavor=settings.mongodb_flavor,
        tls=settings.mongodb_tls,
        tls_ca_file=str(settings.mongodb_tls_ca_file) if settings.mongodb_tls_ca_file else None,
        tls_cert_key_file=str(settings.mongodb_tls_cert_key_file) if settings.mongodb_tls_cert_key_file else None,
        username=settings.mongodb_username,
        password=settings.mongodb_password.get_secret_value() if settings.mongodb_password else None,
        auth_mechanism=settings.mongodb_auth_mechanism,
    )


def build_indexer(settings: Settings, *, save_checkpoint: bool = True, invalidation: bool = True) -> Indexer:
    """Source, stores, sink and cache invalidation as configured (`invalidation=False`: a reader of the
    status only, which invalidates nothing)."""
    schema = load_schema(settings.index_schema_path)
    limits = BatchLimits(
        max_events=settings.indexer_batch_max_events,
        max_bytes=settings.indexer_batch_max_bytes,
        max_seconds=settings.indexer_batch_max_seconds,
        heartbeat_seconds=settings.indexer_heartbeat_seconds,
    )
    source = create_mongo_source(
        settings.mongodb_url,
        database=settings.mongodb_database,
        collection=settings.mongodb_collection,
        limits=limits,
        timeout_seconds=settings.mongodb_timeout_seconds,
        connection=source_connection(settings),
    )
    database = source.database
    retry = RetryPolicy(
        attempts=settings.indexer_retry_attempts,
        base_seconds=settings.indexer_retry_base_seconds,
        cap_seconds=settings.indexer_retry_cap_seconds,
    )
    sink = Sink(
        backend=create_backend(settings, schema),
        dead_letters=MongoDeadLetterStore(database, settings.indexer_dead_letter_collection),
        consumer=settings.indexer_consumer,
        retry=retry,
        limits=WriteLimits(
            max_document_bytes=settings.indexer_max_document_bytes,
            pressure_alert_seconds=settings.indexer_pressure_alert_seconds,
        ),
    )
    invalidate = None
    purges = None
    shared = None
    broker = create_broker(settings.broker_url) if settings.broker_url and invalidation else None
    if invalidation:
        if not settings.redis_url:
            logger.warning("REDIS_URL is empty: the API's in-process caches are not reachable and expire by TTL only")
        if settings.cdn_purger != "none":
            purges = PurgeQueue(
                create_purger_from(settings),
                max_pending=settings.cdn_purge_max_pending,
                repeat_seconds=settings.cdn_purge_repeat_seconds,
            )
            logger.info("CDN purges by surrogate key through {}", settings.cdn_purger)
        if settings.redis_url or purges is not None or broker is not None:
            namespace = cache_policy(settings).namespace
            shared = create_shared_cache(settings) if settings.redis_url else None
            invalidate = make_invalidator(
                shared,
                namespace=namespace,
                schema_fingerprint=schema.fingerprint,
                purges=purges,
                announce=_announcer(broker, namespace, schema.fingerprint) if broker is not None else None,
            )
    return Indexer(
        source=source,
        sink=sink,
        checkpoints=MongoCheckpointStore(database, settings.indexer_checkpoint_collection),
        invalidate=invalidate,
        stream_options=StreamOptions(
            consumer=settings.indexer_consumer,
            retry=retry,
            queue_batches=settings.indexer_queue_batches,
            token_retention_seconds=settings.indexer_token_retention_seconds,
            shutdown_grace_seconds=stream_grace_seconds(settings.indexer_shutdown_grace_seconds),
        ),
        reindex_options=ReindexOptions(
            batch_size=settings.indexer_reindex_batch_size,
            keep_previous=settings.indexer_reindex_keep_previous,
            save_checkpoint=save_checkpoint,
            heartbeat_seconds=settings.indexer_build_heartbeat_seconds,
            orphan_after_seconds=settings.indexer_orphan_after_seconds,
        ),
        purges=purges,
        broker=broker,
        reindex_log=MongoReindexLog(database, settings.indexer_checkpoint_collection, settings.indexer_consumer),
        cache=shared,
    )


def _announcer(
    broker: RabbitBroker, namespace: str, fingerprint: str
) -> Callable[[Sequence[str], int | None], Awaitable[None]]:
    """Publishes one batch's invalidation to every API process (fan-out), never raising."""

    async def announce(ids: Sequence[str], generation: int | None) -> None:
        event = invalidation_event(ids, generation, namespace=namespace, fingerprint=fingerprint)
        await publish(broker, event, exchange=INVALIDATIONS)

    return announce


def create_purger_from(settings: Settings) -> Purger:
    """The CDN purger of CDN_PURGER, from settings."""
    return create_purger(
        settings.cdn_purger,
        url=settings.cdn_purge_url,
        fastly_service_id=settings.fastly_service_id,
        fastly_api_token=settings.fastly_api_token.get_secret_value() if settings.fastly_api_token else "",
        fastly_api_url=settings.fastly_api_url,
        fastly_soft=settings.fastly_soft_purge,
        cloudfront_distribution_id=settings.cloudfront_distribution_id,
    )


async def read_indexer_status(settings: Settings, *, now: float) -> IndexerStatus:
    """The stream's status as `python -m indexer status` reports it, from fresh clients it closes."""
    indexer = build_indexer(settings, invalidation=False)
    try:
        status = await read_status(
            settings.indexer_consumer,
            source=indexer.source,
            checkpoints=indexer.checkpoints,
            now=now,
            max_lag_seconds=settings.indexer_status_max_lag_seconds,
            stall_seconds=settings.indexer_status_stall_seconds,
            backend=indexer.backend,
            timeout_seconds=settings.mongodb_timeout_seconds + 1,
            orphan_after_seconds=settings.indexer_orphan_after_seconds,
        )
        if status["state"] != "source-unreachable" and indexer.reindex_log is not None:
            latest = await indexer.reindex_log.latest()
            if latest is not None:
                status["reindex"] = latest
        return status
    finally:
        await indexer.close()
