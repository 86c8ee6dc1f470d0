"""The engine-neutral query plan: a parsed query becomes weighted clauses; every backend only translates.

Matching (the same on Elasticsearch, Tantivy and the test fake):

- **All words**: each `WordClause` matches when any of its alternatives does (the exact word, one of its
  synonyms from the schema, a prefix when it is the last word, or a typo within the word's budget, in any
  searchable field; a two-typo match keeps the word's first letter), and each
  `PhraseClause` matches consecutive tokens in one field; a document must match every one of them.
- **Or the whole query as a name**: the `WholeClause` matches a keyword field whose whole normalised value
  is the query (exactly, as a prefix while typing, or within the whole query's typo budget). It admits a
  document on its own, so a misspelled name is found even when one of its parts is too short for a typo,
  and a concatenated or split name (`jackmixer` / `jack mixer` for `jack-mixer`) is one edit away.
- Exclusions and filters always apply.

Scoring: each clause scores its best alternative (a dis-max), clauses add up. The tier weights below
make a match of the exact word outweigh a prefix, a prefix a one-typo match, and a one-typo match a
two-typo match, times the field's boost from the schema; the whole-value clause adds a bonus on top,
so the package whose name *is* the query ranks first. Within a tier, each engine's term statistics
(BM25) order the rest, then the id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from src.search.query import Filter, ParsedQuery, Term
from src.search.schema import IndexSchema

EXACT_WEIGHT = 3.0
PREFIX_WEIGHT = 1.5
TYPO_WEIGHTS = {1: 1.0, 2: 0.5}
"""Weight of a typo match by its edit count: one typo beats two."""
SYNONYM_WEIGHT = 2.5
"""A synonym of the word (from the schema) counts almost as the word itself: the literal word wins ties."""
WHOLE_EXACT_WEIGHT = 10.0
WHOLE_PREFIX_WEIGHT = 4.0
WHOLE_TYPO_WEIGHTS = {1: 5.0, 2: 3.0}
PROXIMITY_WEIGHT = 1.0
"""Bonus per pair of consecutive query words found within `PROXIMITY_SLOP` positions in one field."""
PROXIMITY_SLOP = 2
FUZZY_MAX_EXPANSIONS = 50
"""Index terms one typo alternative may expand to (Elasticsearch's `max_expansions`)."""
TYPO_PREFIX_LENGTHS = {1: 0, 2: 1}
"""Leading characters a typo match keeps as typed, by its edit count: one typo may be anywhere, but a
two-typo match keeps the word's first letter. Two edits anywhere make the costliest expansion there is
(most of an Elasticsearch typo query's time: the automaton walks the whole term dictionary), and a term
two edits away that also differs in its first letter is rarely the word meant."""

type MatchKind = Literal["exact", "prefix", "typo"]


@dataclass(frozen=True, slots=True)
class Alternative:
    """One way a clause can match: `text` in `field` exactly, as a prefix, or within `edits` typos."""

    kind: MatchKind
    text: str
    field: str
    """The schema field's name (each backend maps it to its own indexed field)."""
    weight: float
    """Tier weight times the field's boost."""
    edits: int = 0
    """For a typo alternative: exactly this many edits (1 or 2; a transposition counts as one)."""
    prefix_length: int = 0
    """For a typo alternative: a matched term starts with the first `prefix_length` characters of `text`."""


@dataclass(frozen=True, slots=True)
class WordClause:
    """One query word: matches when any alternative matches; scores by the best one."""

    word: str
    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True, slots=True)
class PhraseClause:
    """Consecutive tokens in one searchable field."""

    tokens: tuple[str, ...]
    fields: tuple[tuple[str, float], ...]
    """(field, weight) for each searchable field."""


@dataclass(frozen=True, slots=True)
class ProximityClause:
    """Two consecutive query words, as typed, within `slop` positions of each other in one field: a bonus
    for documents that already match every word (ranking rule 3, proximity)."""

    tokens: tuple[str, str]
    slop: int
    fields: tuple[tuple[str, float], ...]
    """(field, weight) for each searchable field."""


@dataclass(frozen=True, slots=True)
class WholeClause:
    """The whole query against keyword fields' whole values: an alternative match and a bonus."""

    text: str
    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What every backend runs for one search."""

    words: tuple[WordClause, ...]
    phrases: tuple[PhraseClause, ...]
    proximity: tuple[ProximityClause, ...]
    """Optional bonuses of the all-words match (they never admit a document)."""
    whole: WholeClause | None
    excluded_terms: tuple[str, ...]
    excluded_phrases: tuple[tuple[str, ...], ...]
    searchable: tuple[str, ...]
    """Every searchable field (exclusions apply to all of them)."""
    filters: tuple[Filter, ...]

    @property
    def match_all(self) -> bool:
        """No positive clause: every document matches (minus exclusions and filters)."""
        return not self.words and not self.phrases


def build_plan(query: ParsedQuery, filters: tuple[Filter, ...], schema: IndexSchema) -> QueryPlan:
    """The plan of a parsed query against `schema` (pure)."""
    searchable = tuple(spec.name for spec in schema.searchable)
    fields = [(s.name, s.boost) for s in schema.searchable]
    words = tuple(
        WordClause(
            word=term.text,
            alternatives=_alternatives(term, fields)
            + tuple(
                Alternative("exact", synonym, field, boost * SYNONYM_WEIGHT)
                for synonym in schema.synonyms_of(term.text)
                for field, boost in fields
            ),
        )
        for term in query.terms
    )
    phrases = tuple(
        PhraseClause(tokens=tokens, fields=tuple((s.name, s.boost * EXACT_WEIGHT) for s in schema.searchable))
        for tokens in query.phrases
    )
    proximity = tuple(
        ProximityClause(
            tokens=(first.text, second.text),
            slop=PROXIMITY_SLOP,
            fields=tuple((name, boost * PROXIMITY_WEIGHT) for name, boost in fields),
        )
        for first, second in zip(query.terms, query.terms[1:], strict=False)
    )
    keyword_fields = [(s.name, s.boost) for s in schema.searchable if s.type == "keyword"]
    whole = None
    if query.whole is not None and keyword_fields:
        whole = WholeClause(text=query.whole.text, alternatives=_alternatives(query.whole, keyword_fields, whole=True))
    return QueryPlan(
        words=words,
        phrases=phrases,
        proximity=proximity,
        whole=whole,
        excluded_terms=query.excluded_terms,
        excluded_phrases=query.excluded_phrases,
        searchable=searchable,
        filters=filters,
    )


def _alternatives(term: Term, fields: list[tuple[str, float]], *, whole: bool = False) -> tuple[Alternative, ...]:
    exact, prefix, typos = (
        (WHOLE_EXACT_WEIGHT, WHOLE_PREFIX_WEIGHT, WHOLE_TYPO_WEIGHTS)
        if whole
        else (EXACT_WEIGHT, PREFIX_WEIGHT, TYPO_WEIGHTS)
    )
    found: list[Alternative] = []
    for field, boost in fields:
        found.append(Alternative("exact", term.text, field, boost * exact))
        if term.prefix:
            found.append(Alternative("prefix", term.text, field, boost * prefix))
        for edits in range(1, term.edits + 1):
            found.append(
                Alternative(
                    "typo",
                    term.text,
                    field,
                    boost * typos[edits],
                    edits=edits,
                    prefix_length=TYPO_PREFIX_LENGTHS[edits],
                )
            )
    return tuple(found)


def relaxations(query: ParsedQuery) -> list[tuple[ParsedQuery, tuple[str, ...]]]:
    """Ever shorter versions of `query` for when it finds nothing: its words dropped from the end, one at
    a time (as Algolia's `removeWordsIfNoResults: lastWords`), each with the words it ignores.

    Phrases and exclusions stay; the last remaining word keeps its prefix matching only if it had it.
    """
    steps: list[tuple[ParsedQuery, tuple[str, ...]]] = []
    terms = query.terms
    for keep in range(len(terms) - 1, 0, -1):
        kept, ignored = terms[:keep], tuple(term.text for term in terms[keep:])
        relaxed = ParsedQuery(
            terms=kept,
            phrases=query.phrases,
            excluded_terms=query.excluded_terms,
            excluded_phrases=query.excluded_phrases,
            whole=None,
        )
        steps.append((relaxed, ignored))
    return steps
