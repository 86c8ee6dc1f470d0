"""The long-running stream job: copy first when there is no checkpoint, tail, recover, repeat.

- No checkpoint: a full reindex (which notes the position, copies, replays and saves the checkpoint).
- Lost history (the resume point expired): logged loudly, a full reindex, then tailing again.
- An index built by an older version that cannot take this version's writes (IndexIncompatible): logged
  loudly, a full reindex into a new index of the current layout, then tailing again.
- Source or backend trouble: the stream restarts from its last checkpoint after a growing pause.
- The collection dropped or renamed: CollectionGone propagates and the job stops with its message.
- `stop` set: the job returns within `StreamOptions.shutdown_grace_seconds` whatever it is doing (a batch
  the engine keeps refusing, a reindex, a pause): past the grace it is cancelled, and what it had not
  checkpointed is read again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Callable

from loguru import logger

from src.indexer.checkpoint import CheckpointStore
from src.indexer.errors import HistoryLost, SourceUnavailable
from src.indexer.pipeline import Invalidate, Sink, StreamOptions, stream_once
from src.indexer.reindex import ReindexOptions, ReindexResult, run_reindex
from src.indexer.source import ChangeSource
from src.observability.metrics import INDEXER_FAILURES
from src.search.errors import IndexIncompatible, SearchUnavailable

_REINDEX_CAUSES: dict[type[Exception], tuple[str, str]] = {
    HistoryLost: ("history_lost", "CHANGE STREAM HISTORY LOST"),
    IndexIncompatible: ("index_incompatible", "THE INDEX CANNOT TAKE THIS VERSION'S WRITES"),
}
"""What a full reindex recovers from: (failure label, log line)."""


async def run_stream(
    *,
    source: ChangeSource,
    sink: Sink,
    checkpoints: CheckpointStore,
    invalidate: Invalidate | None,
    stream_options: StreamOptions,
    reindex_options: ReindexOptions,
    stop: asyncio.Event,
    draw: Callable[[], float] = random.random,
) -> None:
    """Keep the index in sync with the collection until `stop` is set (then return within the grace)."""
    job = asyncio.create_task(
        _follow(
            source=source,
            sink=sink,
            checkpoints=checkpoints,
            invalidate=invalidate,
            stream_options=stream_options,
            reindex_options=reindex_options,
            stop=stop,
            draw=draw,
        )
    )
    try:
        await _until_stopped(job, stop, stream_options.shutdown_grace_seconds)
    finally:
        job.cancel()  # when this call itself is cancelled; a no-op on a finished job
        await asyncio.gather(job, return_exceptions=True)


async def _until_stopped(job: asyncio.Task[None], stop: asyncio.Event, grace_seconds: float) -> None:
    """Wait for `job`; once `stop` is set, give it `grace_seconds` more, then cancel it. Re-raises what
    ended it otherwise."""
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({job, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not job.done():
            await asyncio.wait({job}, timeout=grace_seconds)
    finally:
        stopping.cancel()
        await asyncio.gather(stopping, return_exceptions=True)
    if not job.done():
        logger.warning(
            "the stream was still busy {:g} s after the stop; cancelled (what it had not checkpointed is read "
            "again at the next start)",
            grace_seconds,
        )
        return
    job.result()


async def _follow(
    *,
    source: ChangeSource,
    sink: Sink,
    checkpoints: CheckpointStore,
    invalidate: Invalidate | None,
    stream_options: StreamOptions,
    reindex_options: ReindexOptions,
    stop: asyncio.Event,
    draw: Callable[[], float],
) -> None:
    failures = 0
    while not stop.is_set():
        try:
            checkpoint = await checkpoints.load(stream_options.consumer)
            if checkpoint is None:
                logger.info("no checkpoint for {}: copying the whole collection first", stream_options.consumer)
                checkpoint = (await _reindex(source, sink, checkpoints, invalidate, reindex_options)).checkpoint
            failures = 0
            await stream_once(
                checkpoint,
                source=source,
                sink=sink,
                checkpoints=checkpoints,
                invalidate=invalidate,
                options=stream_options,
                stop=stop,
            )
        except (HistoryLost, IndexIncompatible) as err:
            kind, what = _REINDEX_CAUSES[type(err)]
            INDEXER_FAILURES.labels(stream_options.consumer, kind).inc()
            logger.error("{} ({}): running a full reindex, then resuming", what, err)
            await _reindex(source, sink, checkpoints, invalidate, reindex_options)
        except (SourceUnavailable, SearchUnavailable) as err:
            failures += 1
            INDEXER_FAILURES.labels(stream_options.consumer, "restart").inc()
            pause = (
                stream_options.retry.delay(min(failures, 8), 0.5 + draw() / 2) + stream_options.restart_pause_seconds
            )
            logger.warning("stream interrupted ({}); restarting from the checkpoint in {:.1f} s", err, pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)


async def _reindex(
    source: ChangeSource,
    sink: Sink,
    checkpoints: CheckpointStore,
    invalidate: Invalidate | None,
    options: ReindexOptions,
) -> ReindexResult:
    result = await run_reindex(
        source=source,
        sink=sink,
        checkpoints=checkpoints,
        invalidate=invalidate,
        options=dataclasses.replace(options, save_checkpoint=True),
    )
    logger.info(
        "reindex done: {} documents in {} ({:.1f} s, {} replayed)",
        result.documents,
        result.index,
        result.seconds,
        result.replayed,
    )
    return result
