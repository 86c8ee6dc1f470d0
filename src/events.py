"""Events through FastStream on RabbitMQ (optional: `BROKER_URL`).

- **Invalidations** (fan-out exchange `search.invalidations`): after each acknowledged batch the indexer
  publishes the changed ids and the new search generation; every API process has an exclusive queue
  bound to the exchange and drops those entries from its in-process tier at once (instead of serving
  them for up to `CACHE_NEAR_TTL_SECONDS` and the generation for up to `CACHE_GENERATION_POLL_MS`).
- **Reindex requests** (durable queue `search.reindex`): `POST /v1/admin/reindex` publishes one; the
  indexer stream consumes it and runs the reindex (see src/indexer/requests.py).

Without `BROKER_URL` neither exists: the in-process tier expires by TTL and polls the generation, and
only the schedule reindexes; the API and the indexer say so in their log at start. Publishing never
blocks the caller for long (a short timeout) and its failures are logged and counted, never raised
into the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from loguru import logger
from pydantic import BaseModel, Field

from src.cache.base import Cache
from src.cache.keys import document_key, generation_key
from src.cache.memory import MemoryCache
from src.cache.tiered import TieredCache
from src.observability.metrics import BROKER_EVENTS

INVALIDATIONS = RabbitExchange("search.invalidations", type=ExchangeType.FANOUT, durable=True)
REINDEX_QUEUE = RabbitQueue("search.reindex", durable=True)
PUBLISH_TIMEOUT_SECONDS = 2.0


class Invalidation(BaseModel):
    """Documents changed in one acknowledged batch, and the search generation after it."""

    namespace: str
    schema_fingerprint: str
    ids: list[str] = Field(default_factory=list, max_length=100_000)
    generation: int | None = None


class ReindexRequest(BaseModel):
    """An operator's request for a full reindex."""

    request_id: str = Field(min_length=1, max_length=64)
    requested_by: str | None = None
    requested_at: float = Field(default_factory=time.time)


def create_broker(url: str) -> RabbitBroker:
    """The FastStream broker on `url` (not connected until started)."""
    return RabbitBroker(url, logger=None)


async def publish(broker: RabbitBroker, message: BaseModel, *, exchange: RabbitExchange | None = None,
                  queue: RabbitQueue | None = None) -> bool:  # fmt: skip
    """Publish, bounded by a short timeout; False (logged, counted) when the broker did not take it."""
    kind = "invalidation" if exchange is not None else "reindex"
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            if exchange is not None:
                await broker.publish(message.model_dump(), exchange=exchange)
            else:
                await broker.publish(message.model_dump(), queue=queue or REINDEX_QUEUE, persist=True)
    except Exception as err:  # the broker's and the network's errors: the caller goes on
        BROKER_EVENTS.labels(kind, "publish_failed").inc()
        logger.warning("could not publish the {} event: {}: {}", kind, type(err).__name__, err)
        return False
    BROKER_EVENTS.labels(kind, "published").inc()
    return True


async def apply_invalidation(cache: Cache, event: Invalidation, *, namespace: str, schema_fingerprint: str) -> int:
    """Drop the event's entries from this process's in-process tier; returns how many keys were dropped.

    Events of another alias's namespace or schema are ignored. With a tiered cache only the near tier
    is touched (the indexer already deleted the shared entries) and the new generation is taken as
    known at once; a memory-only cache (no Redis) deletes its entries and moves its own generation.
    """
    if event.namespace != namespace or event.schema_fingerprint != schema_fingerprint:
        return 0
    keys = [document_key(namespace, schema_fingerprint, doc_id) for doc_id in event.ids]
    generation = generation_key(namespace, schema_fingerprint)
    if isinstance(cache, TieredCache):
        await cache.near.delete(*keys)
        if event.generation is not None:
            cache.learn_generation(generation, event.generation)
    elif isinstance(cache, MemoryCache):
        await cache.delete(*keys)
        await cache.incr(generation)
    BROKER_EVENTS.labels("invalidation", "applied").inc()
    return len(keys)


def invalidation_event(ids: Sequence[str], generation: int | None, *, namespace: str, fingerprint: str) -> Invalidation:
    """The event for one acknowledged batch."""
    return Invalidation(namespace=namespace, schema_fingerprint=fingerprint, ids=list(ids), generation=generation)
