"""The engine-neutral query plan: a parsed query becomes clauses with their ranking digits; backends translate.

Matching (the same on Elasticsearch, OpenSearch, Tantivy and the test fake):

- **All words**: each `WordClause` matches when any of its alternatives does (the exact word, one of its
  synonyms from the schema, a prefix when it is the last word, or a typo within the word's budget, in any
  searchable field; a two-typo match keeps the word's first letter), and each
  `PhraseClause` matches consecutive tokens in one field; a document must match every one of them.
- **Or the whole query as a name**: the `WholeClause` matches a keyword field's whole value: its normalised
  value equals the query or is within the whole query's typo budget (`x`, separators as spaces, so they
  count: `gs man` is one edit from `gss-man`, two from `gman`), or its value with the separators dropped
  (`j`: `redisserver` for `redis-server`) equals or starts with (while typing) the query with its spaces
  dropped. It admits a document on its own, so a misspelled name is found even when one of its parts is too
  short for a typo, and a name typed without its separators is found whole or while still being typed,
  whatever its number of parts.
- Exclusions and filters always apply.

Scoring is the ranking rules as one number (src/search/ranking.py): each alternative carries the digits of
that way of matching (`weight`, a constant) and adds the engine's BM25 of what it matched times `bm25`; a
word scores its best alternative (a dis-max), the words add up, close pairs add their proximity digit, the
whole-name path scores as a match of every word plus its exactness, the better of the two paths counts (a
dis-max), and the custom ranking bucket adds one constant per bit (`custom`). Backends only translate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from src.search.query import Filter, ParsedQuery, Term
from src.search.ranking import PROXIMITY_SLOP, Tiers, tiers_for
from src.search.schema import IndexSchema

FUZZY_MAX_EXPANSIONS = 50
"""Index terms one typo alternative may expand to (Elasticsearch's `max_expansions`)."""
TYPO_PREFIX_LENGTHS = {1: 0, 2: 1}
"""Leading characters a typo match keeps as typed, by its edit count: one typo may be anywhere, but a
two-typo match keeps the word's first letter. Two edits anywhere make the costliest expansion there is
(most of an Elasticsearch typo query's time: the automaton walks the whole term dictionary), and a term
two edits away that also differs in its first letter is rarely the word meant."""

type MatchKind = Literal["exact", "prefix", "typo"]
type Group = Literal["t", "x", "j"]
"""Which indexed form an alternative matches: `t` the searchable fields' words, `x` a keyword field's whole
normalised value, `j` that value with its separators dropped."""


@dataclass(frozen=True, slots=True)
class Alternative:
    """One way a clause can match: `text` in `field` exactly, as a prefix, or within `edits` typos."""

    kind: MatchKind
    text: str
    field: str
    """The schema field's name (each backend maps it and `group` to its own indexed field)."""
    weight: float
    """The ranking digits of this way of matching (a constant added to the scaled BM25)."""
    edits: int = 0
    """For a typo alternative: exactly this many edits (1 or 2; a transposition counts as one)."""
    prefix_length: int = 0
    """For a typo alternative: a matched term starts with the first `prefix_length` characters of `text`."""
    group: Group = "t"


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
    """(field, ranking digits of the phrase matching there) for each searchable field."""


@dataclass(frozen=True, slots=True)
class ProximityClause:
    """Two consecutive query words, as typed, within `slop` positions of each other in one field: the
    proximity digit of documents that already match every word (it never admits a document)."""

    tokens: tuple[str, str]
    slop: int
    fields: tuple[str, ...]
    """Every searchable field."""
    weight: float
    """The proximity unit (a constant, no term statistics)."""


@dataclass(frozen=True, slots=True)
class WholeClause:
    """The whole query against keyword fields' whole values: a match of its own (the name path)."""

    text: str
    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What every backend runs for one search."""

    words: tuple[WordClause, ...]
    phrases: tuple[PhraseClause, ...]
    proximity: tuple[ProximityClause, ...]
    """Optional digits of the all-words match (they never admit a document)."""
    whole: WholeClause | None
    excluded_terms: tuple[str, ...]
    excluded_phrases: tuple[tuple[str, ...], ...]
    searchable: tuple[str, ...]
    """Every searchable field (exclusions apply to all of them)."""
    filters: tuple[Filter, ...]
    bm25: float = 0.0
    """The factor of every matched clause's engine score (BM25): their sum stays below one digit."""
    custom: tuple[tuple[int, float], ...] = ()
    """(bit, weight) of the custom ranking bucket: a document whose rank field holds the bit adds the weight."""
    tiers: Tiers | None = None
    """The mixed radix the weights come from (to explain a score)."""

    @property
    def match_all(self) -> bool:
        """No positive clause: every document matches (minus exclusions and filters)."""
        return not self.words and not self.phrases


def build_plan(query: ParsedQuery, filters: tuple[Filter, ...], schema: IndexSchema) -> QueryPlan:
    """The plan of a parsed query against `schema` (pure)."""
    tiers = tiers_for(schema, len(query.terms) + len(query.phrases))
    searchable = tuple(spec.name for spec in schema.searchable)
    words = tuple(
        WordClause(
            word=term.text,
            alternatives=_alternatives(term, position, searchable, tiers)
            + tuple(
                Alternative("exact", synonym, field, tiers.word(position, kind="synonym", edits=0, field=field))
                for synonym in schema.synonyms_of(term.text)
                for field in searchable
            ),
        )
        for position, term in enumerate(query.terms)
    )
    phrases = tuple(
        PhraseClause(
            tokens=tokens,
            fields=tuple(
                (field, tiers.word(len(query.terms) + number, kind="exact", edits=0, field=field))
                for field in searchable
            ),
        )
        for number, tokens in enumerate(query.phrases)
    )
    proximity = tuple(
        ProximityClause(
            tokens=(first.text, second.text), slop=PROXIMITY_SLOP, fields=searchable, weight=tiers.proximity(position)
        )
        for position, (first, second) in enumerate(zip(query.terms, query.terms[1:], strict=False))
        if tiers.proximity(position)
    )
    keyword_fields = tuple(s.name for s in schema.searchable if s.type == "keyword")
    whole = None
    if query.whole is not None and keyword_fields:
        whole = WholeClause(text=query.whole.text, alternatives=_whole_alternatives(query.whole, keyword_fields, tiers))
    return QueryPlan(
        words=words,
        phrases=phrases,
        proximity=proximity,
        whole=whole,
        excluded_terms=query.excluded_terms,
        excluded_phrases=query.excluded_phrases,
        searchable=searchable,
        filters=filters,
        bm25=tiers.bm25,
        custom=tiers.custom_weights(),
        tiers=tiers,
    )


def _alternatives(term: Term, position: int, fields: tuple[str, ...], tiers: Tiers) -> tuple[Alternative, ...]:
    found: list[Alternative] = []
    for field in fields:
        found.append(Alternative("exact", term.text, field, tiers.word(position, kind="exact", edits=0, field=field)))
        if term.prefix:
            weight = tiers.word(position, kind="prefix", edits=0, field=field)
            found.append(Alternative("prefix", term.text, field, weight))
        for edits in range(1, term.edits + 1):
            weight = tiers.word(position, kind="typo", edits=edits, field=field)
            found.append(Alternative("typo", term.text, field, weight, edits, TYPO_PREFIX_LENGTHS[edits]))
    return tuple(found)


def _whole_alternatives(whole: Term, fields: tuple[str, ...], tiers: Tiers) -> tuple[Alternative, ...]:
    """The name path: the exact value (`x`), the value without separators (`j`) exactly or as a prefix while
    typing, or the value within the typo budget (`x`: a separator typed, dropped or moved is an edit)."""
    joined = whole.text.replace(" ", "")
    found: list[Alternative] = []
    for field in fields:
        exact = tiers.whole(level="exact", edits=0, field=field)
        if joined == whole.text:
            # One word: a name equal to it has no separator, so its joined value is the word too; one clause
            # finds the name equal to it and the one equal to it without separators, both as exact.
            found.append(Alternative("exact", joined, field, exact, group="j"))
        else:
            found.append(Alternative("exact", whole.text, field, exact, group="x"))
            joined_weight = tiers.whole(level="joined", edits=0, field=field)
            found.append(Alternative("exact", joined, field, joined_weight, group="j"))
        if whole.prefix:
            weight = tiers.whole(level="prefix", edits=0, field=field)
            found.append(Alternative("prefix", joined, field, weight, group="j"))
        for edits in range(1, whole.edits + 1):
            weight = tiers.whole(level="typo", edits=edits, field=field)
            found.append(Alternative("typo", whole.text, field, weight, edits, TYPO_PREFIX_LENGTHS[edits], group="x"))
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
