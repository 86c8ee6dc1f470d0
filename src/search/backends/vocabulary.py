"""Typo expansion from an index's own term dictionary: the terms within a word's edit distance.

Tantivy's fuzzy query gives every match one constant score, so typo matches would be ordered by field
boost and id, not by how well they match. Instead the Tantivy backend expands each typo alternative of
the query plan into the index's real terms within its distance (optimal string alignment: a
transposition is one edit, as everywhere else in this service) and scores those terms like any other
(BM25), the edit count deciding the tier (a term two edits away keeps the word's first letter, as the
plan's `TYPO_PREFIX_LENGTHS` says for every engine). At most `max_expansions` terms per word and field
are kept, closest first, then the most frequent: the same bound as Elasticsearch's `max_expansions`.

`FieldVocabulary` is pure (built from `(term, document frequency)` pairs); the backend builds one per
field group from `Searcher.terms_with_prefix(field, "")` and rebuilds it when the index changed, at most
every few seconds (terms new since then are found again from the next rebuild on).

Speed: terms are kept in one array sorted by length, so the terms of every length a word can reach
with its edits are one contiguous slice, and a 64-bit mask of the characters each term contains rules
most of them out before any edit distance is computed. An edit adds at most one character the word
lacks and removes at most one it has (a transposition neither), so a term within `e` edits has at most
`e` mask bits the word lacks and lacks at most `e` of the word's (a necessary condition, whatever
characters share a bit). With each term's bit count kept beside its mask, both bounds follow from one
count of the bits it shares with the word (`shared`): the term adds `bits - shared`, lacks
`word bits - shared`; one 64-bit popcount per term instead of two. Only the survivors, a few hundred of
tens of thousands, are compared, in C++ (rapidfuzz). The filter is a handful of numpy operations over
the slice, not one per length.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from rapidfuzz import process
from rapidfuzz.distance import OSA

_BITS = {character: bit for bit, character in enumerate("abcdefghijklmnopqrstuvwxyz0123456789")}


def character_mask(text: str) -> int:
    """The set of characters of `text` as 64 bits: a-z and 0-9 one bit each, others share the rest."""
    mask = 0
    for character in text:
        bit = _BITS.get(character)
        mask |= 1 << (bit if bit is not None else 36 + ord(character) % 28)
    return mask


@dataclass(frozen=True, slots=True)
class FieldVocabulary:
    """The terms of one indexed field (or group), sorted by length, with their document frequencies."""

    terms: npt.NDArray[np.object_] = field(default_factory=lambda: np.array([], dtype=object))
    masks: npt.NDArray[np.uint64] = field(default_factory=lambda: np.array([], dtype=np.uint64))
    bits: npt.NDArray[np.uint8] = field(default_factory=lambda: np.array([], dtype=np.uint8))
    """The number of bits set in each mask."""
    starts: tuple[int, ...] = (0,)
    """`starts[n]` is the position of the first term of length `n` or longer (one past the end for longer)."""
    frequency: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, terms: Iterable[tuple[str, int]]) -> FieldVocabulary:
        """From `(term, document frequency)` pairs."""
        frequency = dict(terms)
        ordered = sorted(frequency, key=len)
        longest = len(ordered[-1]) if ordered else 0
        lengths = [len(term) for term in ordered]
        starts = tuple(bisect.bisect_left(lengths, length) for length in range(longest + 2))
        terms_array = np.empty(len(ordered), dtype=object)
        terms_array[:] = ordered
        masks = np.fromiter((character_mask(term) for term in ordered), dtype=np.uint64, count=len(ordered))
        bits = np.bitwise_count(masks).astype(np.uint8)
        return cls(terms=terms_array, masks=masks, bits=bits, starts=starts, frequency=frequency)

    def __len__(self) -> int:
        return len(self.frequency)

    def _slice(self, shortest: int, longest: int) -> tuple[int, int]:
        last = len(self.starts) - 1
        return self.starts[min(max(shortest, 0), last)], self.starts[min(max(longest + 1, 0), last)]

    def expand(
        self, word: str, max_edits: int, *, max_expansions: int, prefix_lengths: Mapping[int, int] | None = None
    ) -> list[tuple[str, int]]:
        """`(term, edits)` for the terms 1..`max_edits` edits from `word`, closest then most frequent first.

        `prefix_lengths` maps an edit count to the leading characters of `word` a term that far away must
        keep (the query plan's `TYPO_PREFIX_LENGTHS`); the bound counts only the terms kept.
        """
        low, high = self._slice(len(word) - max_edits, len(word) + max_edits)
        if low >= high:
            return []
        mask = character_mask(word)
        shared = np.bitwise_count(self.masks[low:high] & np.uint64(mask))
        # added = bits - shared <= max_edits, lacked = word bits - shared <= max_edits (no uint8 underflow)
        near = self.bits[low:high] <= shared + np.uint8(max_edits)
        lacking = mask.bit_count() - max_edits
        if lacking > 0:
            near &= shared >= np.uint8(lacking)
        close = np.flatnonzero(near)
        if not len(close):
            return []
        candidates = self.terms[low:high][close].tolist()
        matches = process.extract(word, candidates, scorer=OSA.distance, score_cutoff=max_edits, limit=None)
        kept = prefix_lengths or {}
        found = [
            (term, int(distance))
            for term, distance, _ in matches
            if distance > 0 and term.startswith(word[: kept.get(int(distance), 0)])
        ]
        frequency = self.frequency
        found.sort(key=lambda item: (item[1], -frequency[item[0]], item[0]))
        return found[:max_expansions]
