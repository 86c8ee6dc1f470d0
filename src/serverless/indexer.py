"""The indexer as an AWS Lambda function for the DocumentDB change-stream event source.

Handler path (part of the deployment contract): `src.serverless.indexer.handler`.

Each invocation is one batch of the stream, written through the same path as `python -m indexer
stream`: the `to_change_event` transform (same external versions from the cluster time), the
`Sink` (bulk with retries; a document the engine refuses for good goes to the dead-letter
collection), the consumer's checkpoint (so `indexer status` reports the lag, and the container stream
can take over where the function stopped), then cache invalidation and the CDN purge.

Failure model (the DocumentDB event source has no partial-batch response):
- a poison document, or a record that is not a readable change event, is dead-lettered and the batch
  succeeds;
- a transient failure (the engine or DocumentDB unreachable past the retries) raises, so the
  invocation fails and Lambda retries the whole batch: safe, because writes are idempotent by id and
  versioned by cluster time (a replayed older event never overwrites a newer document);
- drop, rename and invalidate events are logged as errors, counted (`CollectionGone`, alarmed on) and
  skipped: only a reindex can follow them.

The clients live for the execution environment (one event loop kept for it), so a warm invocation
opens no connection. Before returning, the invocation waits until its CDN purges (and their repeat)
were sent: a frozen environment would send nothing.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from loguru import logger

from src.indexer.errors import SourceUnavailable
from src.indexer.factory import Indexer, build_indexer
from src.indexer.models import DeadLetter
from src.indexer.pipeline import apply_batch
from src.indexer.retry import retrying
from src.serverless.docdb import EVENT_SOURCE, Conversion, DocDbEvent, to_change_batch
from src.serverless.emf import EmfRecord, Unit, emf_record, write_record
from src.serverless.environment import PerEnvironment
from src.serverless.secrets import load_secrets
from src.settings import IndexerSettings, get_indexer_settings


class BatchSummary(TypedDict):
    """What one invocation did (the function's result; the event source ignores it, logs keep it)."""

    events: int
    """Change events in the batch."""
    written: int
    """Documents the index acknowledged (upserts and deletes)."""
    dead_lettered: int
    """Documents refused for good and records that could not be read, now in the dead-letter collection."""
    skipped: int
    """drop, rename or invalidate events (the collection is gone: a reindex is needed)."""
    lag_seconds: float | None
    """Wall-clock age of the batch's last change."""


class UnexpectedEvent(ValueError):
    """The function was invoked with something other than a DocumentDB event-source batch."""


class AliasMissing(RuntimeError):
    """The index alias does not exist yet: the first reindex (the ECS task) has not run. The invocation
    fails, so Lambda keeps the batch and retries it (nothing is lost meanwhile)."""


async def handle_batch(
    event: DocDbEvent, *, indexer: Indexer, purge_timeout_seconds: float, now: Callable[[], float] = time.time
) -> BatchSummary:
    """Apply one event-source batch (see the module docstring for what raises)."""
    if event.get("eventSource") != EVENT_SOURCE or not isinstance(event.get("events"), list):
        raise UnexpectedEvent(f"not a DocumentDB event-source batch (eventSource={event.get('eventSource')!r})")
    sink, consumer = indexer.sink, indexer.sink.consumer
    if await indexer.backend.current_index() is None:
        raise AliasMissing("the index alias does not exist: run the reindex task once (see docs/deploying.md)")
    previous = await retrying(
        lambda: indexer.checkpoints.load(consumer), policy=sink.retry, transient=(SourceUnavailable,)
    )
    conversion = to_change_batch(event["events"], previous=previous)
    await _dead_letter_unreadable(conversion, indexer=indexer, at=now())
    for message in conversion.unsupported:
        logger.error("DocumentDB event source: {}; skipped, a reindex is needed", message)
    rejected: set[str] = set()
    checkpoint = await apply_batch(
        conversion.batch,
        sink=sink,
        checkpoints=indexer.checkpoints,
        invalidate=indexer.invalidate,
        read_at=now(),
        rejected=rejected,
    )
    if indexer.purges is not None and not await indexer.purges.drain(timeout_seconds=purge_timeout_seconds):
        logger.warning("CDN purges still pending after {:.0f} s (they expire by s-maxage)", purge_timeout_seconds)
    events = len(conversion.batch.events)
    lag = max(0.0, now() - checkpoint.cluster_time.time) if events and checkpoint.cluster_time else None
    return BatchSummary(
        events=events + len(conversion.unreadable) + len(conversion.unsupported),
        written=events - len(rejected),
        dead_lettered=len(rejected) + len(conversion.unreadable),
        skipped=len(conversion.unsupported),
        lag_seconds=lag,
    )


async def _dead_letter_unreadable(conversion: Conversion, *, indexer: Indexer, at: float) -> None:
    for item in conversion.unreadable:
        logger.warning("unreadable change event for {}, dead-lettered: {}", item.doc_id, item.reason)
        letter: DeadLetter = {
            "consumer": indexer.sink.consumer,
            "doc_id": item.doc_id,
            "reason": item.reason,
            "version": 0,
            "document": None,
            "at": at,
        }
        await retrying(
            functools.partial(indexer.sink.dead_letters.put, letter),
            policy=indexer.sink.retry,
            transient=(SourceUnavailable,),
        )


def batch_record(summary: BatchSummary, *, duration_ms: float, failed: bool, now_ms: int) -> EmfRecord:
    """The indexer function's EMF record of one invocation (the CDK app's alarms use these metrics)."""
    metrics: dict[str, tuple[float, Unit]] = {
        "Events": (summary["events"], "Count"),
        "Written": (summary["written"], "Count"),
        "DeadLetters": (summary["dead_lettered"], "Count"),
        "CollectionGone": (summary["skipped"], "Count"),
        "Errors": (1 if failed else 0, "Count"),
        "BatchDuration": (round(duration_ms, 3), "Milliseconds"),
    }
    if summary["lag_seconds"] is not None:
        metrics["Lag"] = (round(summary["lag_seconds"], 3), "Seconds")
    return emf_record(dimensions={"Function": "indexer"}, metrics=metrics, timestamp_ms=now_ms)


@dataclass(slots=True)
class IndexerRuntime:
    """The indexer's clients and the event loop they live on, for one execution environment."""

    runner: asyncio.Runner
    indexer: Indexer
    settings: IndexerSettings

    def __call__(self, event: DocDbEvent) -> BatchSummary:
        started = time.perf_counter()
        empty = BatchSummary(events=len(event.get("events") or []), written=0, dead_lettered=0, skipped=0,
                             lag_seconds=None)  # fmt: skip
        try:
            summary = self.runner.run(
                handle_batch(event, indexer=self.indexer, purge_timeout_seconds=self.purge_timeout_seconds)
            )
        except BaseException:
            elapsed = (time.perf_counter() - started) * 1000
            write_record(batch_record(empty, duration_ms=elapsed, failed=True, now_ms=int(time.time() * 1000)))
            raise
        elapsed = (time.perf_counter() - started) * 1000
        write_record(batch_record(summary, duration_ms=elapsed, failed=False, now_ms=int(time.time() * 1000)))
        logger.bind(**summary).info("DocumentDB batch applied")
        return summary

    @property
    def purge_timeout_seconds(self) -> float:
        """How long an invocation waits for its purges: their repeat plus a few seconds of sending."""
        return self.settings.cdn.purge_repeat_seconds + 5.0

    def close(self) -> None:
        """Close the clients and the loop (tests; Lambda simply ends the environment)."""
        try:
            self.runner.run(self.indexer.close())
        finally:
            self.runner.close()


def build_runtime(settings: IndexerSettings | None = None) -> IndexerRuntime:
    """The indexer's collaborators from settings (as the stream builds them), on a loop of their own."""
    from src.observability.logging import configure_logging

    if settings is None:
        load_secrets(os.environ)  # SECRETS_FROM: Secrets Manager values, before the settings are read
    config = settings or get_indexer_settings()
    configure_logging(config.app.log_level, process="indexer")
    runner = asyncio.Runner()

    async def build() -> Indexer:
        indexer = build_indexer(config)  # inside the loop: the clients bind to it
        if indexer.broker is not None:  # invalidation events go out through it (optional, as in the stream)
            try:
                async with asyncio.timeout(10):
                    await indexer.broker.start()
            except Exception as err:
                logger.warning("broker unreachable ({}: {}): no invalidation events", type(err).__name__, err)
        return indexer

    return IndexerRuntime(runner=runner, indexer=runner.run(build()), settings=config)


_runtime = PerEnvironment(build_runtime)
runtime = _runtime.get
"""This execution environment's runtime, built on first use."""
reset = _runtime.reset
"""Close the runtime (the next invocation builds a new one from fresh settings): tests and benchmarks."""


def handler(event: DocDbEvent, context: object) -> BatchSummary:
    """The Lambda entry point: one DocumentDB event-source batch."""
    return runtime()(event)
