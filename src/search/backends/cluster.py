"""`ClusterBackend`: the `SearchBackend` of a Query DSL engine cluster, whatever its client.

Elasticsearch and OpenSearch answer the same requests (src/search/backends/querydsl.py builds them)
through different clients with different call shapes and exceptions. This class holds everything the
two share (index naming, the atomic alias swap, build marks, bulk assembly, paging) and asks each engine's
subclass for a dozen small client calls, each a plain-dict request in and a plain-dict answer out,
plus `_classify`, which turns its client's exceptions into ours at the one choke point,
`_translate_errors`.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import cast

from src.search.backends.base import BackendPage, BulkItemResult, IndexAction
from src.search.backends.querydsl import (
    ESBody,
    build_bulk_operations,
    build_mapping,
    build_search_body,
    bulk_item_result,
    parse_search_response,
)
from src.search.backends.refusals import request_bytes, too_large_alone
from src.search.errors import EnginePressure, SearchRejected, SearchUnavailable
from src.search.models import Document
from src.search.query import BackendQuery
from src.search.schema import IndexSchema

ADMIN_TIMEOUT_SECONDS = 60.0
"""Index creation, alias swaps, deletes and refreshes may take longer than a search."""
FORCE_MERGE_MAX_BYTES = 5 * 1024**3
"""A freshly built index up to this size (its primaries' store) is merged into one segment before its
alias points at it; a bigger one keeps the engine's own merging. Lucene's merge policy produces
segments of at most 5 GB and leaves larger ones out of later merges until a fifth of them is deleted,
so a larger forced segment would carry its updates' dead weight for long (Elasticsearch's force-merge
advice)."""
FORCE_MERGE_TIMEOUT_SECONDS = 900.0
"""How long a load or reindex waits for the merge; past that the engine finishes it in the background."""
META_KEY = "search_api"
"""Our key in an index mapping's `_meta`: `{"state": "building", "heartbeat": <epoch>}` while a load or
reindex builds the index, `{"state": "built", "built_at": <epoch>}` once its alias moved onto it."""


def building_meta(heartbeat: float) -> ESBody:
    """The `_meta` of an index being built."""
    return {META_KEY: {"state": "building", "heartbeat": heartbeat}}


def building_heartbeat(meta: object) -> float | None:
    """The heartbeat in an index's `_meta` when it says building, else None (pure)."""
    if not isinstance(meta, dict):
        return None
    ours = meta.get(META_KEY)
    if not isinstance(ours, dict) or ours.get("state") != "building":
        return None
    heartbeat = ours.get("heartbeat")
    return float(heartbeat) if isinstance(heartbeat, int | float) else 0.0  # unreadable: as old as can be


class ClusterBackend[Client](ABC):
    """A `SearchBackend` on an engine cluster behind an alias; subclasses supply the client calls."""

    kind: str

    def __init__(
        self,
        client: Client,
        *,
        schema: IndexSchema,
        alias: str,
        timeout_seconds: float,
        replicas: int = 0,
        refresh_interval: str = "1s",
    ) -> None:
        self._client = client
        self._schema = schema
        self._alias = alias
        self._timeout = timeout_seconds
        self._replicas = replicas
        self._refresh_interval = refresh_interval
        self._fields_added: set[str] = set()
        """Indices (or the alias) this process added its fields to (an index built by an older version)."""

    # --- what each engine's client does ------------------------------------------------------------

    _client_errors: tuple[type[Exception], ...]
    """The client's own exception classes: everything `_classify` turns into ours."""

    @abstractmethod
    def _classify(self, err: Exception, what: str, *, read: bool) -> SearchUnavailable | SearchRejected:
        """One of the client's exceptions as ours.

        Connection errors, timeouts, 429 and 5xx are SearchUnavailable (they feed the breaker and
        retries); on a read, the engine refusing that request's input is SearchRejected. Writes keep
        every failure retryable, a 413 or 429 as EnginePressure (see `refusals.PRESSURE_STATUSES`);
        `bulk` reports per-document refusals itself.
        """

    @asynccontextmanager
    async def _translate_errors(
        self, what: str, *, budget_seconds: float | None = None, read: bool = False
    ) -> AsyncIterator[None]:
        """The one choke point: a call past its budget, or any client exception, becomes ours."""
        try:
            async with asyncio.timeout(budget_seconds or self._timeout * 2):
                yield
        except TimeoutError as err:
            raise SearchUnavailable(f"{self.kind} {what} timed out") from err
        except self._client_errors as err:
            raise self._classify(err, what, read=read) from err

    @abstractmethod
    async def _search(self, body: ESBody) -> ESBody:
        """POST <alias>/_search."""

    @abstractmethod
    async def _get_source(self, doc_id: str) -> ESBody | None:
        """The `_source` of one document of the alias, or None when there is no such document."""

    @abstractmethod
    async def _alias_exists(self) -> bool:
        """HEAD _alias/<alias>."""

    @abstractmethod
    async def _create_index(self, name: str, mapping: ESBody) -> None:
        """Create the index and wait until it is at least yellow."""

    @abstractmethod
    async def _aliased_indices(self) -> list[str]:
        """The indices the alias points at (none when it does not exist)."""

    @abstractmethod
    async def _update_aliases(self, actions: list[ESBody]) -> None:
        """POST _aliases with these actions, atomically."""

    @abstractmethod
    async def _indices(self, pattern: str) -> list[str]:
        """The names of the indices matching the pattern (none is not an error)."""

    @abstractmethod
    async def _delete_index(self, index: str) -> None:
        """DELETE <index>."""

    @abstractmethod
    async def _put_meta(self, index: str, meta: ESBody) -> None:
        """PUT <index>/_mapping with this `_meta` (it replaces the whole `_meta`)."""

    @abstractmethod
    async def _metas(self, pattern: str) -> dict[str, object]:
        """The `_meta` of each index matching the pattern that has one (none is not an error)."""

    @abstractmethod
    async def _bulk(self, operations: list[ESBody], *, timeout_seconds: float) -> ESBody:
        """POST _bulk; the response with its `items`."""

    @abstractmethod
    async def _put_mapping(self, index: str, properties: ESBody) -> None:
        """PUT <index>/_mapping with these properties (fields are only ever added); IndexIncompatible when the
        engine refuses them (a field of the same name held differently)."""

    @abstractmethod
    async def _refresh(self, index: str) -> None:
        """POST <index>/_refresh."""

    @abstractmethod
    async def _count(self, index: str) -> int:
        """GET <index>/_count."""

    @abstractmethod
    async def _store_bytes(self, index: str) -> int:
        """GET <index>/_stats/store: the primaries' store size in bytes."""

    @abstractmethod
    async def _force_merge(self, index: str, *, timeout_seconds: float) -> None:
        """POST <index>/_forcemerge?max_num_segments=1, waiting for it."""

    @abstractmethod
    async def close(self) -> None:
        """Close the client's connections."""

    # --- the SearchBackend contract, once for every engine -----------------------------------------

    async def search(self, query: BackendQuery) -> BackendPage:
        """Run one page of a search against the alias."""
        body = build_search_body(query, self._schema)
        async with self._translate_errors("search", read=True):
            response = await self._search(body)
        return parse_search_response(response, query)

    async def get(self, doc_id: str) -> Document | None:
        """The stored document, or None."""
        async with self._translate_errors("get", read=True):
            source = await self._get_source(doc_id)
        return None if source is None else cast(Document, source["doc"])

    async def ping(self) -> None:
        """Raise SearchUnavailable unless the cluster answers and the alias exists."""
        async with self._translate_errors("ping"):
            exists = await self._alias_exists()
        if not exists:
            raise SearchUnavailable(f"{self.kind} alias {self._alias!r} does not exist; load data first")

    async def create_index(self) -> str:
        """Create `<alias>-<timestamp>` from the schema."""
        name = f"{self._alias}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
        mapping = build_mapping(self._schema, replicas=self._replicas, refresh_interval=self._refresh_interval)
        mapping["mappings"]["_meta"] = building_meta(time.time())  # one request: never an unmarked build
        async with self._translate_errors("create index", budget_seconds=ADMIN_TIMEOUT_SECONDS):
            await self._create_index(name, mapping)
        return name

    async def point_alias(self, index: str) -> None:
        """Move the alias onto `index` in one atomic aliases update, then clear its building mark."""
        async with self._translate_errors("point alias", budget_seconds=ADMIN_TIMEOUT_SECONDS):
            current = await self._aliased_indices()
            actions: list[ESBody] = [{"remove": {"index": old, "alias": self._alias}} for old in current]
            actions.append({"add": {"index": index, "alias": self._alias, "is_write_index": True}})
            await self._update_aliases(actions)
        await self.mark_built(index)

    async def heartbeat(self, index: str) -> None:
        """Mark `index` building with a heartbeat of now (its mapping's `_meta`)."""
        async with self._translate_errors("heartbeat", budget_seconds=ADMIN_TIMEOUT_SECONDS):
            await self._put_meta(index, building_meta(time.time()))

    async def mark_built(self, index: str) -> None:
        """Replace the building mark in `index`'s `_meta` by a built one."""
        async with self._translate_errors("mark built", budget_seconds=ADMIN_TIMEOUT_SECONDS):
            await self._put_meta(index, {META_KEY: {"state": "built", "built_at": time.time()}})

    async def building_indices(self) -> dict[str, float]:
        """Every `<alias>-*` index whose `_meta` says building, with its heartbeat."""
        async with self._translate_errors("read build marks"):
            metas = await self._metas(f"{self._alias}-*")
        found = {name: building_heartbeat(meta) for name, meta in metas.items()}
        return {name: heartbeat for name, heartbeat in sorted(found.items()) if heartbeat is not None}

    async def current_index(self) -> str | None:
        """The index behind the alias, or None."""
        async with self._translate_errors("get alias"):
            indices = await self._aliased_indices()
        return indices[-1] if indices else None

    async def list_indices(self) -> list[str]:
        """Every `<alias>-*` index, oldest first (timestamps sort lexically)."""
        async with self._translate_errors("list indices"):
            return sorted(await self._indices(f"{self._alias}-*"))

    async def drop_index(self, index: str) -> None:
        """Delete a versioned index unless the alias points at it."""
        if index == await self.current_index():
            raise ValueError(f"refusing to drop {index!r}: the alias points at it")
        async with self._translate_errors("drop index", budget_seconds=ADMIN_TIMEOUT_SECONDS):
            await self._delete_index(index)

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        """One bulk request; per-document results, rejected documents reported rather than raised.

        A request of one operation that the engine refuses for that operation's own size (a 413, or
        indexing pressure the operation can never fit in: see `refusals.too_large_alone`) is that
        document's refusal for good; a larger request refused as a whole raises EnginePressure.
        """
        target = index or self._alias
        operations, sent, results = build_bulk_operations(actions, target=target, schema=self._schema)
        if not operations:
            return [results[position] for position in range(len(actions))]
        budget = max(30.0, self._timeout * 10)
        try:
            async with self._translate_errors("bulk", budget_seconds=budget):
                response = await self._bulk(operations, timeout_seconds=budget)
                if target not in self._fields_added and any(_missing_field(item) for item in response["items"]):
                    # An index built by an older version lacks fields this one writes (the mapping is strict):
                    # add them once, then send the batch again (writes are idempotent and versioned).
                    await self._add_fields(target)
                    response = await self._bulk(operations, timeout_seconds=budget)
        except EnginePressure as err:
            if len(sent) != 1 or not too_large_alone(err.status, err.reason, request_bytes(operations)):
                raise
            results[sent[0]] = self._too_large(actions[sent[0]].doc_id, err.status, err.reason)
            return [results[position] for position in range(len(actions))]
        for position, item in zip(sent, response["items"], strict=True):
            result = bulk_item_result(actions[position].doc_id, item)
            if (
                result.pressure
                and len(sent) == 1
                and too_large_alone(429, result.error or "", request_bytes(operations))
            ):
                result = self._too_large(result.doc_id, 429, result.error or "")
            results[position] = result
        return [results[position] for position in range(len(actions))]

    async def _add_fields(self, target: str) -> None:
        properties = build_mapping(self._schema, replicas=self._replicas, refresh_interval=self._refresh_interval)
        await self._put_mapping(target, properties["mappings"]["properties"])
        self._fields_added.add(target)

    def _too_large(self, doc_id: str, status: int, reason: str) -> BulkItemResult:
        detail = reason or "request entity too large"
        return BulkItemResult(
            doc_id=doc_id, ok=False, error=f"too large for {self.kind} on its own ({status}): {detail}"
        )

    async def refresh(self, index: str | None = None) -> None:
        """Make acknowledged writes searchable now."""
        async with self._translate_errors("refresh", budget_seconds=ADMIN_TIMEOUT_SECONDS):
            await self._refresh(index or self._alias)

    async def optimize(self, index: str) -> None:
        """Merge the new `index` into one segment, unless it is larger than `FORCE_MERGE_MAX_BYTES`.

        Typo queries are mostly the expansion of each fuzzy word over every segment's term dictionary, so
        a bulk load's dozen segments cost about 1.5 times the single one's time (see the README).
        """
        async with self._translate_errors("index stats", budget_seconds=ADMIN_TIMEOUT_SECONDS):
            size = await self._store_bytes(index)
        if size > FORCE_MERGE_MAX_BYTES:
            return
        async with self._translate_errors("force merge", budget_seconds=FORCE_MERGE_TIMEOUT_SECONDS):
            await self._force_merge(index, timeout_seconds=FORCE_MERGE_TIMEOUT_SECONDS)
        # OpenSearch keeps searching the merged-away segments until the next refresh (Elasticsearch
        # refreshes after a force merge itself): make the searchers open the one left.
        await self.refresh(index)

    async def count(self, index: str | None = None) -> int:
        """Documents in `index` (default: the alias)."""
        async with self._translate_errors("count"):
            return await self._count(index or self._alias)


def _missing_field(item: ESBody) -> bool:
    """Whether a bulk item was refused for a field the index's strict mapping does not have."""
    outcome = next(iter(item.values()))
    error = outcome.get("error") if isinstance(outcome, dict) else None
    return isinstance(error, dict) and error.get("type") == "strict_dynamic_mapping_exception"
