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
from src.search.schema import IndexSchema, load_schema
from src.settings import CdnSettings, IndexerSettings, ProcessSettings, SourceSettings


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


def source_connection(source: SourceSettings) -> SourceConnection:
    """The source's TLS, credentials and flavour from settings."""
    return SourceConnection(
        flavor=source.flavor,
        tls=source.tls,
        tls_ca_file=str(source.tls_ca_file) if source.tls_ca_file else None,
        tls_cert_key_file=str(source.tls_cert_key_file) if source.tls_cert_key_file else None,
        username=source.username,
        password=source.password.get_secret_value() if source.password else None,
        auth_mechanism=source.auth_mechanism,
    )


def open_indexer(settings: ProcessSettings, schema: IndexSchema, *, save_checkpoint: bool = True) -> Indexer:
    """Source, stores and sink as configured, invalidating nothing (what reading the status needs: the API
    reads it too, without the indexer's own groups)."""
    pipeline, mongo = settings.indexer, settings.source
    limits = BatchLimits(
        max_events=pipeline.batch_max_events,
        max_bytes=pipeline.batch_max_bytes,
        max_seconds=pipeline.batch_max_seconds,
        heartbeat_seconds=pipeline.heartbeat_seconds,
    )
    source = create_mongo_source(
        mongo.url,
        database=mongo.database,
        collection=mongo.collection,
        limits=limits,
        timeout_seconds=mongo.timeout_seconds,
        connection=source_connection(mongo),
    )
    database = source.database
    retry = RetryPolicy(
        attempts=pipeline.retry_attempts,
        base_seconds=pipeline.retry_base_seconds,
        cap_seconds=pipeline.retry_cap_seconds,
    )
    sink = Sink(
        backend=create_backend(settings, schema),
        dead_letters=MongoDeadLetterStore(database, pipeline.dead_letter_collection),
        consumer=pipeline.consumer,
        retry=retry,
        limits=WriteLimits(
            max_document_bytes=pipeline.max_document_bytes,
            pressure_alert_seconds=pipeline.pressure_alert_seconds,
        ),
    )
    return Indexer(
        source=source,
        sink=sink,
        checkpoints=MongoCheckpointStore(database, pipeline.checkpoint_collection),
        invalidate=None,
        stream_options=StreamOptions(
            consumer=pipeline.consumer,
            retry=retry,
            queue_batches=pipeline.queue_batches,
            token_retention_seconds=pipeline.token_retention_seconds,
            shutdown_grace_seconds=stream_grace_seconds(pipeline.shutdown_grace_seconds),
        ),
        reindex_options=ReindexOptions(
            batch_size=pipeline.reindex_batch_size,
            keep_previous=pipeline.reindex_keep_previous,
            save_checkpoint=save_checkpoint,
            heartbeat_seconds=pipeline.build_heartbeat_seconds,
            orphan_after_seconds=pipeline.orphan_after_seconds,
        ),
        reindex_log=MongoReindexLog(database, pipeline.checkpoint_collection, pipeline.consumer),
    )


def build_indexer(settings: IndexerSettings, *, save_checkpoint: bool = True, invalidation: bool = True) -> Indexer:
    """`open_indexer`, and cache invalidation as configured: the shared cache, CDN purges and the broker's
    fan-out (`invalidation=False`: none of them)."""
    schema = load_schema(settings.index.schema_path)
    indexer = open_indexer(settings, schema, save_checkpoint=save_checkpoint)
    if not invalidation:
        return indexer
    if not settings.redis.url:
        logger.warning("REDIS_URL is empty: the API's in-process caches are not reachable and expire by TTL only")
    cdn = settings.cdn
    if cdn.purger != "none":
        indexer.purges = PurgeQueue(
            create_purger_from(cdn), max_pending=cdn.purge_max_pending, repeat_seconds=cdn.purge_repeat_seconds
        )
        logger.info("CDN purges by surrogate key through {}", cdn.purger)
    broker = indexer.broker = create_broker(settings.broker.url) if settings.broker.url else None
    if settings.redis.url or indexer.purges is not None or broker is not None:
        namespace = cache_policy(settings).namespace
        indexer.cache = create_shared_cache(settings) if settings.redis.url else None
        indexer.invalidate = make_invalidator(
            indexer.cache,
            namespace=namespace,
            schema_fingerprint=schema.fingerprint,
            purges=indexer.purges,
            announce=_announcer(broker, namespace, schema.fingerprint) if broker is not None else None,
        )
    return indexer


def _announcer(
    broker: RabbitBroker, namespace: str, fingerprint: str
) -> Callable[[Sequence[str], int | None], Awaitable[None]]:
    """Publishes one batch's invalidation to every API process (fan-out), never raising."""

    async def announce(ids: Sequence[str], generation: int | None) -> None:
        event = invalidation_event(ids, generation, namespace=namespace, fingerprint=fingerprint)
        await publish(broker, event, exchange=INVALIDATIONS)

    return announce


def create_purger_from(cdn: CdnSettings) -> Purger:
    """The CDN purger of CDN_PURGER, from settings."""
    return create_purger(
        cdn.purger,
        url=cdn.purge_url,
        fastly_service_id=cdn.fastly_service_id,
        fastly_api_token=cdn.fastly_api_token.get_secret_value() if cdn.fastly_api_token else "",
        fastly_api_url=cdn.fastly_api_url,
        fastly_soft=cdn.fastly_soft_purge,
        cloudfront_distribution_id=cdn.cloudfront_distribution_id,
    )


async def read_indexer_status(settings: ProcessSettings, *, now: float) -> IndexerStatus:
    """The stream's status as `python -m indexer status` reports it, from fresh clients it closes."""
    indexer = open_indexer(settings, load_schema(settings.index.schema_path))
    try:
        status = await read_status(
            settings.indexer.consumer,
            source=indexer.source,
            checkpoints=indexer.checkpoints,
            now=now,
            max_lag_seconds=settings.indexer.status_max_lag_seconds,
            stall_seconds=settings.indexer.status_stall_seconds,
            backend=indexer.backend,
            timeout_seconds=settings.source.timeout_seconds + 1,
            orphan_after_seconds=settings.indexer.orphan_after_seconds,
        )
        if status["state"] != "source-unreachable" and indexer.reindex_log is not None:
            latest = await indexer.reindex_log.latest()
            if latest is not None:
                status["reindex"] = latest
        return status
    finally:
        await indexer.close()
