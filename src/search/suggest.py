""" "Did you mean": the query as the best hit spells it, when that hit was found through corrected words.

Pure and engine-neutral: it looks at the top hit's searchable text, not at engine internals. A query
word that the hit contains (or completes, for the last word while typing, or has a synonym of) stays;
a word the hit only matches within its typo budget is replaced by the closest word of the hit. No
replacement, no suggestion.
"""

from __future__ import annotations

from rapidfuzz import process
from rapidfuzz.distance import OSA

from src.search.analysis import tokenize
from src.search.models import Document
from src.search.query import ParsedQuery
from src.search.schema import IndexSchema

_MAX_CHARS_PER_VALUE = 500
"""Only the start of a long text is read for suggestions (the typo a hit matched is rarely further in)."""


def suggestion(query: ParsedQuery, top: Document | None, schema: IndexSchema) -> str | None:
    """The corrected query, or None when the top hit matched the words as typed."""
    if top is None or not query.terms:
        return None
    tokens: set[str] = set()
    for spec in schema.searchable:
        value = top.get(spec.name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                tokens.update(tokenize(item[:_MAX_CHARS_PER_VALUE]))
    ordered = sorted(tokens)  # candidates in a fixed order: ties between equally close words are stable
    words: list[str] = []
    corrected = False
    for term in query.terms:
        literal = term.text in tokens or any(synonym in tokens for synonym in schema.synonyms_of(term.text))
        completes = term.prefix and any(token.startswith(term.text) for token in tokens)
        if literal or completes or not term.edits:
            words.append(term.text)
            continue
        closest = process.extractOne(term.text, ordered, scorer=OSA.distance, score_cutoff=term.edits)
        if closest is not None:
            words.append(closest[0])
            corrected = True
        else:
            words.append(term.text)
    return " ".join(words) if corrected else None
