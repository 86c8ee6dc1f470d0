"""Typo expansion from an index's own term dictionary: the terms within a word's edit distance.

Tantivy's fuzzy query gives every match one constant score, so typo matches would be ordered by field
boost and id, not by how well they match. Instead the Tantivy backend expands each typo alternative of
the query plan into the index's real terms within its distance (optimal string alignment: a
transposition is one edit, as everywhere else in this service) and scores those terms like any other
(BM25), the edit count deciding the tier. At most `max_expansions` terms per word and field are kept,
closest first, then the most frequent: the same bound as Elasticsearch's `max_expansions`.

`FieldVocabulary` is pure (built from `(term, document frequency)` pairs); the backend builds one per
field group from `Searcher.terms_with_prefix(field, "")` and rebuilds it when the index changed, at most
every few seconds (terms new since then are found again from the next rebuild on).

Speed: terms are grouped by length, and a 32-bit mask of the characters each term contains rules most
of them out before any edit distance is computed: `e` edits change at most `2e` characters of the set,
so a term whose mask differs from the word's in more bits cannot be within `e` edits (a necessary
condition, whatever characters share a bit). Only the survivors are compared, in C++ (rapidfuzz).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from rapidfuzz import process
from rapidfuzz.distance import OSA


def character_mask(text: str) -> int:
    """The set of characters of `text` as 32 bits (a character's code point modulo 32)."""
    mask = 0
    for character in text:
        mask |= 1 << (ord(character) & 31)
    return mask


@dataclass(frozen=True, slots=True)
class _Bucket:
    terms: list[str]
    masks: npt.NDArray[np.uint32]


@dataclass(frozen=True, slots=True)
class FieldVocabulary:
    """The terms of one indexed field (or group), grouped by length, with their document frequencies."""

    by_length: dict[int, _Bucket] = field(default_factory=dict)
    frequency: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, terms: Iterable[tuple[str, int]]) -> FieldVocabulary:
        """From `(term, document frequency)` pairs."""
        grouped: dict[int, list[str]] = {}
        frequency: dict[str, int] = {}
        for term, count in terms:
            grouped.setdefault(len(term), []).append(term)
            frequency[term] = count
        by_length = {
            length: _Bucket(found, np.array([character_mask(term) for term in found], dtype=np.uint32))
            for length, found in grouped.items()
        }
        return cls(by_length=by_length, frequency=frequency)

    def __len__(self) -> int:
        return len(self.frequency)

    def expand(self, word: str, max_edits: int, *, max_expansions: int) -> list[tuple[str, int]]:
        """`(term, edits)` for the terms 1..`max_edits` edits from `word`, closest then most frequent first."""
        found: list[tuple[str, int]] = []
        mask = np.uint32(character_mask(word))
        for length in range(len(word) - max_edits, len(word) + max_edits + 1):
            bucket = self.by_length.get(length)
            if bucket is None:
                continue
            close = np.flatnonzero(np.bitwise_count(bucket.masks ^ mask) <= 2 * max_edits)
            candidates = [bucket.terms[index] for index in close]
            if not candidates:
                continue
            matches = process.extract(word, candidates, scorer=OSA.distance, score_cutoff=max_edits, limit=None)
            found.extend((term, int(distance)) for term, distance, _ in matches if distance > 0)
        found.sort(key=lambda item: (item[1], -self.frequency[item[0]], item[0]))
        return found[:max_expansions]
