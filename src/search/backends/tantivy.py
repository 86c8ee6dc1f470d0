"""Embedded Tantivy backend: an on-disk index, the default when no Elasticsearch URL is set.

Layout under the data directory: one folder per versioned index (`<alias>-<timestamp>`) and an alias
file `<alias>.alias` naming the current one, replaced atomically (`os.replace`) to swap. Readers check
the alias file at most every `reload_interval_seconds` and reopen when it moved. An index being built
holds a marker file, `search-api-build.json` (`{"state": "building", "heartbeat": <epoch>}`), from its
creation until its alias moves onto it (Tantivy leaves files it did not create alone).

Tantivy's calls are synchronous: every one runs in a worker thread with a timeout. Tantivy has no
multi-key sort nor search_after, so pages are computed by fetching a window of the engine's order,
re-sorting it by `(sort key, id)` in Python and growing the window until the page is certain; deep
pages cost time proportional to their depth (see README).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import functools
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import orjson
import tantivy

from src.search.backends.base import BackendHit, BackendPage, BulkItemResult, IndexAction
from src.search.backends.vocabulary import FieldVocabulary
from src.search.documents import DocumentInvalid, PreparedDocument, prepare_document
from src.search.errors import IndexIncompatible, SearchRejected, SearchUnavailable
from src.search.models import Document, JSONScalar
from src.search.plan import FUZZY_MAX_EXPANSIONS, TYPO_PREFIX_LENGTHS, Alternative, QueryPlan, build_plan
from src.search.query import BackendQuery, Filter, FilterValue, RangeFilter, SortSpec
from src.search.schema import FieldSpec, IndexSchema

_ANALYZER = "normalised"
_WRITER_HEAP_BYTES = 64_000_000
_VOCABULARY_REFRESH_SECONDS = 5.0
_EXPANSION_CACHE_ENTRIES = 4096
_DEEP_PAGE_OFFSET = 500
"""From this depth, id-ordered pages come from the id term dictionary instead of a sorted top-k."""
_INLINE_MAX_DEPTH = 100
"""Pages ending at most this deep, without facets, may be searched on the event loop (see `search`)."""
BUILD_MARKER = "search-api-build.json"
"""The building mark's file, in the index's folder."""
ID_HIGH, ID_LOW = "_id_hi", "_id_lo"
"""The id's first 16 UTF-8 bytes as two big-endian integers (fast columns): hits sharing a score are put in id
order from these columns, reading a stored id only where two ids share those 16 bytes."""
RANK_FIELD = "r"
"""The custom ranking bucket's bits, one term each (src/search/ranking.py)."""
_FIELD_TYPES = {
    "integer": tantivy.FieldType.Integer,
    "float": tantivy.FieldType.Float,
    "date": tantivy.FieldType.Date,
}


def build_tantivy_schema(schema: IndexSchema) -> tantivy.Schema:
    """The Tantivy schema derived from the index schema."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, fast=True, tokenizer_name="raw")
    builder.add_bytes_field("_source", stored=True)
    builder.add_integer_field("_version", stored=True, indexed=True, fast=True)
    builder.add_unsigned_field(ID_HIGH, fast=True)
    builder.add_unsigned_field(ID_LOW, fast=True)
    for spec in schema.searchable:
        builder.add_text_field(f"t_{spec.name}", tokenizer_name=_ANALYZER, index_option="position")
    for spec in schema.searchable:
        if spec.type == "keyword":
            builder.add_text_field(f"x_{spec.name}", tokenizer_name="raw", index_option="basic")
            builder.add_text_field(f"j_{spec.name}", tokenizer_name="raw", index_option="basic")
    if schema.custom:
        builder.add_text_field(RANK_FIELD, tokenizer_name="raw", index_option="basic")
    for spec in schema.value_fields:
        name = f"v_{spec.name}"
        match spec.type:
            case "integer":
                builder.add_integer_field(name, indexed=True, fast=True)
            case "float":
                builder.add_float_field(name, indexed=True, fast=True)
            case "date":
                builder.add_date_field(name, indexed=True, fast=True)
            case _:
                builder.add_text_field(name, fast=True, tokenizer_name="raw", index_option="basic")
    return builder.build()


def _register_analyzer(index: tantivy.Index) -> None:
    # Our Python normalisation already did case, accents and punctuation; split on whitespace only.
    analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).filter(tantivy.Filter.remove_long(255)).build()
    )
    index.register_tokenizer(_ANALYZER, analyzer)


type Expansion = tuple[str, int, float, frozenset[str]]
"""A typo expansion: the term, its edit count, its blended boost, and the fields that hold it."""
type Expand = Callable[[str, str, int], list[Expansion]]
"""(field group "t" or "x", word, max edits) -> the index's terms within that distance, with their edit
counts and a boost that blends their rarity: "t" is every searchable field's terms together, "x" every
keyword field's whole values."""
type Holders = Callable[[str, str], frozenset[str] | None]
"""(field group, term) -> the fields of the group holding the term, or None when that is not known (no
vocabulary of the searcher's very index yet: a term may be new): a sure "no field" lets a plan skip it."""


def build_tantivy_query(
    query: BackendQuery,
    schema: IndexSchema,
    tschema: tantivy.Schema,
    expand: Expand | None = None,
    holders: Holders | None = None,
) -> tantivy.Query:
    """Translate the query plan (see src/search/plan.py) into a Tantivy query."""
    return translate_plan(build_plan(query.query, query.filters, schema), tschema, expand, holders)


def translate_plan(
    plan: QueryPlan, tschema: tantivy.Schema, expand: Expand | None = None, holders: Holders | None = None
) -> tantivy.Query:
    """Every word and phrase, or the whole query as a name (the better of the two scores); the custom ranking
    bits; filters (scoring nothing); exclusions.

    Each alternative scores its constant ranking digits plus its BM25 times the plan's `bm25` (a constant
    clause over every document beside the match: no second evaluation of the match). With `expand`, a typo
    alternative becomes the index's real terms at exactly its edit count, each scored by BM25 (see
    vocabulary.py); without, Tantivy's constant-score fuzzy query. With `holders`, an exact alternative of
    a term that no document's field holds is left out: a misspelled word (most typo queries' words) costs
    no clause per field that could only match nothing.
    """
    Occur, Query = tantivy.Occur, tantivy.Query
    epsilon = plan.bm25

    def clause(alternatives: tuple[Alternative, ...]) -> tantivy.Query:
        grouped: dict[tuple[str, int], list[tuple[str, float]]] | None = None
        queries: list[tantivy.Query] = []
        for alt in alternatives:
            # A whole value is one term of one token: its BM25 is the same for every document holding it (and,
            # blended, for every expansion of a typo), so the constant alone scores it, with no second clause.
            whole = alt.group != "t"
            if alt.kind == "exact" and holders is not None:
                held = holders(alt.group, alt.text)
                if held is not None and f"{alt.group}_{alt.field}" not in held:
                    continue
            if alt.kind != "typo" or expand is None:
                matched = _alternative(alt, tschema)
                queries.append(
                    Query.const_score_query(matched, alt.weight + epsilon)
                    if whole
                    else _scored(matched, alt.weight, epsilon)
                )
                continue
            if grouped is None:  # one expansion per word, shared by every field and edit count
                typos = [a.edits for a in alternatives if a.kind == "typo" and a.group == alt.group]
                grouped = _by_field_and_edits(expand(alt.group, alt.text, max(typos)))
            field = f"{alt.group}_{alt.field}"
            expansions = grouped.get((field, alt.edits), ())  # only where a term occurs: no lookups elsewhere
            if not expansions:
                continue
            if whole:
                terms = _dis_max([Query.term_query(tschema, field, term) for term, _ in expansions])
                queries.append(Query.const_score_query(terms, alt.weight + epsilon))
                continue
            terms = _dis_max(
                [Query.boost_query(Query.term_query(tschema, field, term), blend) for term, blend in expansions]
            )
            queries.append(_scored(terms, alt.weight, epsilon))
        return _dis_max(queries) if queries else Query.empty_query()

    positive = [clause(word.alternatives) for word in plan.words]
    positive += [
        _dis_max([_scored(_phrase(field, phrase.tokens, tschema), weight, epsilon) for field, weight in phrase.fields])
        for phrase in plan.phrases
    ]
    nearby = [
        Query.const_score_query(
            _dis_max(
                [Query.phrase_query(tschema, f"t_{field}", list(pair.tokens), slop=pair.slop) for field in pair.fields]
            ),
            pair.weight,
        )
        for pair in plan.proximity
        if holders is None or all(holders("t", token) != frozenset() for token in pair.tokens)  # else none near
    ]
    if positive:
        matched = (
            positive[0]
            if len(positive) == 1 and not nearby
            else Query.boolean_query(
                [(Occur.Must, clause) for clause in positive] + [(Occur.Should, clause) for clause in nearby]
            )
        )
        if plan.whole is not None:
            matched = Query.disjunction_max_query([matched, clause(plan.whole.alternatives)])
    else:
        matched = Query.all_query()
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(Occur.Must, matched)]
    clauses.extend(
        (Occur.Should, Query.const_score_query(Query.term_query(tschema, RANK_FIELD, str(bit)), weight))
        for bit, weight in plan.custom
    )
    clauses.extend((Occur.Must, Query.const_score_query(_filter_query(item, tschema), 0.0)) for item in plan.filters)
    clauses.extend((Occur.MustNot, clause) for clause in _negative_clauses(plan, tschema))
    if len(clauses) == 1:
        # A lone required clause scores and matches as itself; wrapping it would copy the whole tree again.
        return matched
    return Query.boolean_query(clauses)


def _scored(query: tantivy.Query, digits: float, epsilon: float) -> tantivy.Query:
    """`query`'s BM25 times `epsilon`, plus the constant `digits` (a clause over every document, which costs
    a step per match rather than a second evaluation of `query`)."""
    scaled = tantivy.Query.boost_query(query, epsilon)
    if not digits:
        return scaled
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, scaled), (tantivy.Occur.Should, _constant(digits))])


@functools.lru_cache(maxsize=4096)
def _constant(digits: float) -> tantivy.Query:
    """The constant clause of `digits` (queries are immutable and copied into the trees that use them: a
    query's few digit values are built once, not once per alternative)."""
    return tantivy.Query.const_score_query(tantivy.Query.all_query(), digits)


def _by_field_and_edits(expanded: list[Expansion]) -> dict[tuple[str, int], list[tuple[str, float]]]:
    """(term, blended boost) of each expansion under every (field holding it, edit count), in order."""
    grouped: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for term, edits, blend, holders in expanded:
        for field in holders:
            grouped.setdefault((field, edits), []).append((term, blend))
    return grouped


def _dis_max(queries: list[tantivy.Query]) -> tantivy.Query:
    return queries[0] if len(queries) == 1 else tantivy.Query.disjunction_max_query(queries)


def _alternative(alt: Alternative, tschema: tantivy.Schema) -> tantivy.Query:
    Query = tantivy.Query
    field = f"{alt.group}_{alt.field}"
    if alt.kind == "exact":
        matched = Query.term_query(tschema, field, alt.text)
    elif alt.kind == "prefix":
        matched = Query.fuzzy_term_query(tschema, field, alt.text, 0, True, True)
    else:
        matched = Query.fuzzy_term_query(tschema, field, alt.text, alt.edits, True, False)
        if alt.prefix_length:  # the fuzzy query has no kept prefix of its own: require it beside, scoring nothing
            kept = Query.regex_query(tschema, field, re.escape(alt.text[: alt.prefix_length]) + ".*")
            matched = Query.boolean_query(
                [(tantivy.Occur.Must, matched), (tantivy.Occur.Must, Query.const_score_query(kept, 0.0))]
            )
    return matched


def _phrase(field: str, tokens: tuple[str, ...], tschema: tantivy.Schema) -> tantivy.Query:
    name = f"t_{field}"
    if len(tokens) == 1:
        return tantivy.Query.term_query(tschema, name, tokens[0])
    return tantivy.Query.phrase_query(tschema, name, list(tokens))


def _negative_clauses(plan: QueryPlan, tschema: tantivy.Schema) -> list[tantivy.Query]:
    clauses = [
        tantivy.Query.term_query(tschema, f"t_{field}", term)
        for term in plan.excluded_terms
        for field in plan.searchable
    ]
    clauses.extend(_phrase(field, phrase, tschema) for phrase in plan.excluded_phrases for field in plan.searchable)
    return clauses


def _filter_query(item: Filter, tschema: tantivy.Schema) -> tantivy.Query:
    field = f"v_{item.field.name}"
    if isinstance(item, RangeFilter):
        return _range(item.field, tschema, item.lower, item.upper, item.include_lower, item.include_upper)
    if item.field.type == "keyword":
        return tantivy.Query.term_set_query(tschema, field, [str(value) for value in item.values])
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, _range(item.field, tschema, value, value, True, True)) for value in item.values]
    )


def _range(
    spec: FieldSpec,
    tschema: tantivy.Schema,
    lower: FilterValue | None,
    upper: FilterValue | None,
    include_lower: bool,
    include_upper: bool,
) -> tantivy.Query:
    return tantivy.Query.range_query(
        tschema,
        f"v_{spec.name}",
        _FIELD_TYPES[spec.type],
        _range_bound(spec, lower),
        _range_bound(spec, upper),
        include_lower,
        include_upper,
    )


def _range_bound(spec: FieldSpec, value: FilterValue | None) -> FilterValue | None:
    if spec.type == "float" and isinstance(value, int):
        return float(value)  # Tantivy wants a float bound for a float field
    return value


def id_key(doc_id: str) -> tuple[int, int]:
    """The id's first 16 UTF-8 bytes as two big-endian integers: their order is the ids' (UTF-8 byte order is
    code point order, and an id holds no NUL to be confused with the padding) unless both start alike."""
    head = doc_id.encode("utf-8", "surrogatepass")[:16].ljust(16, b"\0")
    return int.from_bytes(head[:8], "big"), int.from_bytes(head[8:], "big")


def _add_prepared(doc: tantivy.Document, prepared: PreparedDocument, version: int) -> None:
    doc.add_text("id", prepared.id)
    high, low = id_key(prepared.id)
    doc.add_unsigned(ID_HIGH, high)
    doc.add_unsigned(ID_LOW, low)
    doc.add_bytes("_source", orjson.dumps(prepared.source))
    doc.add_integer("_version", version)
    for name, text in prepared.text.items():
        doc.add_text(f"t_{name}", text)
    for name, wholes in prepared.whole.items():
        for whole in wholes:
            doc.add_text(f"x_{name}", whole)
    for name, joined_values in prepared.joined.items():
        for joined in joined_values:
            doc.add_text(f"j_{name}", joined)
    for bit in prepared.rank:
        doc.add_text(RANK_FIELD, str(bit))
    for name, values in prepared.values.items():
        for value in values:
            if isinstance(value, datetime):
                doc.add_date(f"v_{name}", value.astimezone(UTC))
            elif isinstance(value, bool | str):
                doc.add_text(f"v_{name}", str(value))
            elif isinstance(value, int):
                doc.add_integer(f"v_{name}", value)
            else:
                doc.add_float(f"v_{name}", value)


@dataclass(frozen=True, slots=True)
class _Entry:
    key: JSONScalar
    id: str | None
    """None until needed: a hit whose key no other hit shares is placed by its key alone, and a page's
    hits read their id with their document."""
    score: float | None
    address: tantivy.DocAddress
    tie: tuple[JSONScalar, ...] = ()
    """The custom ranking fields' values (relevance order only), read where the key is shared."""
    id_key: tuple[int, int] | None = None
    """`id_key(id)` from the fast columns, read where the key is shared; the id itself is read only when
    another hit (or the previous page's last) has the same."""


type _Position = tuple[JSONScalar, tuple[JSONScalar, ...], tuple[int, int] | None, str | None]
"""(sort key, custom ranking values, id key, id): what orders a hit."""


def _before(a: JSONScalar, b: JSONScalar, descending: bool) -> int:
    """-1 when `a` sorts before `b`, 1 after, 0 equal; a missing value sorts last in both directions."""
    if a == b:
        return 0
    if a is None:
        return 1
    if b is None:
        return -1
    less = cast(float, a) < cast(float, b)
    return (1 if less else -1) if descending else (-1 if less else 1)


def _compare(a: _Position, b: _Position, descending: bool, tie_order: tuple[bool, ...] = ()) -> int:
    """Order by sort key, then the custom ranking values (each in its own direction), then id ascending: its
    key first, the id where the keys are equal (ties, id keys and ids are read only where they decide)."""
    (key_a, tie_a, id_key_a, id_a), (key_b, tie_b, id_key_b, id_b) = a, b
    if order := _before(key_a, key_b, descending):
        return order
    for value_a, value_b, tie_descending in zip(tie_a, tie_b, tie_order, strict=False):
        if order := _before(value_a, value_b, tie_descending):
            return order
    if id_key_a is not None and id_key_b is not None and id_key_a != id_key_b:
        return -1 if id_key_a < id_key_b else 1
    # Equal id keys (ids alike for 16 bytes, or the same id) or none read: the ids are (see _page).
    assert id_a is not None
    assert id_b is not None
    return (id_a > id_b) - (id_a < id_b)


def _tied_keys(keys: list[object], after: _Position | None) -> set[object]:
    """The keys whose hits the id must order: shared by several hits, or the previous page's last key."""
    seen: set[object] = set()
    tied: set[object] = set()
    for key in keys:
        (tied if key in seen else seen).add(key)
    if after is not None:
        tied.add(after[0])
    return tied


def _row_key(
    score: float,
    tie: tuple[JSONScalar, ...],
    directions: tuple[bool, ...],
    key: tuple[int, int] | None,
    doc_id: str | None,
) -> tuple[object, ...]:
    """A relevance hit's position as a tuple whose plain order is the page's: score descending, each custom
    value in its direction with a missing one last, then the id (its key, then itself where keys collide)."""
    values: list[object] = [-score]
    for value, descending in zip(tie, directions, strict=False):
        number = cast(float, value)
        values.append((1, 0.0) if value is None else (0, -number if descending else number))
    values.append(key if key is not None else (0, 0))
    values.append(doc_id or "")
    return tuple(values)


def _id_keys(
    searcher: tantivy.Searcher,
    addresses: list[tantivy.DocAddress],
    after: _Position | None,
    ids: dict[tuple[int, int], str],
) -> list[tuple[tuple[int, int], str | None]]:
    """(id key, id or None) of each address: the key from the fast columns, the id (a stored read, remembered
    in `ids`) only where another of them, or the previous page's last hit, has the same key. Many hits can
    share a score (a common word matched by a typo), few ids their first 16 bytes."""
    if not addresses:
        return []
    highs = searcher.fast_field_values(ID_HIGH, addresses)
    lows = searcher.fast_field_values(ID_LOW, addresses)
    keys = [(int(cast(int, high)), int(cast(int, low))) for high, low in zip(highs, lows, strict=True)]
    seen = collections.Counter(keys)
    if after is not None and after[2] is not None:
        seen[after[2]] += 1
    found: list[tuple[tuple[int, int], str | None]] = []
    for address, key in zip(addresses, keys, strict=True):
        doc_id = None
        if seen[key] > 1:
            slot = (address.segment_ord, address.doc)
            doc_id = ids.get(slot)
            if doc_id is None:
                doc_id = ids[slot] = cast(str, searcher.doc(address).get_first("id"))
        found.append((key, doc_id))
    return found


def _position(entry: _Entry) -> _Position:
    return (entry.key, entry.tie, entry.id_key, entry.id)


def _ordered(entries: list[_Entry], descending: bool, tie_order: tuple[bool, ...] = ()) -> list[_Entry]:
    def compare(a: _Entry, b: _Entry) -> int:
        return _compare(_position(a), _position(b), descending, tie_order)

    return sorted(entries, key=functools.cmp_to_key(compare))


def blended(expanded: list[tuple[str, int]], frequency: dict[str, int], documents: int) -> list[tuple[str, int, float]]:
    """Each expansion with a boost that scores it as if it were as common as the most common one.

    A typo's variants are alternatives for one word: a rare variant (a misspelling that happens to be in
    some text) must not outscore the common word the user meant because of its rarity alone. This is
    Lucene's blended-frequency rewrite of fuzzy queries, which Elasticsearch uses: the shared IDF is the
    one of the most frequent variant.
    """
    if not expanded:
        return []

    def idf(count: int) -> float:
        return math.log(1 + (documents - count + 0.5) / (count + 0.5))

    shared = idf(max(frequency.get(term, 1) for term, _ in expanded))
    return [(term, edits, shared / max(idf(frequency.get(term, 1)), 1e-9)) for term, edits in expanded]


class _Busy(Exception):
    """Raised instead of waiting when a search on the event loop would block (a vocabulary rebuild due
    or running, an index not open yet): that search goes to a worker thread instead."""


class _IndexHandle:
    """One open Tantivy index (reader side, plus a lazily created writer and the typo vocabularies)."""

    def __init__(self, path: Path, tschema: tantivy.Schema) -> None:
        self.name = path.name
        self.index = tantivy.Index(tschema, path=str(path), reuse=True)
        _register_analyzer(self.index)
        self._writer: tantivy.IndexWriter | None = None
        self._vocabularies: dict[tuple[str, ...], tuple[FieldVocabulary, tuple[int, int], float]] = {}
        self._holders: dict[tuple[str, ...], dict[str, frozenset[str]]] = {}
        self._expansions: OrderedDict[tuple[tuple[str, ...], str, int], list[Expansion]] = OrderedDict()
        self._vocabulary_lock = threading.Lock()

    @contextmanager
    def _locked(self, wait: bool) -> Iterator[None]:
        if not self._vocabulary_lock.acquire(blocking=wait):
            raise _Busy("the typo vocabularies are being rebuilt")
        try:
            yield
        finally:
            self._vocabulary_lock.release()

    def vocabulary(self, searcher: tantivy.Searcher, fields: tuple[str, ...], *, wait: bool = True) -> FieldVocabulary:
        """The fields' terms together, rebuilt from the term dictionaries when the index changed (at most
        every `_VOCABULARY_REFRESH_SECONDS`, so a busy stream does not rebuild it on every commit).

        With `wait=False`, raises `_Busy` rather than rebuild or wait for a rebuild.
        """
        version = (searcher.num_docs, searcher.num_segments)
        with self._locked(wait):
            held = self._vocabularies.get(fields)
            now = time.monotonic()
            if held is not None and (held[1] == version or now - held[2] < _VOCABULARY_REFRESH_SECONDS):
                return held[0]
            if not wait:
                raise _Busy("a typo vocabulary rebuild is due")
            counts: dict[str, int] = {}
            masks: dict[str, int] = {}
            for bit, field in enumerate(fields):
                for term, count in searcher.terms_with_prefix(field, ""):
                    counts[term] = counts.get(term, 0) + count
                    masks[term] = masks.get(term, 0) | (1 << bit)
            vocabulary = FieldVocabulary.build(counts.items())
            sets = {  # one frozenset per combination of fields, shared by every term that has it
                mask: frozenset(field for bit, field in enumerate(fields) if mask >> bit & 1)
                for mask in range(1, 1 << len(fields))
            }
            self._holders[fields] = {term: sets[mask] for term, mask in masks.items()}
            self._vocabularies[fields] = (vocabulary, version, now)
            self._expansions.clear()
            return vocabulary

    def expand(
        self, searcher: tantivy.Searcher, fields: tuple[str, ...], word: str, edits: int, *, wait: bool = True
    ) -> list[Expansion]:
        """The terms of `fields` within `edits` of `word`, with their blended boosts and the fields holding
        them (recent expansions are remembered, blended once: the cache is cleared when the vocabulary is
        rebuilt). With `wait=False`, raises `_Busy` rather than rebuild or wait (see `vocabulary`)."""
        vocabulary = self.vocabulary(searcher, fields, wait=wait)
        key = (fields, word, edits)
        with self._locked(wait):
            found = self._expansions.get(key)
            if found is not None:
                self._expansions.move_to_end(key)
                return found
        holders = self._holders.get(fields, {})
        found = [
            (term, distance, boost, holders.get(term, frozenset(fields)))
            for term, distance, boost in blended(
                vocabulary.expand(word, edits, max_expansions=FUZZY_MAX_EXPANSIONS, prefix_lengths=TYPO_PREFIX_LENGTHS),
                vocabulary.frequency,
                searcher.num_docs,
            )
        ]
        with self._locked(wait):
            self._expansions[key] = found
            if len(self._expansions) > _EXPANSION_CACHE_ENTRIES:
                self._expansions.popitem(last=False)
        return found

    def holders(self, searcher: tantivy.Searcher, fields: tuple[str, ...]) -> Mapping[str, frozenset[str]] | None:
        """Each term of `fields` with the fields holding it, if the vocabulary was built from `searcher`'s very
        index (else None: a term may be newer than the vocabulary). A rebuild replaces the mapping whole, and
        sets it before the vocabulary's version: one read of each, no lock."""
        held = self._vocabularies.get(fields)
        if held is None or held[1] != (searcher.num_docs, searcher.num_segments):
            return None
        return self._holders.get(fields)

    def writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._writer = self.index.writer(_WRITER_HEAP_BYTES, 1)
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None


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
        self._handles: dict[str, _IndexHandle] = {}
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

    def _handle(self, name: str) -> _IndexHandle:
        with self._lock:
            handle = self._handles.get(name)
            if handle is None:
                path = self._dir / name
                if not (path / "meta.json").exists():
                    raise SearchUnavailable(f"tantivy index {name!r} does not exist")
                try:
                    handle = _IndexHandle(path, self._tschema)
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

    def _reader(self) -> _IndexHandle:
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

    def _target(self, index: str | None) -> _IndexHandle:
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
                except _Busy:
                    pass  # the worker thread rebuilds or waits
        return await self._run("search", functools.partial(self._search_sync, query))

    def _fresh_reader(self) -> _IndexHandle | None:
        """The aliased index when it needs no re-check now (no file read, no reload, no lock), else None."""
        if self._current is None or time.monotonic() - self._checked_at >= self._reload_interval:
            return None
        return self._handles.get(self._current)

    def _search_sync(self, query: BackendQuery, inline: _IndexHandle | None = None) -> BackendPage:
        """One page; `inline` is the fresh reader when on the event loop (then nothing may block: `_Busy`)."""
        handle = inline or self._reader()
        searcher = handle.index.searcher()
        wait = inline is None

        def expand(group: str, word: str, max_edits: int) -> list[Expansion]:
            return handle.expand(searcher, self._vocabulary_fields[group], word, max_edits, wait=wait)

        known: dict[str, Mapping[str, frozenset[str]] | None] = {}

        def holders(group: str, term: str) -> frozenset[str] | None:
            if group not in known:  # no vocabulary of joined names ("j"): never known
                fields = self._vocabulary_fields.get(group)
                known[group] = None if fields is None else handle.holders(searcher, fields)
            terms = known[group]
            return None if terms is None else terms.get(term, frozenset())

        tquery = build_tantivy_query(query, self._schema, self._tschema, expand, holders)
        entries, total = self._page(searcher, tquery, query)
        hits = tuple(self._hit(searcher, entry) for entry in entries)
        facets = self._facets(searcher, tquery, query.facets, query.facet_size)
        return BackendPage(hits=hits, total=total, total_exact=True, facets=facets)

    @staticmethod
    def _hit(searcher: tantivy.Searcher, entry: _Entry) -> BackendHit:
        stored = searcher.doc(entry.address)  # one stored read gives the document and, if not known yet, its id
        doc_id = entry.id if entry.id is not None else cast(str, stored.get_first("id"))
        return BackendHit(
            id=doc_id,
            score=entry.score,
            sort_values=(entry.key, *entry.tie, doc_id),
            document=cast(Document, orjson.loads(cast(bytes, stored.get_first("_source")))),
        )

    def _page(self, searcher: tantivy.Searcher, tquery: tantivy.Query, query: BackendQuery) -> tuple[list[_Entry], int]:
        sort = query.sort
        # Relevance over match-all is a constant score: order by the id column, which needs no stored reads.
        by_id = sort.field is None and query.query.is_match_all and not self._schema.custom
        order_field = "id" if by_id else (f"v_{sort.field.name}" if sort.field else None)
        descending = sort.descending and not by_id
        # Relevance ties: the custom ranking fields' exact values, then the id (as the clusters' sort).
        ties = self._schema.custom if sort.field is None and not by_id else ()
        tie_order = tuple(tie_descending for _, tie_descending in ties)
        after: _Position | None = None
        if query.after:
            after_id = str(query.after[-1])
            after = (query.after[0], tuple(query.after[1:-1]), id_key(after_id), after_id)
        if by_id and query.offset >= _DEEP_PAGE_OFFSET and after is not None:
            return self._page_by_id_terms(searcher, tquery, query.limit, cast(str, after[3]))
        if sort.field is None and not by_id:
            return self._relevance_page(searcher, tquery, query, ties, after)
        window = max(query.offset + query.limit * 3, 32)
        ids: dict[tuple[int, int], str] = {}  # stored-id reads survive window growth
        while True:
            result = searcher.search(
                tquery,
                limit=window,
                count=True,
                order_by_field=order_field,
                order=tantivy.Order.Desc if descending else tantivy.Order.Asc,
            )
            total = int(getattr(result, "count", 0) or 0)  # `count` is missing from tantivy's stubs
            entries = [self._entry(raw_key, address, sort, by_id) for raw_key, address in result.hits]
            if not by_id:
                tied = _tied_keys([entry.key for entry in entries], after)
                entries = self._with_id_keys(searcher, entries, tied, after, ids)
                if ties:
                    entries = self._with_ties(searcher, entries, ties, only=tied)
            exhausted = len(result.hits) < window
            boundary = entries[-1].key if entries and not exhausted else None
            ordered = _ordered(entries, descending, tie_order)
            if after is not None:
                ordered = [e for e in ordered if _compare(_position(e), after, descending, tie_order) > 0]
            if not exhausted and not by_id:
                # Hits sharing the window's last key may continue past the window: only keys strictly
                # before it are certain to be complete.
                ordered = [e for e in ordered if e.key != boundary]
            if exhausted or len(ordered) >= query.limit:
                page = ordered[: query.limit]
                # A page's last hit carries its custom values in its sort values (the next cursor).
                return (self._with_ties(searcher, page, ties, only=None) if ties else page), total
            window *= 4

    def _relevance_page(
        self,
        searcher: tantivy.Searcher,
        tquery: tantivy.Query,
        query: BackendQuery,
        ties: tuple[tuple[str, bool], ...],
        after: _Position | None,
    ) -> tuple[list[_Entry], int]:
        """A page in relevance order: score, then the custom ranking values, then the id.

        The ranking rules make equal scores common (a typo of a common word matches thousands of names of
        one length, and they share every rule), and such a group may start high on the first page. Each hit
        becomes one tuple whose plain order is the page's order, sorted in C: the group's hits cost a fast
        column read each, a stored read only for ids alike in their first 16 bytes.
        """
        directions = tuple(descending for _, descending in ties)
        window = max(query.offset + query.limit * 3, 32)
        ids: dict[tuple[int, int], str] = {}
        after_key = None if after is None else _row_key(cast(float, after[0]), after[1], directions, after[2], after[3])
        while True:
            result = searcher.search(tquery, limit=window, count=True)
            total = int(getattr(result, "count", 0) or 0)  # `count` is missing from tantivy's stubs
            hits = result.hits
            tied = _tied_keys([score for score, _ in hits], after)
            exhausted = len(hits) < window
            if not tied:
                # Every score in the window is its own (and no cursor): Tantivy's order is the page's, and only
                # the page's hits become entries. The last score may continue past the window: not certain.
                certain = hits if exhausted else hits[:-1]
                if exhausted or len(certain) >= query.limit:
                    page = [_Entry(key=s, id=None, score=s, address=at) for s, at in certain[: query.limit]]
                    return (self._with_ties(searcher, page, ties, only=None) if ties else page), total
                window *= 4
                continue
            rows = self._rows(searcher, hits, tied, ties, directions, after, ids)
            boundary = hits[-1][0] if hits and not exhausted else None
            rows.sort(key=lambda row: row[0])
            if after_key is not None:
                rows = [row for row in rows if row[0] > after_key]
            if not exhausted:
                # Hits sharing the window's last score may continue past the window: only scores strictly
                # above it are certain to be complete.
                rows = [row for row in rows if row[1].key != boundary]
            if exhausted or len(rows) >= query.limit:
                page = [entry for _, entry in rows[: query.limit]]
                return (self._with_ties(searcher, page, ties, only=None) if ties else page), total
            # A window mostly made of the boundary's score is inside a large group: grow faster.
            window *= 16 if len(rows) < len(hits) // 2 else 4

    @staticmethod
    def _rows(
        searcher: tantivy.Searcher,
        hits: list[tuple[float, tantivy.DocAddress]],
        tied: set[object],
        ties: tuple[tuple[str, bool], ...],
        directions: tuple[bool, ...],
        after: _Position | None,
        ids: dict[tuple[int, int], str],
    ) -> list[tuple[tuple[object, ...], _Entry]]:
        """(sort key, entry) of every hit: a hit whose score no other shares is placed by its score alone; the
        others read their custom values and id keys from the fast columns, and their ids where those collide."""
        positions = [i for i, (score, _) in enumerate(hits) if score in tied]
        addresses = [hits[i][1] for i in positions]
        columns = [searcher.fast_field_values(f"v_{name}", addresses) for name, _ in ties] if addresses else []
        rows: list[tuple[tuple[object, ...], _Entry]] = [
            ((-score,), _Entry(key=score, id=None, score=score, address=address)) for score, address in hits
        ]
        for row, (i, (key, doc_id)) in enumerate(
            zip(positions, _id_keys(searcher, addresses, after, ids), strict=True)
        ):
            score, address = hits[i]
            tie = tuple(cast(JSONScalar, column[row]) for column in columns)
            entry = _Entry(key=score, id=doc_id, score=score, address=address, tie=tie, id_key=key)
            rows[i] = (_row_key(score, tie, directions, key, doc_id), entry)
        return rows

    @staticmethod
    def _with_id_keys(
        searcher: tantivy.Searcher,
        entries: list[_Entry],
        tied: set[object],
        after: _Position | None,
        ids: dict[tuple[int, int], str],
    ) -> list[_Entry]:
        """`entries` whose key is shared with their id keys and, where those collide, ids (`_id_keys`)."""
        wanted = [i for i, entry in enumerate(entries) if entry.key in tied]
        if not wanted:
            return entries
        found = list(entries)
        read = _id_keys(searcher, [entries[i].address for i in wanted], after, ids)
        for i, (key, doc_id) in zip(wanted, read, strict=True):
            found[i] = dataclasses.replace(entries[i], id_key=key, id=doc_id)
        return found

    @staticmethod
    def _with_ties(
        searcher: tantivy.Searcher, entries: list[_Entry], ties: tuple[tuple[str, bool], ...], only: set[object] | None
    ) -> list[_Entry]:
        """`entries` with their custom ranking values read (from the fast columns) where not read yet: every
        one, or only those whose key is in `only`."""
        wanted = [i for i, e in enumerate(entries) if not e.tie and (only is None or e.key in only)]
        if not wanted:
            return entries
        addresses = [entries[i].address for i in wanted]
        columns = [searcher.fast_field_values(f"v_{name}", addresses) for name, _ in ties]
        found = list(entries)
        for row, i in enumerate(wanted):
            tie = tuple(cast(JSONScalar, column[row]) for column in columns)
            found[i] = dataclasses.replace(entries[i], tie=tie)
        return found

    def _page_by_id_terms(
        self, searcher: tantivy.Searcher, tquery: tantivy.Query, limit: int, after_id: str
    ) -> tuple[list[_Entry], int]:
        """A deep page in id order from the id term dictionary, which Tantivy walks in Rust.

        Ordering a top-k by a text fast field costs per hit up to offset + k; listing the matching ids
        costs per matching document but far less each, so it wins on deep pages.
        """
        matching = sorted(term for term, count in searcher.terms_with_prefix("id", "", filter_query=tquery) if count)
        position = bisect.bisect_right(matching, after_id)
        page_ids = matching[position : position + limit]
        if not page_ids:
            return [], len(matching)
        found = searcher.search(tantivy.Query.term_set_query(self._tschema, "id", page_ids), limit=len(page_ids))
        by_id = {cast(str, searcher.doc(address).get_first("id")): address for _, address in found.hits}
        entries = [_Entry(key=1.0, id=doc_id, score=1.0, address=by_id[doc_id]) for doc_id in page_ids]
        return entries, len(matching)

    @staticmethod
    def _entry(raw_key: object, address: tantivy.DocAddress, sort: SortSpec, by_id: bool) -> _Entry:
        """A hit as the collector gave it (its id key and id are read later, where they order something)."""
        if by_id:
            return _Entry(key=1.0, id=cast(str, raw_key), score=1.0, address=address)
        if sort.field is None:
            return _Entry(key=cast(float, raw_key), id=None, score=cast(float, raw_key), address=address)
        return _Entry(key=cast(JSONScalar, raw_key), id=None, score=None, address=address)

    def _facets(
        self, searcher: tantivy.Searcher, tquery: tantivy.Query, facets: tuple[FieldSpec, ...], size: int
    ) -> dict[str, list[tuple[JSONScalar, int]]]:
        if not facets:
            return {}
        # Ask for more buckets than shown so the count-then-value order below decides the cut, as in ES.
        spec = {f.name: {"terms": {"field": f"v_{f.name}", "size": size + 100}} for f in facets}
        raw = cast(dict[str, dict[str, list[dict[str, object]]]], searcher.aggregate(tquery, spec))
        result: dict[str, list[tuple[JSONScalar, int]]] = {}
        for field in facets:
            buckets = [
                (_facet_key(field, bucket["key"]), int(cast(int, bucket["doc_count"])))
                for bucket in raw.get(field.name, {}).get("buckets", [])
            ]
            buckets.sort(key=lambda item: (-item[1], item[0]))
            result[field.name] = buckets[:size]
        return result

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
            _write_marker(self._dir / name, time.time())  # before any data: never an unmarked build
            handle = _IndexHandle(self._dir / name, self._tschema)
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
            _write_marker(self._dir / index, time.time())

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
                heartbeat = _read_marker(folder)
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
        handle = self._target(index)
        writer = handle.writer()
        versions = self._stored_versions(handle, {a.doc_id for a in actions if a.version is not None})
        results: list[BulkItemResult] = []
        for action in actions:
            if action.version is not None:
                if versions.get(action.doc_id, -1) > action.version:
                    results.append(BulkItemResult(doc_id=action.doc_id, ok=True))  # a newer write won
                    continue
                versions[action.doc_id] = action.version
            if action.op == "delete":
                writer.delete_documents_by_term("id", action.doc_id)
                results.append(BulkItemResult(doc_id=action.doc_id, ok=True))
                continue
            try:
                prepared = prepare_document(action.document or {}, self._schema)
            except DocumentInvalid as err:
                results.append(BulkItemResult(doc_id=action.doc_id, ok=False, error=str(err)))
                continue
            doc = tantivy.Document()
            _add_prepared(doc, prepared, action.version or 0)
            writer.delete_documents_by_term("id", prepared.id)
            writer.add_document(doc)
            results.append(BulkItemResult(doc_id=action.doc_id, ok=True))
        writer.commit()
        handle.index.reload()
        return results

    def _stored_versions(self, handle: _IndexHandle, doc_ids: set[str]) -> dict[str, int]:
        if not doc_ids:
            return {}
        searcher = handle.index.searcher()
        result = searcher.search(
            tantivy.Query.term_set_query(self._tschema, "id", sorted(doc_ids)), limit=len(doc_ids), count=False
        )
        addresses = [address for _, address in result.hits]
        values = searcher.fast_field_values("_version", addresses)
        ids = [cast(str, searcher.doc(address).get_first("id")) for address in addresses]
        return {doc_id: int(value) for doc_id, value in zip(ids, values, strict=True) if value is not None}

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


def _write_marker(folder: Path, heartbeat: float) -> None:
    """Write the building marker atomically (a reader never sees half a file)."""
    tmp = folder / f"{BUILD_MARKER}.tmp"
    tmp.write_bytes(orjson.dumps({"state": "building", "heartbeat": heartbeat}))
    os.replace(tmp, folder / BUILD_MARKER)


def _read_marker(folder: Path) -> float | None:
    """The marker's heartbeat, None without a marker; an unreadable one is as old as can be (0)."""
    try:
        raw = (folder / BUILD_MARKER).read_bytes()
    except FileNotFoundError:
        return None
    try:
        heartbeat = orjson.loads(raw).get("heartbeat")
    except (orjson.JSONDecodeError, AttributeError):
        return 0.0
    return float(heartbeat) if isinstance(heartbeat, int | float) else 0.0


def _facet_key(field: FieldSpec, key: object) -> JSONScalar:
    if field.type == "integer" and isinstance(key, float) and key.is_integer():
        return int(key)
    return cast(JSONScalar, key)


_TANTIVY_ERRORS = (TypeError, ValueError, OSError, RuntimeError)


def _classified(what: str, err: Exception) -> SearchRejected | SearchUnavailable:
    """Our exception for one of `_TANTIVY_ERRORS` (the adapter's choke point, thread or not)."""
    if isinstance(err, TypeError):  # values of the wrong type for the index: this request's input
        return SearchRejected(f"tantivy refused the {what} request: {err}")
    return SearchUnavailable(f"tantivy {what} failed: {err}")
