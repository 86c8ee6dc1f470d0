"""The `SearchBackend` seam: one protocol, two real implementations (Elasticsearch, Tantivy).

Contract (tests/contract/test_search_backend_contract.py runs it against every implementation):

- Indexes are versioned: `create_index()` makes `<alias>-<timestamp>` from the index schema and returns
  its name; `point_alias(name)` moves the alias onto it atomically (readers see the old index until then,
  the new one after); `current_index()` names the index the alias points at, or None.
- Builds are marked, so that one a killed process left behind can be told from one still running: a new
  index is *building*, with a heartbeat of now (epoch seconds, this host's clock), from `create_index()`
  until `point_alias()` moves the alias onto it or `mark_built()` clears the mark. `heartbeat(index)`
  marks an index building again with a heartbeat of now (the builder calls it while it copies);
  `building_indices()` maps every index of this alias still marked building to its last heartbeat. The
  mark lives with the index (Elasticsearch/OpenSearch: the mapping's `_meta`; Tantivy: a file in its
  folder), so every process sees it and dropping the index drops the mark.
- `bulk(actions, index=...)` writes upserts/deletes by document id, idempotently, and returns one
  `BulkItemResult` per action in order. A document the backend refuses for good is `ok=False,
  retryable=False` (a document too large for the engine on its own included); a transient failure is
  `retryable=True` (`pressure=True` when the engine refused it for its load). A request the engine
  refuses as a whole for its size or load raises `EnginePressure`. Writes are searchable after `refresh()`.
- `search(query)` returns hits ordered by the requested sort (relevance by default), ties broken by
  document id ascending, `query.limit` at most, continuing strictly after `query.after` (the
  `sort_values` of the previous page's last hit). Terms match with the typo budget of each `Term`
  (a transposition is one edit), the last term also as a prefix when `Term.prefix`, each term in at
  least one searchable field; phrases match consecutive tokens; exclusions remove documents; value
  filters match any of their values, everything else is AND-ed. Facet buckets count the matching
  documents per value. `total` is exact up to `query.track_total_up_to` at least.
- `get(doc_id)` returns the stored document or None.
- Every call either answers within the configured timeout or raises `SearchUnavailable`; vendor
  exceptions never escape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from src.search.models import Document, JSONScalar
from src.search.query import BackendQuery


@dataclass(frozen=True, slots=True)
class BackendHit:
    """One hit as a backend returns it."""

    id: str
    score: float | None
    sort_values: tuple[JSONScalar, ...]
    """The values this hit sorts by (`[sort key, id]`); the next page continues after them."""
    document: Document


@dataclass(frozen=True, slots=True)
class BackendPage:
    """One page of backend results."""

    hits: tuple[BackendHit, ...]
    total: int
    total_exact: bool
    facets: dict[str, list[tuple[JSONScalar, int]]]


@dataclass(frozen=True, slots=True)
class IndexAction:
    """One write: upsert (the whole document) or delete, by document id."""

    op: Literal["upsert", "delete"]
    doc_id: str
    document: Document | None = None
    version: int | None = None
    """External version (monotonic per document); an older write never replaces a newer one."""
    refused: str | None = None
    """Why this write must never be sent (an `_id` the index cannot hold, see `transform.id_refusal`): the
    indexer's sink dead-letters such an action before any backend sees it; backends ignore the field."""


@dataclass(frozen=True, slots=True)
class BulkItemResult:
    """The backend's answer for one action of a bulk request."""

    doc_id: str
    ok: bool
    retryable: bool = False
    error: str | None = None
    pressure: bool = False
    """Refused for the engine's load (a 429 item: indexing pressure, a full queue): retryable, but a
    smaller request may pass where this one did not."""


class SearchBackend(Protocol):
    """A search engine holding the index described by the index schema."""

    kind: str
    """"elasticsearch" or "tantivy"; part of cursor fingerprints and readiness reports."""

    async def search(self, query: BackendQuery) -> BackendPage:
        """Run one page of a search."""
        ...

    async def get(self, doc_id: str) -> Document | None:
        """The stored document with this id, or None."""
        ...

    async def ping(self) -> None:
        """Raise SearchUnavailable unless the backend answers and the alias exists."""
        ...

    async def create_index(self) -> str:
        """Create a new empty versioned index from the schema, marked building, and return its name."""
        ...

    async def point_alias(self, index: str) -> None:
        """Atomically point the alias at `index`, then clear its building mark."""
        ...

    async def heartbeat(self, index: str) -> None:
        """Mark `index` building with a heartbeat of now."""
        ...

    async def mark_built(self, index: str) -> None:
        """Clear the building mark of `index` (nothing happens when it has none)."""
        ...

    async def building_indices(self) -> dict[str, float]:
        """Every index of this alias still marked building, with its last heartbeat (epoch seconds)."""
        ...

    async def current_index(self) -> str | None:
        """The index the alias points at, or None when there is none."""
        ...

    async def list_indices(self) -> list[str]:
        """Every versioned index of this alias, oldest first."""
        ...

    async def drop_index(self, index: str) -> None:
        """Delete a versioned index (never the one the alias points at)."""
        ...

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        """Apply the actions to `index` (default: the alias) and report each one."""
        ...

    async def refresh(self, index: str | None = None) -> None:
        """Make every acknowledged write searchable."""
        ...

    async def optimize(self, index: str) -> None:
        """Compact a freshly built `index` before the alias points at it (fewer segments: faster searches,
        typo expansion above all); searches are correct either way. Raises SearchUnavailable."""
        ...

    async def count(self, index: str | None = None) -> int:
        """Number of documents in `index` (default: the alias)."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...
