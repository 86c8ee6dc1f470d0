"""Typo expansion from an open index's own terms: the terms within a word's edit distance, boosted as one.

`TypoVocabularies` keeps one vocabulary (`src.search.backends.vocabulary.FieldVocabulary`) per group of
fields, rebuilt from the term dictionaries when the index changed, and remembers recent expansions with
their blended boosts (`blended`). A search on the event loop must not block: with `wait=False`, a rebuild
due or under way raises `Busy`, and that search goes to a worker thread (see `TantivyBackend.search`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import tantivy

from src.search.backends.tantivy.query import Expansion
from src.search.backends.vocabulary import FieldVocabulary
from src.search.plan import FUZZY_MAX_EXPANSIONS, TYPO_PREFIX_LENGTHS

_VOCABULARY_REFRESH_SECONDS = 5.0
_EXPANSION_CACHE_ENTRIES = 4096


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


class Busy(Exception):
    """Raised instead of waiting when a search on the event loop would block (a vocabulary rebuild due
    or running, an index not open yet): that search goes to a worker thread instead."""


class TypoVocabularies:
    """The typo vocabularies of one open index, one per group of fields, and its recent expansions."""

    def __init__(self) -> None:
        self._vocabularies: dict[tuple[str, ...], tuple[FieldVocabulary, tuple[int, int], float]] = {}
        self._holders: dict[tuple[str, ...], dict[str, frozenset[str]]] = {}
        self._expansions: OrderedDict[tuple[tuple[str, ...], str, int], list[Expansion]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self, wait: bool) -> Iterator[None]:
        if not self._lock.acquire(blocking=wait):
            raise Busy("the typo vocabularies are being rebuilt")
        try:
            yield
        finally:
            self._lock.release()

    def vocabulary(self, searcher: tantivy.Searcher, fields: tuple[str, ...], *, wait: bool = True) -> FieldVocabulary:
        """The fields' terms together, rebuilt from the term dictionaries when the index changed (at most
        every `_VOCABULARY_REFRESH_SECONDS`, so a busy stream does not rebuild it on every commit).

        With `wait=False`, raises `Busy` rather than rebuild or wait for a rebuild.
        """
        version = (searcher.num_docs, searcher.num_segments)
        with self._locked(wait):
            held = self._vocabularies.get(fields)
            now = time.monotonic()
            if held is not None and (held[1] == version or now - held[2] < _VOCABULARY_REFRESH_SECONDS):
                return held[0]
            if not wait:
                raise Busy("a typo vocabulary rebuild is due")
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
        rebuilt). With `wait=False`, raises `Busy` rather than rebuild or wait (see `vocabulary`)."""
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
