"""Text normalisation shared by indexing and querying, on every backend.

The backends only split on whitespace: everything else (case, accents, punctuation) happens here, so
Elasticsearch (without analysis-common) and Tantivy see identical tokens.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

_ASCII_WORD = re.compile(r"[a-z0-9]+")


def is_word_char(ch: str) -> bool:
    """Letters, digits and combining marks (which belong to the letter before them) make words."""
    return ch.isalnum() or unicodedata.category(ch)[0] == "M"


def word_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each maximal run of word characters in `text`, the words `normalise` keeps."""
    start = -1
    for position, ch in enumerate(text):
        if is_word_char(ch):
            if start < 0:
                start = position
        elif start >= 0:
            yield start, position
            start = -1
    if start >= 0:
        yield start, len(text)


def normalise(text: str) -> str:
    """Return `text` case-folded, accent-stripped, with punctuation turned into single spaces.

    >>> normalise("Crème-Brûlée  FAQ!")
    'creme brulee faq'
    """
    if text.isascii():  # the same result, without the per-character Unicode work (most text)
        return " ".join(_ASCII_WORD.findall(text.lower()))
    return normalise_unicode(text)


def normalise_unicode(text: str) -> str:
    """`normalise` character by character, for any text (ASCII text takes a faster, equal path)."""
    decomposed = unicodedata.normalize("NFKD", text)
    # Accents are combining marks (class != 0) and go; spacing marks (Indic vowel signs) stay in words.
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(stripped[start:end] for start, end in word_spans(stripped))


def tokenize(text: str) -> list[str]:
    """Split text into normalised tokens (what the backends index for a searchable field)."""
    return normalise(text).split()


def allowed_edits(term: str, *, one_edit_min_chars: int, two_edits_min_chars: int) -> int:
    """Typo budget of a term: 0 below the first threshold, 1 from it, 2 from the second."""
    if len(term) >= two_edits_min_chars:
        return 2
    if len(term) >= one_edit_min_chars:
        return 1
    return 0


def damerau_levenshtein(a: str, b: str, *, limit: int) -> int:
    """Optimal-string-alignment distance (a transposition is one edit), cut off above `limit`.

    Returns `limit + 1` as soon as the distance is known to exceed `limit`.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(prev[-1], limit + 1)
