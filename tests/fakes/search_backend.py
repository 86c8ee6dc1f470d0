"""An in-memory SearchBackend that follows the contract in src/search/backends/base.py.

It translates the same query plan as the real backends (src/search/plan.py), evaluated in Python with the
same pure functions (normalisation, edit distance): a clause scores its best alternative's ranking digits
plus a stand-in for BM25 (shorter fields score higher) times the plan's factor, so the contract suite can run
against it as a third implementation. Relevance ties break by the custom ranking values, then the id.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rapidfuzz.distance import OSA

from src.search.backends.base import BackendHit, BackendPage, BulkItemResult, IndexAction
from src.search.documents import DocumentInvalid, IndexValue, PreparedDocument, prepare_document
from src.search.errors import SearchUnavailable
from src.search.models import Document, JSONScalar
from src.search.plan import Alternative, build_plan
from src.search.query import BackendQuery, Filter, FilterValue, RangeFilter
from src.search.schema import IndexSchema


def _weight(alt: Alternative, values: list[str], epsilon: float) -> float | None:
    """The alternative's score when any value matches it (its digits plus the stand-in BM25), else None."""
    stand_in = epsilon / (1 + len(values))
    for value in values:
        if alt.kind == "exact" and value == alt.text:
            return alt.weight + stand_in
        if alt.kind == "prefix" and value.startswith(alt.text):
            return alt.weight + stand_in
        if (
            alt.kind == "typo"
            and value.startswith(alt.text[: alt.prefix_length])
            and OSA.distance(value, alt.text, score_cutoff=alt.edits) <= alt.edits
        ):
            return alt.weight + stand_in
    return None


def _near(pair: tuple[str, str], slop: int, tokens: list[str]) -> bool:
    """Lucene's sloppy phrase of two words: in order with at most `slop` words between, or reversed
    within `slop` moves."""
    first = [i for i, token in enumerate(tokens) if token == pair[0]]
    second = [j for j, token in enumerate(tokens) if token == pair[1]]
    return any((j > i and j - i - 1 <= slop) or (j < i and i - j + 1 <= slop) for i in first for j in second)


def _phrase_in(phrase: tuple[str, ...], tokens: list[str]) -> bool:
    size = len(phrase)
    return any(tuple(tokens[i : i + size]) == phrase for i in range(len(tokens) - size + 1))


def _as_comparable(value: IndexValue | FilterValue) -> float | str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).timestamp()
    return value


def _filter_matches(item: Filter, values: list[IndexValue]) -> bool:
    if isinstance(item, RangeFilter):
        for raw in values:
            value = _as_comparable(raw)
            if item.lower is not None:
                lower = _as_comparable(item.lower)
                if value < lower or (value == lower and not item.include_lower):  # type: ignore[operator]
                    continue
            if item.upper is not None:
                upper = _as_comparable(item.upper)
                if value > upper or (value == upper and not item.include_upper):  # type: ignore[operator]
                    continue
            return True
        return False
    wanted = {_as_comparable(v) for v in item.values}
    return any(_as_comparable(v) in wanted for v in values)


@dataclass
class FakeSearchBackend:
    """In-memory indices keyed by name, an alias, and a switch to simulate an outage."""

    schema: IndexSchema
    alias: str = "test"
    kind: str = "fake"
    down: bool = False
    indices: dict[str, dict[str, tuple[PreparedDocument, int]]] = field(default_factory=dict)
    current: str | None = None
    optimized: list[str] = field(default_factory=list)
    """The indices `optimize` was called on, in order."""
    building: dict[str, float] = field(default_factory=dict)
    """Indices marked building, with their heartbeats."""
    clock: Callable[[], float] = time.time
    """The heartbeats' clock (epoch seconds)."""
    _counter: int = 0

    def _check(self) -> None:
        if self.down:
            raise SearchUnavailable("fake backend is down")

    def _docs(self, index: str | None = None) -> dict[str, tuple[PreparedDocument, int]]:
        self._check()
        name = index or self.current
        if name is None or name not in self.indices:
            raise SearchUnavailable(f"index {name!r} does not exist")
        return self.indices[name]

    async def search(self, query: BackendQuery) -> BackendPage:
        sort = query.sort
        descending = sort.descending or sort.field is None
        ties = self.schema.custom if sort.field is None else ()
        entries: list[tuple[tuple[JSONScalar, ...], str, float, PreparedDocument]] = []
        for prepared, _ in self._docs().values():
            score = self._score(query, prepared)
            if score is None:
                continue
            if sort.field is None:
                key: tuple[JSONScalar, ...] = (score, *(_first(prepared, name) for name, _ in ties))
            else:
                key = (_first(prepared, sort.field.name),)
            entries.append((key, prepared.id, score, prepared))
        directions = (descending, *(tie_descending for _, tie_descending in ties))

        def compare(a: tuple[tuple[JSONScalar, ...], str], b: tuple[tuple[JSONScalar, ...], str]) -> int:
            for value_a, value_b, direction in zip(a[0], b[0], directions, strict=False):
                if value_a != value_b:
                    if value_a is None:
                        return 1
                    if value_b is None:
                        return -1
                    less = value_a < value_b  # type: ignore[operator]
                    return (1 if less else -1) if direction else (-1 if less else 1)
            return (a[1] > b[1]) - (a[1] < b[1])

        def by_order(
            x: tuple[tuple[JSONScalar, ...], str, float, PreparedDocument],
            y: tuple[tuple[JSONScalar, ...], str, float, PreparedDocument],
        ) -> int:
            return compare((x[0], x[1]), (y[0], y[1]))

        ordered = sorted(entries, key=functools.cmp_to_key(by_order))
        if query.after is not None:
            marker = (tuple(query.after[:-1]), str(query.after[-1]))
            ordered = [entry for entry in ordered if compare((entry[0], entry[1]), marker) > 0]
        hits = tuple(
            BackendHit(
                id=doc_id,
                score=score if sort.field is None else None,
                sort_values=(*key, doc_id),
                document=prepared.source,
            )
            for key, doc_id, score, prepared in ordered[: query.limit]
        )
        facets: dict[str, list[tuple[JSONScalar, int]]] = {}
        for spec in query.facets:
            counts: dict[JSONScalar, int] = {}
            for *_, prepared in entries:
                for value in dict.fromkeys(prepared.values.get(spec.name, [])):
                    counts[_json_key(value)] = counts.get(_json_key(value), 0) + 1
            buckets = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            facets[spec.name] = buckets[: query.facet_size]
        return BackendPage(hits=hits, total=len(entries), total_exact=True, facets=facets)

    def _score(self, query: BackendQuery, prepared: PreparedDocument) -> float | None:
        """The query plan, evaluated in Python (a sum of each clause's best alternative weight)."""
        plan = build_plan(query.query, query.filters, self.schema)
        tokens = {name: text.split() for name, text in prepared.text.items()}
        for item in plan.filters:
            if not _filter_matches(item, prepared.values.get(item.field.name, [])):
                return None
        for excluded in plan.excluded_terms:
            if any(excluded in tokens.get(field, []) for field in plan.searchable):
                return None
        for phrase in plan.excluded_phrases:
            if any(_phrase_in(phrase, tokens.get(field, [])) for field in plan.searchable):
                return None
        custom = sum(weight for bit, weight in plan.custom if bit in prepared.rank)
        if plan.match_all:
            return 1.0 + custom
        epsilon = plan.bm25
        scores = [
            max(
                (w for alt in word.alternatives if (w := _weight(alt, tokens.get(alt.field, []), epsilon)) is not None),
                default=None,
            )
            for word in plan.words
        ]
        scores += [
            max(
                (
                    weight + epsilon / (1 + len(tokens.get(field, [])))
                    for field, weight in phrase.fields
                    if _phrase_in(phrase.tokens, tokens.get(field, []))
                ),
                default=None,
            )
            for phrase in plan.phrases
        ]
        bonus = sum(
            pair.weight
            for pair in plan.proximity
            if any(_near(pair.tokens, pair.slop, tokens.get(field, [])) for field in pair.fields)
        )
        all_words = (
            sum(score for score in scores if score is not None) + bonus if all(s is not None for s in scores) else None
        )
        whole = None
        if plan.whole is not None:
            forms = {"x": prepared.whole, "j": prepared.joined}
            whole = max(
                (
                    w
                    for alt in plan.whole.alternatives
                    if (w := _weight(alt, forms[alt.group].get(alt.field, []), epsilon)) is not None
                ),
                default=None,
            )
        best = max((score for score in (all_words, whole) if score is not None), default=None)
        return None if best is None else best + custom

    async def get(self, doc_id: str) -> Document | None:
        found = self._docs().get(doc_id)
        return found[0].source if found else None

    async def ping(self) -> None:
        self._docs()

    async def create_index(self) -> str:
        self._check()
        self._counter += 1
        name = f"{self.alias}-{self._counter:06d}"
        self.indices[name] = {}
        self.building[name] = self.clock()
        return name

    async def point_alias(self, index: str) -> None:
        self._docs(index)
        self.current = index
        self.building.pop(index, None)

    async def heartbeat(self, index: str) -> None:
        self._docs(index)
        self.building[index] = self.clock()

    async def mark_built(self, index: str) -> None:
        self._check()
        self.building.pop(index, None)

    async def building_indices(self) -> dict[str, float]:
        self._check()
        return dict(sorted(self.building.items()))

    async def current_index(self) -> str | None:
        self._check()
        return self.current

    async def list_indices(self) -> list[str]:
        self._check()
        return sorted(self.indices)

    async def drop_index(self, index: str) -> None:
        if index == self.current:
            raise ValueError(f"refusing to drop {index!r}: the alias points at it")
        del self.indices[index]
        self.building.pop(index, None)

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        docs = self._docs(index)
        results = []
        for action in actions:
            stored = docs.get(action.doc_id)
            if action.version is not None and stored is not None and stored[1] > action.version:
                results.append(BulkItemResult(doc_id=action.doc_id, ok=True))
                continue
            if action.op == "delete":
                docs.pop(action.doc_id, None)
                results.append(BulkItemResult(doc_id=action.doc_id, ok=True))
                continue
            try:
                prepared = prepare_document(action.document or {}, self.schema)
            except DocumentInvalid as err:
                results.append(BulkItemResult(doc_id=action.doc_id, ok=False, error=str(err)))
                continue
            docs[prepared.id] = (prepared, action.version or 0)
            results.append(BulkItemResult(doc_id=action.doc_id, ok=True))
        return results

    async def refresh(self, index: str | None = None) -> None:
        self._docs(index)

    async def optimize(self, index: str) -> None:
        self._docs(index)  # nothing to compact in memory; an unknown index still fails as on the engines
        self.optimized.append(index)

    async def count(self, index: str | None = None) -> int:
        return len(self._docs(index))

    async def close(self) -> None:
        return None


def _first(prepared: PreparedDocument, name: str) -> JSONScalar:
    values = prepared.values.get(name)
    return _json_key(values[0]) if values else None


def _json_key(value: IndexValue) -> JSONScalar:
    if isinstance(value, datetime):
        return int(value.astimezone(UTC).timestamp() * 1000)
    return value
