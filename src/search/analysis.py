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

