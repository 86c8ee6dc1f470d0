"""Pure highlighting: fragments of the original text with the words that matched wrapped in <mark>.

Done here rather than in the backends so both return identical highlights of the original (not the
normalised) text, with the same typo and prefix rules as the query itself.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from rapidfuzz.distance import OSA

from src.search.analysis import normalise, word_spans
from src.search.query import ParsedQuery


@dataclass(frozen=True, slots=True)
class _Span:
    start: int
    end: int


def word_matches(token: str, query: ParsedQuery) -> bool:
    """Whether one normalised word of a document matches a positive part of the query."""
    for term in query.terms:
        if token == term.text or (term.prefix and token.startswith(term.text)):
            return True
        if term.edits and OSA.distance(token, term.text, score_cutoff=term.edits) <= term.edits:
            return True
    return any(token in phrase for phrase in query.phrases)


def highlight(text: str, query: ParsedQuery, *, fragment_chars: int, max_fragments: int) -> list[str]:
    """Up to `max_fragments` HTML-escaped fragments of `text` around matches, in text order."""
    spans = [_Span(start, end) for start, end in word_spans(text) if word_matches(normalise(text[start:end]), query)]
    fragments: list[str] = []
    index = 0
    while index < len(spans) and len(fragments) < max_fragments:
        start, end = _window(text, spans[index], fragment_chars)
        inside = [span for span in spans[index:] if span.end <= end]
        fragments.append(_render(text, start, end, inside))
        index += len(inside)
    return fragments


def _window(text: str, first: _Span, fragment_chars: int) -> tuple[int, int]:
    """A window of about `fragment_chars` starting a little before `first`, cut at word boundaries."""
    lead = fragment_chars // 4
    start = max(0, first.start - lead)
    if start > 0:
        space = text.find(" ", start, first.start)
        start = space + 1 if space != -1 else first.start
    end = min(len(text), max(start + fragment_chars, first.end))
    if end < len(text):
        space = text.rfind(" ", first.end, end)
        end = space if space != -1 else end
    return start, end


def _render(text: str, start: int, end: int, spans: list[_Span]) -> str:
    parts: list[str] = ["…" if start > 0 else ""]
    cursor = start
    for span in spans:
        parts.append(html.escape(text[cursor : span.start]))
        parts.append(f"<mark>{html.escape(text[span.start : span.end])}</mark>")
        cursor = span.end
    parts.append(html.escape(text[cursor:end]))
    parts.append("…" if end < len(text) else "")
    return "".join(parts).strip()
