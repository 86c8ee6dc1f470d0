"""Command line of the indexer jobs.

`load FILE` bulk-loads a JSON Lines file (optionally gzipped) into the configured backend.
`load --if-empty FILE` does nothing when the alias already exists (used by `make run`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tqdm import tqdm

from src.indexer.load import LoadSummary, load_file
from src.search.backends.factory import create_backend
from src.search.errors import SearchUnavailable
from src.search.schema import SchemaError, load_schema
from src.settings import Settings, get_settings


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
    return parser


async def run_load(args: argparse.Namespace, settings: Settings) -> int:
    """Run the `load` command; returns the exit code."""
    schema = load_schema(settings.index_schema_path)
    backend = create_backend(settings, schema)
    try:
        if args.if_empty and await backend.current_index() is not None:
            print(f"alias {settings.index_alias!r} already exists on {backend.kind}; nothing to load")
            return 0
        with tqdm(desc=f"loading {args.file.name}", unit="doc", file=sys.stderr, mininterval=0.5) as bar:

            def advance(count: int) -> None:
                bar.update(count)

            summary = await load_file(
                args.file,
                backend=backend,
                batch_size=args.batch_size or settings.load_batch_size,
                recreate=args.recreate,
                on_progress=advance,
            )
    finally:
        await backend.close()
    print_summary(summary, backend_kind=backend.kind, alias=settings.index_alias)
    return 0 if summary.documents or not summary.errors else 1


def print_summary(summary: LoadSummary, *, backend_kind: str, alias: str) -> None:
    """The end-of-load report on stdout."""
    for sample in summary.error_samples:
        print(f"error: {sample}", file=sys.stderr)
    action = "created" if summary.created else "updated"
    print(
        f"{action} {summary.index} (alias {alias!r}) on {backend_kind}: "
        f"{summary.documents} documents, {summary.errors} errors, {summary.seconds:.2f} seconds"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    settings = get_settings()
    args.file = args.file or settings.demo_data_path
    if not args.file.exists():
        print(f"error: {args.file} does not exist", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_load(args, settings))
    except (SchemaError, SearchUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
