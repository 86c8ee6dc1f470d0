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
from typing import TYPE_CHECKING, cast

from loguru import logger
from pydantic import BaseModel, Field

from src.cache.base import Cache
from src.cache.keys import document_key, generation_key
from src.observability.metrics import BROKER_EVENTS

if TYPE_CHECKING:
    from faststream.rabbit import RabbitBroker, RabbitExchange, RabbitQueue

    INVALIDATIONS: RabbitExchange
    REINDEX_QUEUE: RabbitQueue

PUBLISH_TIMEOUT_SECONDS = 2.0
INVALIDATIONS_EXCHANGE = "search.invalidations"
REINDEX_QUEUE_NAME = "search.reindex"


def __getattr__(name: str) -> object:
    """INVALIDATIONS and REINDEX_QUEUE, built on first use: FastStream (and aio-pika) load only in a
    process that uses the broker, which keeps them out of a Lambda cold start without one."""
    if name not in ("INVALIDATIONS", "REINDEX_QUEUE"):  # other lookups (dunders, probes) import nothing
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from faststream.rabbit import ExchangeType, RabbitExchange, RabbitQueue

    built: dict[str, object] = {
        "INVALIDATIONS": RabbitExchange(INVALIDATIONS_EXCHANGE, type=ExchangeType.FANOUT, durable=True),
        "REINDEX_QUEUE": RabbitQueue(REINDEX_QUEUE_NAME, durable=True),
    }
    globals().update(built)  # built once: later reads find them as plain globals
    return built[name]


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


def _reindex_queue() -> RabbitQueue:
    return cast("RabbitQueue", __getattr__("REINDEX_QUEUE"))


def create_broker(url: str) -> RabbitBroker:
    """The FastStream broker on `url` (not connected until started)."""
    from faststream.rabbit import RabbitBroker

    return RabbitBroker(url, logger=None)


class LazyReindexPublisher:
    """Publishes reindex requests through a broker connected on the first request (a Lambda function:
    no connection, nor FastStream import, at a cold start; nothing subscribed, since a frozen function
    cannot consume)."""

    def __init__(self, url: str, *, queue: RabbitQueue | None = None) -> None:
        self._url = url
        self._queue = queue
        self._broker: RabbitBroker | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """Whether a request connected the broker already."""
        return self._broker is not None

    async def __call__(self, request: ReindexRequest) -> bool:
        async with self._lock:
            if self._broker is None:
                broker = create_broker(self._url)
                try:
                    async with asyncio.timeout(10):
                        await broker.start()
                        # Declared here too: a request published before any consumer declared the durable
                        # queue would be dropped by the default exchange.
                        await broker.declare_queue(self._queue or _reindex_queue())
                except Exception as err:  # the caller answers 503; the next request tries again
                    logger.warning(
                        "broker unreachable ({}: {}): reindex request not published", type(err).__name__, err
                    )
                    await broker.stop()
                    return False
                self._broker = broker
        return await publish(self._broker, request, queue=self._queue or _reindex_queue())

    async def close(self) -> None:
        """Disconnect, when connected."""
        if self._broker is not None:
            await self._broker.stop()
            self._broker = None


async def publish(broker: RabbitBroker, message: BaseModel, *, exchange: RabbitExchange | None = None,
                  queue: RabbitQueue | None = None) -> bool:  # fmt: skip
    """Publish, bounded by a short timeout; False (logged, counted) when the broker did not take it."""
    kind = "invalidation" if exchange is not None else "reindex"
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            if exchange is not None:
                await broker.publish(message.model_dump(), exchange=exchange)
            else:
                await broker.publish(message.model_dump(), queue=queue or _reindex_queue(), persist=True)
    except Exception as err:  # the broker's and the network's errors: the caller goes on
        BROKER_EVENTS.labels(kind, "publish_failed").inc()
        logger.warning("could not publish the {} event: {}: {}", kind, type(err).__name__, err)
        return False
    BROKER_EVENTS.labels(kind, "published").inc()
    return True


async def apply_invalidation(cache: Cache, event: Invalidation, *, namespace: str, schema_fingerprint: str) -> int:
    """Drop the event's entries from this process's in-process tier; returns how many keys were dropped.

    Events of another alias's namespace or schema are ignored. What dropping means is the cache's own
    (`Cache.drop_in_process`): a tiered cache touches only its near tier and takes the new generation
    as known at once; a memory-only cache (no Redis) deletes its entries and moves its own generation;
    Redis alone holds nothing here.
    """
    if event.namespace != namespace or event.schema_fingerprint != schema_fingerprint:
        return 0
    keys = [document_key(namespace, schema_fingerprint, doc_id) for doc_id in event.ids]
    await cache.drop_in_process(keys, generation_key(namespace, schema_fingerprint), event.generation)
    BROKER_EVENTS.labels("invalidation", "applied").inc()
    return len(keys)


def invalidation_event(ids: Sequence[str], generation: int | None, *, namespace: str, fingerprint: str) -> Invalidation:
    """The event for one acknowledged batch."""
    return Invalidation(namespace=namespace, schema_fingerprint=fingerprint, ids=list(ids), generation=generation)
