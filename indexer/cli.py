"""Command line of the indexer jobs.

`stream`   tails the collection's change stream into the index forever (copies everything first when
           there is no checkpoint; reindexes by itself when the stream history was lost).
`reindex`  rebuilds the index from the collection into a new versioned index and swaps the alias.
`status`   prints the stream's health as JSON; exit code 0 ok, 1 behind, 2 stalled, 3 never started,
           4 source database unreachable, 5 search backend unreachable (each within MONGODB_TIMEOUT_SECONDS
           + 1 s).
`check`    preflight: one line per check (source reachable with its TLS and credentials, change streams on
           the collection, checkpoint and dead-letter collections writable, backend reachable); exit 1
           when any failed, states the stream repairs by itself are notes.
`load FILE` bulk-loads a JSON Lines file (optionally gzipped); `--if-empty` skips an existing alias.
`seed FILE` writes a JSON Lines file into the source collection (a local stack's demo data, which the
           stream then indexes); `--if-empty` skips a collection that holds documents.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

from loguru import logger
from prometheus_client import start_http_server
from tqdm import tqdm

from src.events import REINDEX_QUEUE, ReindexRequest
from src.indexer.errors import CollectionGone, ReindexFailed, SourceUnavailable
from src.indexer.factory import CLOSE_SECONDS, Indexer, build_indexer, read_indexer_status, source_connection
from src.indexer.load import LoadSummary, load_file
from src.indexer.preflight import PreflightTarget, preflight
from src.indexer.reindex import ReindexResult, run_reindex
from src.indexer.requests import ReindexRequests
from src.indexer.runner import run_stream
from src.indexer.seed import seed_collection
from src.indexer.status import EXIT_CODES
from src.observability.logging import configure_logging
from src.observability.metrics import BROKER_EVENTS
from src.observability.tracing import configure_tracing, flush_tracing
from src.search.backends.factory import create_backend
from src.search.errors import IndexIncompatible, SearchUnavailable
from src.search.schema import SchemaError, load_schema
from src.settings import IndexerSettings, settings_or_exit


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m indexer`."""
    parser = argparse.ArgumentParser(prog="python -m indexer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    load = commands.add_parser("load", help="bulk-load a JSON Lines file (.jsonl or .jsonl.gz)")
    load.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="JSON Lines file, one document per line, each with an id (default: DEMO_DATA_PATH)",
    )
    load.add_argument("--recreate", action="store_true", help="load into a new index and swap the alias at the end")
    load.add_argument("--if-empty", action="store_true", help="skip when the alias already exists")
    load.add_argument("--batch-size", type=int, default=None, help="documents per bulk request")
    seed = commands.add_parser("seed", help="write a JSON Lines file into the source collection (id becomes _id)")
    seed.add_argument("file", type=Path, nargs="?", help="JSON Lines file (default: DEMO_DATA_PATH)")
    seed.add_argument("--if-empty", action="store_true", help="skip when the collection holds documents")
    seed.add_argument("--batch-size", type=int, default=None, help="documents per bulk write")
    stream = commands.add_parser("stream", help="tail the change stream into the index until stopped")
    stream.add_argument(
        "--check", action="store_true", help="run the preflight first and exit 1 without streaming when it fails"
    )
    commands.add_parser("reindex", help="rebuild the index from the collection and swap the alias")
    commands.add_parser("status", help="report lag, checkpoint and token age; non-zero when unhealthy")
    commands.add_parser("check", help="preflight: source, change streams, writable collections, backend")
    return parser


async def run_stream_command(settings: IndexerSettings, *, stop: asyncio.Event | None = None) -> int:
    """Run `stream` until `stop` is set (by default: until SIGTERM/SIGINT); exit 3 when the collection is
    dropped or renamed. Once stopped it exits within INDEXER_SHUTDOWN_GRACE_SECONDS, whatever the stream
    was doing (the batch in flight gets all but CLOSE_SECONDS of it, closing the clients the rest)."""
    indexer = build_indexer(settings)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    if settings.indexer.metrics_port:
        start_http_server(settings.indexer.metrics_port, addr=settings.indexer.metrics_host)
    requests = await start_reindex_requests(indexer)
    try:
        await run_stream(
            source=indexer.source,
            sink=indexer.sink,
            checkpoints=indexer.checkpoints,
            invalidate=indexer.invalidate,
            stream_options=indexer.stream_options,
            reindex_options=indexer.reindex_options,
            stop=stop,
        )
    except CollectionGone as err:
        print(f"error: the stream stopped: {err}", file=sys.stderr)
        return 3
    finally:
        if requests is not None:
            await requests.close()
        await indexer.close(timeout_seconds=CLOSE_SECONDS)
    return 0


async def start_reindex_requests(indexer: Indexer) -> ReindexRequests | None:
    """With a broker: consume reindex requests (run beside the stream, one at a time), and start the broker
    the invalidation events go out through. Without one, say what is missing."""
    broker = indexer.broker
    if broker is None or indexer.reindex_log is None:
        logger.info("no BROKER_URL: reindexes run on the schedule only, API processes poll for invalidations")
        return None

    async def run() -> ReindexResult:
        return await run_reindex(
            source=indexer.source,
            sink=indexer.sink,
            checkpoints=indexer.checkpoints,
            invalidate=indexer.invalidate,
            options=indexer.reindex_options,
        )

    requests = ReindexRequests(run, indexer.reindex_log)

    @broker.subscriber(REINDEX_QUEUE)
    async def on_reindex_request(request: ReindexRequest) -> None:
        BROKER_EVENTS.labels("reindex", "consumed").inc()
        await requests.handle(request)

    try:
        await broker.start()
    except Exception as err:  # a broker that is down must not stop the stream: events are optional
        logger.warning(
            "broker unreachable ({}: {}): no reindex requests, no invalidation events", type(err).__name__, err
        )
        return None
    logger.info("broker connected: reindex requests consumed from {}, invalidations published", REINDEX_QUEUE.name)
    return requests


async def run_checked_stream(settings: IndexerSettings, *, check_first: bool) -> int:
    """`stream`, after the preflight when asked (a container's start command: a broken setup exits at once)."""
    if check_first and await run_check_command(settings) != 0:
        print("error: the preflight failed; not streaming", file=sys.stderr)
        return 1
    return await run_stream_command(settings)


async def run_reindex_command(settings: IndexerSettings) -> int:
    """Run `reindex` once with a progress bar; a running stream keeps its own checkpoint."""
    indexer = build_indexer(settings)
    try:
        existing = await indexer.checkpoints.load(settings.indexer.consumer)
        options = dataclasses.replace(indexer.reindex_options, save_checkpoint=existing is None)
        total = await indexer.source.count()
        with tqdm(total=total, desc="reindex", unit="doc", file=sys.stderr, mininterval=0.5) as bar:

            def advance(count: int) -> None:
                bar.update(count)

            result = await run_reindex(
                source=indexer.source,
                sink=indexer.sink,
                checkpoints=indexer.checkpoints,
                invalidate=indexer.invalidate,
                options=options,
                on_progress=advance,
            )
    except (ReindexFailed, CollectionGone) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        await indexer.close()
    print(
        f"reindexed into {result.index}: {result.documents} documents ({result.copied} copied, "
        f"{result.replayed} changes replayed) in {result.seconds:.2f} seconds; dropped {list(result.dropped)}"
        + (f"; dropped orphans of dead builds {list(result.orphans)}" if result.orphans else "")
    )
    return 0


async def run_status_command(settings: IndexerSettings, *, clock: Callable[[], float] = time.time) -> int:
    """Print the status as JSON and return its exit code."""
    status = await read_indexer_status(settings, now=clock())
    print(json.dumps(status))
    return EXIT_CODES[status["state"]]


async def run_check_command(settings: IndexerSettings, *, clock: Callable[[], float] = time.time) -> int:
    """Print one line per preflight check; exit 1 when any failed."""
    indexer = build_indexer(settings)
    target = PreflightTarget(
        source=redacted(settings.source.url),
        database=settings.source.database,
        collection=settings.source.collection,
        checkpoint_collection=settings.indexer.checkpoint_collection,
        dead_letter_collection=settings.indexer.dead_letter_collection,
        consumer=settings.indexer.consumer,
        flavor=settings.source.flavor,
        token_retention_seconds=settings.indexer.token_retention_seconds,
    )
    try:
        lines = await preflight(
            target, source=indexer.source, checkpoints=indexer.checkpoints, backend=indexer.backend, now=clock()
        )
    finally:
        await indexer.close()
    for line in lines:
        print(line.render())
    return 1 if any(line.state == "fail" for line in lines) else 0


def redacted(url: str) -> str:
    """`url` without the password of its user part."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


async def run_load(args: argparse.Namespace, settings: IndexerSettings) -> int:
    """Run the `load` command; returns the exit code."""
    schema = load_schema(settings.index.schema_path)
    backend = create_backend(settings, schema)
    try:
        if args.if_empty and await backend.current_index() is not None:
            try:
                await backend.count()
            except IndexIncompatible as err:  # built by an older version: `make run` rebuilds it
                print(f"{err}; rebuilding it from {args.file.name}", file=sys.stderr)
                args.recreate = True
            else:
                print(f"alias {settings.index.alias!r} already exists on {backend.kind}; nothing to load")
                return 0
        with tqdm(desc=f"loading {args.file.name}", unit="doc", file=sys.stderr, mininterval=0.5) as bar:

            def advance(count: int) -> None:
                bar.update(count)

            summary = await load_file(
                args.file,
                backend=backend,
                batch_size=args.batch_size or settings.load.batch_size,
                recreate=args.recreate,
                on_progress=advance,
                max_document_bytes=settings.indexer.max_document_bytes,
                heartbeat_seconds=settings.indexer.build_heartbeat_seconds,
                orphan_after_seconds=settings.indexer.orphan_after_seconds,
            )
    finally:
        await backend.close()
    print_summary(summary, backend_kind=backend.kind, alias=settings.index.alias)
    return 0 if summary.documents or not summary.errors else 1


async def run_seed(args: argparse.Namespace, settings: IndexerSettings) -> int:
    """Run the `seed` command; exit 1 when nothing could be written."""
    summary = await seed_collection(
        args.file,
        url=settings.source.url,
        database=settings.source.database,
        collection=settings.source.collection,
        batch_size=args.batch_size or settings.load.batch_size,
        timeout_seconds=settings.source.timeout_seconds,
        connection=source_connection(settings.source),
        if_empty=args.if_empty,
    )
    where = f"{settings.source.database}.{settings.source.collection}"
    if summary.skipped:
        print(f"{where} already holds documents; nothing to seed")
        return 0
    for sample in summary.error_samples:
        print(f"error: {sample}", file=sys.stderr)
    print(f"seeded {where}: {summary.documents} documents, {summary.errors} errors")
    return 0 if summary.documents or not summary.errors else 1


def print_summary(summary: LoadSummary, *, backend_kind: str, alias: str) -> None:
    """The end-of-load report on stdout."""
    for sample in summary.error_samples:
        print(f"error: {sample}", file=sys.stderr)
    if summary.orphans:
        print(f"dropped orphans of dead builds: {', '.join(summary.orphans)}")
    action = "created" if summary.created else "updated"
    print(
        f"{action} {summary.index} (alias {alias!r}) on {backend_kind}: "
        f"{summary.documents} documents, {summary.errors} errors, {summary.seconds:.2f} seconds"
    )


def main(argv: list[str] | None = None, *, clock: Callable[[], float] = time.time) -> int:
    """Entry point; returns the process exit code. `clock` is the wall clock `status` judges ages by."""
    args = build_parser().parse_args(argv)
    settings = settings_or_exit(IndexerSettings)
    configure_logging(settings.app.log_level, process="indexer")
    configure_tracing("search-indexer")
    try:
        return _run(args, settings, clock)
    finally:
        flush_tracing()


def _run(args: argparse.Namespace, settings: IndexerSettings, clock: Callable[[], float]) -> int:
    jobs: dict[str, Callable[[IndexerSettings], Coroutine[None, None, int]]] = {
        "stream": lambda config: run_checked_stream(config, check_first=bool(args.check)),
        "reindex": run_reindex_command,
        "status": lambda config: run_status_command(config, clock=clock),
        "check": lambda config: run_check_command(config, clock=clock),
    }
    if args.command in jobs:
        try:
            return asyncio.run(jobs[args.command](settings))
        except (SchemaError, SearchUnavailable, SourceUnavailable) as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    args.file = args.file or settings.load.demo_data_path
    if not args.file.exists():
        print(f"error: {args.file} does not exist", file=sys.stderr)
        return 2
    try:
        if args.command == "seed":
            return asyncio.run(run_seed(args, settings))
        return asyncio.run(run_load(args, settings))
    except (SchemaError, SearchUnavailable, SourceUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
