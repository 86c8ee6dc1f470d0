"""`TantivyBackend`: the `SearchBackend` on an embedded on-disk Tantivy index, behind an alias file.

Every Tantivy call runs in a worker thread with a timeout (`_run`), except shallow searches that need
nothing slow (`search`); Tantivy's errors become ours at that one choke point (`_classified`).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import orjson
import tantivy

from src.search.backends.base import BackendPage, BulkItemResult, IndexAction
from src.search.backends.tantivy.expansion import Busy
from src.search.backends.tantivy.paging import facet_counts, hit, search_page
from src.search.backends.tantivy.query import Expansion, build_tantivy_query
from src.search.backends.tantivy.schema import build_tantivy_schema
from src.search.backends.tantivy.store import BUILD_MARKER, IndexHandle, read_marker, write_batch, write_marker
from src.search.errors import IndexIncompatible, SearchRejected, SearchUnavailable
from src.search.models import Document
from src.search.query import BackendQuery
from src.search.schema import IndexSchema

_INLINE_MAX_DEPTH = 100
"""Pages ending at most this deep, without facets, may be searched on the event loop (see `search`)."""


class TantivyBackend:
    """`SearchBackend` on an embedded on-disk Tantivy index, behind an alias file."""

    kind = "tantivy"

    def __init__(
        self,
        data_dir: Path,
        *,
        schema: IndexSchema,
        alias: str,
        timeout_seconds: float,
        reload_interval_seconds: float = 1.0,
    ) -> None:
        self._dir = data_dir
        self._schema = schema
        self._tschema = build_tantivy_schema(schema)
        self._alias = alias
        self._timeout = timeout_seconds
        self._reload_interval = reload_interval_seconds
        self._handles: dict[str, IndexHandle] = {}
        self._vocabulary_fields = {
            "t": tuple(f"t_{spec.name}" for spec in schema.searchable),
            "x": tuple(f"x_{spec.name}" for spec in schema.searchable if spec.type == "keyword"),
        }
        self._current: str | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._write_lock = asyncio.Lock()

    @property
    def _alias_file(self) -> Path:
        return self._dir / f"{self._alias}.alias"

    async def _run[T](self, what: str, fn: Callable[[], T], *, budget_seconds: float | None = None) -> T:
        """The one choke point: run off the event loop, bounded, Tantivy errors become SearchUnavailable."""
        try:
            async with asyncio.timeout(budget_seconds or self._timeout):
                return await asyncio.to_thread(fn)
        except TimeoutError as err:
            raise SearchUnavailable(f"tantivy {what} timed out") from err
        except _TANTIVY_ERRORS as err:
            raise _classified(what, err) from err

    def _run_inline[T](self, what: str, fn: Callable[[], T]) -> T:
        """`_run` on the calling thread (the event loop) for work bounded by construction (no timeout)."""
        try:
            return fn()
        except _TANTIVY_ERRORS as err:
            raise _classified(what, err) from err

    def _handle(self, name: str) -> IndexHandle:
        with self._lock:
            handle = self._handles.get(name)
            if handle is None:
                path = self._dir / name
                if not (path / "meta.json").exists():
                    raise SearchUnavailable(f"tantivy index {name!r} does not exist")
                try:
                    handle = IndexHandle(path, self._tschema)
                except ValueError as err:
                    if "schema does not match" not in str(err):
                        raise
                    raise IndexIncompatible(
                        f"tantivy index {name!r} was built for another schema or by an older version: rebuild it "
                        "(python -m indexer load --recreate, or a reindex)"
                    ) from err
                self._handles[name] = handle
            return handle

    def _read_alias(self) -> str | None:
        try:
            return self._alias_file.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _reader(self) -> IndexHandle:
        """The aliased index, re-checking the alias file and reloading at most once per interval."""
        now = time.monotonic()
        if self._current is None or now - self._checked_at >= self._reload_interval:
            self._checked_at = now
            current = self._read_alias()
            if current is None:
                raise SearchUnavailable(f"tantivy alias {self._alias!r} does not exist; load data first")
            handle = self._handle(current)
            if current == self._current:
                handle.index.reload()
            self._current = current
        return self._handle(self._current)

    def _target(self, index: str | None) -> IndexHandle:
        return self._handle(index) if index else self._reader()

    # --- reads ---------------------------------------------------------------------------------

    async def search(self, query: BackendQuery) -> BackendPage:
        """Run one page of a search.

        A shallow page without facets costs under a millisecond here, most of it Python that holds the
        GIL whichever thread runs it (the plan, the typo expansion, the query's construction); a worker
        thread only adds its hand-offs, about a tenth of such a search on one core. So it runs on the
        event loop when nothing slow is due: the alias needs no re-check, the typo vocabularies are
        built, nothing holds their lock. Deeper pages and facets (costs that grow with the depth or the
        matches), alias re-checks and vocabulary rebuilds keep the worker thread and its timeout.
        """
        if not query.facets and query.offset + query.limit <= _INLINE_MAX_DEPTH:
            handle = self._fresh_reader()
            if handle is not None:
                try:
                    return self._run_inline("search", functools.partial(self._search_sync, query, handle))
                except Busy:
                    pass  # the worker thread rebuilds or waits
        return await self._run("search", functools.partial(self._search_sync, query))

    def _fresh_reader(self) -> IndexHandle | None:
        """The aliased index when it needs no re-check now (no file read, no reload, no lock), else None."""
        if self._current is None or time.monotonic() - self._checked_at >= self._reload_interval:
            return None
        return self._handles.get(self._current)

    def _search_sync(self, query: BackendQuery, inline: IndexHandle | None = None) -> BackendPage:
        """One page; `inline` is the fresh reader when on the event loop (then nothing may block: `Busy`)."""
        handle = inline or self._reader()
        searcher = handle.index.searcher()
        wait = inline is None

        def expand(group: str, word: str, max_edits: int) -> list[Expansion]:
            return handle.typos.expand(searcher, self._vocabulary_fields[group], word, max_edits, wait=wait)

        known: dict[str, Mapping[str, frozenset[str]] | None] = {}

        def holders(group: str, term: str) -> frozenset[str] | None:
            if group not in known:  # no vocabulary of joined names ("j"): never known
                fields = self._vocabulary_fields.get(group)
                known[group] = None if fields is None else handle.typos.holders(searcher, fields)
            terms = known[group]
            return None if terms is None else terms.get(term, frozenset())

        tquery = build_tantivy_query(query, self._schema, self._tschema, expand, holders)
        entries, total = search_page(searcher, tquery, query, self._schema, self._tschema)
        hits = tuple(hit(searcher, entry) for entry in entries)
        facets = facet_counts(searcher, tquery, query.facets, query.facet_size)
        return BackendPage(hits=hits, total=total, total_exact=True, facets=facets)

    async def get(self, doc_id: str) -> Document | None:
        """The stored document, or None."""
        return await self._run("get", functools.partial(self._get_sync, doc_id))

    def _get_sync(self, doc_id: str, index: str | None = None) -> Document | None:
        searcher = self._target(index).index.searcher()
        result = searcher.search(tantivy.Query.term_query(self._tschema, "id", doc_id), limit=1, count=False)
        if not result.hits:
            return None
        stored = searcher.doc(result.hits[0][1])
        return cast(Document, orjson.loads(cast(bytes, stored.get_first("_source"))))

    async def ping(self) -> None:
        """Raise SearchUnavailable unless the aliased index opens."""
        await self._run("ping", lambda: self._reader().index.searcher().num_docs)

    async def count(self, index: str | None = None) -> int:
        """Documents in `index` (default: the alias)."""
        return await self._run("count", lambda: int(self._target(index).index.searcher().num_docs))

    # --- index management ----------------------------------------------------------------------

    async def create_index(self) -> str:
        """Create `<alias>-<timestamp>` on disk from the schema."""
        name = f"{self._alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"

        def create() -> str:
            (self._dir / name).mkdir(parents=True)
            write_marker(self._dir / name, time.time())  # before any data: never an unmarked build
            handle = IndexHandle(self._dir / name, self._tschema)
            handle.writer().commit()  # an empty first commit writes meta.json: the index now exists
            with self._lock:
                self._handles[name] = handle
            return name

        return await self._run("create index", create, budget_seconds=60)

    async def point_alias(self, index: str) -> None:
        """Swap the alias file atomically (write a temporary file, fsync, os.replace)."""

        def swap() -> None:
            self._handle(index)  # refuse to point at an index that does not exist
            tmp = self._alias_file.with_suffix(".alias.tmp")
            with tmp.open("w", encoding="utf-8") as out:
                out.write(index)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._alias_file)
            self._checked_at = float("-inf")
            (self._dir / index / BUILD_MARKER).unlink(missing_ok=True)

        await self._run("point alias", swap, budget_seconds=60)

    async def heartbeat(self, index: str) -> None:
        """Rewrite `index`'s marker file with a heartbeat of now."""

        def beat() -> None:
            if not (self._dir / index).is_dir():
                raise SearchUnavailable(f"tantivy index {index!r} does not exist")
            write_marker(self._dir / index, time.time())

        await self._run("heartbeat", beat)

    async def mark_built(self, index: str) -> None:
        """Remove `index`'s marker file."""
        await self._run("mark built", lambda: (self._dir / index / BUILD_MARKER).unlink(missing_ok=True))

    async def building_indices(self) -> dict[str, float]:
        """Every `<alias>-*` folder holding a marker file, with its heartbeat; a folder with neither a marker
        nor an index in it (a process killed inside `create_index`) counts as building since its mtime."""

        def marked() -> dict[str, float]:
            found: dict[str, float] = {}
            for name in self._listing():
                folder = self._dir / name
                heartbeat = read_marker(folder)
                if heartbeat is None and not (folder / "meta.json").exists():
                    heartbeat = folder.stat().st_mtime
                if heartbeat is not None:
                    found[name] = heartbeat
            return found

        return await self._run("read build marks", marked)

    async def current_index(self) -> str | None:
        """The index the alias file names, or None."""
        return await self._run("read alias", self._read_alias)

    async def list_indices(self) -> list[str]:
        """Every `<alias>-*` index directory, oldest first."""

        return await self._run("list indices", self._listing)

    def _listing(self) -> list[str]:
        if not self._dir.exists():
            return []
        prefix = f"{self._alias}-"
        return sorted(p.name for p in self._dir.iterdir() if p.is_dir() and p.name.startswith(prefix))

    async def drop_index(self, index: str) -> None:
        """Delete an index directory unless the alias names it."""
        if index == await self.current_index():
            raise ValueError(f"refusing to drop {index!r}: the alias points at it")

        def drop() -> None:
            import shutil

            with self._lock:
                handle = self._handles.pop(index, None)
            if handle is not None:
                handle.close()
            shutil.rmtree(self._dir / index)

        await self._run("drop index", drop, budget_seconds=60)

    # --- writes --------------------------------------------------------------------------------

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        """Apply the actions and commit once; returns one result per action."""
        async with self._write_lock:
            return await self._run(
                "bulk",
                functools.partial(self._bulk_sync, list(actions), index),
                budget_seconds=max(60.0, self._timeout),
            )

    def _bulk_sync(self, actions: list[IndexAction], index: str | None) -> list[BulkItemResult]:
        return write_batch(self._target(index), actions, self._schema, self._tschema)

    async def refresh(self, index: str | None = None) -> None:
        """Commits are durable and visible at once; this only reloads the reader."""
        await self._run("refresh", lambda: self._target(index).index.reload())

    async def optimize(self, index: str) -> None:
        """Let the writer's background merges finish, then reload the reader on the merged segments.

        tantivy-py has no call to merge on demand, so the segments left are what Tantivy's merge policy
        chose; finishing its merges before the alias moves still serves fewer of them from the start.
        """
        handle = self._handle(index)

        def finish() -> None:
            handle.close()
            handle.index.reload()
            # Take the directory's writer lock again at once, as the copy held it: another process's
            # backend (a stream following the alias) may only write here once the alias has moved.
            handle.writer()

        async with self._write_lock:
            await self._run("optimize", finish, budget_seconds=600)

    async def close(self) -> None:
        """Finish merges and release the writers' directory locks."""

        def close_all() -> None:
            with self._lock:
                handles = list(self._handles.values())
                self._handles.clear()
            for handle in handles:
                handle.close()

        await self._run("close", close_all, budget_seconds=60)


_TANTIVY_ERRORS = (TypeError, ValueError, OSError, RuntimeError)


def _classified(what: str, err: Exception) -> SearchRejected | SearchUnavailable:
    """Our exception for one of `_TANTIVY_ERRORS` (the adapter's choke point, thread or not)."""
    if isinstance(err, TypeError):  # values of the wrong type for the index: this request's input
        return SearchRejected(f"tantivy refused the {what} request: {err}")
    return SearchUnavailable(f"tantivy {what} failed: {err}")
