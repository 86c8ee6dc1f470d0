"""Typo expansion from an index's own term dictionary: the terms within a word's edit distance.

Tantivy's fuzzy query gives every match one constant score, so typo matches would be ordered by field
boost and id, not by how well they match. Instead the Tantivy backend expands each typo alternative of
the query plan into the index's real terms within its distance (optimal string alignment: a
transposition is one edit, as everywhere else in this service) and scores those terms like any other
(BM25), the edit count deciding the tier. At most `max_expansions` terms per word and field are kept,
closest first, then the most frequent: the same bound as Elasticsearch's `max_expansions`.

`FieldVocabulary` is pure (built from `(term, document frequency)` pairs); the backend builds one per
field from `Searcher.terms_with_prefix(field, "")` and rebuilds it when the index changed, at most every
few seconds (terms new since then are found again from the next rebuild on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import process
from rapidfuzz.distance import OSA


@dataclass(frozen=True, slots=True)
class FieldVocabulary:
    """The terms of one indexed field, grouped by length, with their document frequencies."""

    by_length: dict[int, list[str]] = field(default_factory=dict)
    frequency: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, terms: Iterable[tuple[str, int]]) -> FieldVocabulary:
        """From `(term, document frequency)` pairs."""
        by_length: dict[int, list[str]] = {}
        frequency: dict[str, int] = {}
        for term, count in terms:
            by_length.setdefault(len(term), []).append(term)
            frequency[term] = count
        return cls(by_length=by_length, frequency=frequency)

    def __len__(self) -> int:
        return len(self.frequency)

    def expand(self, word: str, max_edits: int, *, max_expansions: int) -> list[tuple[str, int]]:
        """`(term, edits)` for the terms 1..`max_edits` edits from `word`, closest then most frequent first."""
        found: list[tuple[str, int]] = []
        for length in range(len(word) - max_edits, len(word) + max_edits + 1):
            candidates = self.by_length.get(length)
            if not candidates:
                continue
            matches = process.extract(word, candidates, scorer=OSA.distance, score_cutoff=max_edits, limit=None)
            found.extend((term, int(distance)) for term, distance, _ in matches if distance > 0)
        found.sort(key=lambda item: (item[1], -self.frequency[item[0]], item[0]))
        return found[:max_expansions]
