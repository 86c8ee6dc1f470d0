"""The query plan (src/search/plan.py) translated into a Tantivy query: this engine's querydsl.py.

Only Tantivy's query constructors are called. A typo alternative becomes the index's own terms at its
edit count when an `Expand` is given (the open index's vocabulary, see expansion.py), else Tantivy's
constant-score fuzzy query.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import tantivy

from src.search.backends.tantivy.schema import FIELD_TYPES, RANK_FIELD
from src.search.plan import Alternative, QueryPlan, build_plan
from src.search.query import BackendQuery, Filter, FilterValue, RangeFilter
from src.search.schema import FieldSpec, IndexSchema

type Expansion = tuple[str, int, float, frozenset[str]]
"""A typo expansion: the term, its edit count, its blended boost, and the fields that hold it."""
type Expand = Callable[[str, str, int], list[Expansion]]
"""(field group "t" or "x", word, max edits) -> the index's terms within that distance, with their edit
counts and a boost that blends their rarity: "t" is every searchable field's terms together, "x" every
keyword field's whole values."""
type Holders = Callable[[str, str], frozenset[str] | None]
"""(field group, term) -> the fields of the group holding the term, or None when that is not known (no
vocabulary of the searcher's very index yet: a term may be new): a sure "no field" lets a plan skip it."""


def build_tantivy_query(
    query: BackendQuery,
    schema: IndexSchema,
    tschema: tantivy.Schema,
    expand: Expand | None = None,
    holders: Holders | None = None,
) -> tantivy.Query:
    """Translate the query plan (see src/search/plan.py) into a Tantivy query."""
    return translate_plan(build_plan(query.query, query.filters, schema), tschema, expand, holders)


def translate_plan(
    plan: QueryPlan, tschema: tantivy.Schema, expand: Expand | None = None, holders: Holders | None = None
) -> tantivy.Query:
    """Every word and phrase, or the whole query as a name (the better of the two scores); the custom ranking
    bits; filters (scoring nothing); exclusions.

    Each alternative scores its constant ranking digits plus its BM25 times the plan's `bm25` (a constant
    clause over every document beside the match: no second evaluation of the match). With `expand`, a typo
    alternative becomes the index's real terms at exactly its edit count, each scored by BM25 (see
    vocabulary.py); without, Tantivy's constant-score fuzzy query. With `holders`, an exact alternative of
    a term that no document's field holds is left out: a misspelled word (most typo queries' words) costs
    no clause per field that could only match nothing.
    """
    Occur, Query = tantivy.Occur, tantivy.Query
    epsilon = plan.bm25

    def clause(alternatives: tuple[Alternative, ...]) -> tantivy.Query:
        grouped: dict[tuple[str, int], list[tuple[str, float]]] | None = None
        queries: list[tantivy.Query] = []
        for alt in alternatives:
            # A whole value is one term of one token: its BM25 is the same for every document holding it (and,
            # blended, for every expansion of a typo), so the constant alone scores it, with no second clause.
            whole = alt.group != "t"
            if alt.kind == "exact" and holders is not None:
                held = holders(alt.group, alt.text)
                if held is not None and f"{alt.group}_{alt.field}" not in held:
                    continue
            if alt.kind != "typo" or expand is None:
                matched = _alternative(alt, tschema)
                queries.append(
                    Query.const_score_query(matched, alt.weight + epsilon)
                    if whole
                    else _scored(matched, alt.weight, epsilon)
                )
                continue
            if grouped is None:  # one expansion per word, shared by every field and edit count
                typos = [a.edits for a in alternatives if a.kind == "typo" and a.group == alt.group]
                grouped = _by_field_and_edits(expand(alt.group, alt.text, max(typos)))
            field = f"{alt.group}_{alt.field}"
            expansions = grouped.get((field, alt.edits), ())  # only where a term occurs: no lookups elsewhere
            if not expansions:
                continue
            if whole:
                terms = _dis_max([Query.term_query(tschema, field, term) for term, _ in expansions])
                queries.append(Query.const_score_query(terms, alt.weight + epsilon))
                continue
            terms = _dis_max(
                [Query.boost_query(Query.term_query(tschema, field, term), blend) for term, blend in expansions]
            )
            queries.append(_scored(terms, alt.weight, epsilon))
        return _dis_max(queries) if queries else Query.empty_query()

    positive = [clause(word.alternatives) for word in plan.words]
    positive += [
        _dis_max([_scored(_phrase(field, phrase.tokens, tschema), weight, epsilon) for field, weight in phrase.fields])
        for phrase in plan.phrases
    ]
    nearby = [
        Query.const_score_query(
            _dis_max(
                [Query.phrase_query(tschema, f"t_{field}", list(pair.tokens), slop=pair.slop) for field in pair.fields]
            ),
            pair.weight,
        )
        for pair in plan.proximity
        if holders is None or all(holders("t", token) != frozenset() for token in pair.tokens)  # else none near
    ]
    if positive:
        matched = (
            positive[0]
            if len(positive) == 1 and not nearby
            else Query.boolean_query(
                [(Occur.Must, clause) for clause in positive] + [(Occur.Should, clause) for clause in nearby]
            )
        )
        if plan.whole is not None:
            matched = Query.disjunction_max_query([matched, clause(plan.whole.alternatives)])
    else:
        matched = Query.all_query()
    clauses: list[tuple[tantivy.Occur, tantivy.Query]] = [(Occur.Must, matched)]
    clauses.extend(
        (Occur.Should, Query.const_score_query(Query.term_query(tschema, RANK_FIELD, str(bit)), weight))
        for bit, weight in plan.custom
    )
    clauses.extend((Occur.Must, Query.const_score_query(_filter_query(item, tschema), 0.0)) for item in plan.filters)
    clauses.extend((Occur.MustNot, clause) for clause in _negative_clauses(plan, tschema))
    if len(clauses) == 1:
        # A lone required clause scores and matches as itself; wrapping it would copy the whole tree again.
        return matched
    return Query.boolean_query(clauses)


def _scored(query: tantivy.Query, digits: float, epsilon: float) -> tantivy.Query:
    """`query`'s BM25 times `epsilon`, plus the constant `digits` (a clause over every document, which costs
    a step per match rather than a second evaluation of `query`)."""
    scaled = tantivy.Query.boost_query(query, epsilon)
    if not digits:
        return scaled
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, scaled), (tantivy.Occur.Should, _constant(digits))])


@functools.lru_cache(maxsize=4096)
def _constant(digits: float) -> tantivy.Query:
    """The constant clause of `digits` (queries are immutable and copied into the trees that use them: a
    query's few digit values are built once, not once per alternative)."""
    return tantivy.Query.const_score_query(tantivy.Query.all_query(), digits)


def _by_field_and_edits(expanded: list[Expansion]) -> dict[tuple[str, int], list[tuple[str, float]]]:
    """(term, blended boost) of each expansion under every (field holding it, edit count), in order."""
    grouped: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for term, edits, blend, holders in expanded:
        for field in holders:
            grouped.setdefault((field, edits), []).append((term, blend))
    return grouped


def _dis_max(queries: list[tantivy.Query]) -> tantivy.Query:
    return queries[0] if len(queries) == 1 else tantivy.Query.disjunction_max_query(queries)


def _alternative(alt: Alternative, tschema: tantivy.Schema) -> tantivy.Query:
    Query = tantivy.Query
    field = f"{alt.group}_{alt.field}"
    if alt.kind == "exact":
        matched = Query.term_query(tschema, field, alt.text)
    elif alt.kind == "prefix":
        matched = Query.fuzzy_term_query(tschema, field, alt.text, 0, True, True)
    else:
        matched = Query.fuzzy_term_query(tschema, field, alt.text, alt.edits, True, False)
        if alt.prefix_length:  # the fuzzy query has no kept prefix of its own: require it beside, scoring nothing
            kept = Query.regex_query(tschema, field, re.escape(alt.text[: alt.prefix_length]) + ".*")
            matched = Query.boolean_query(
                [(tantivy.Occur.Must, matched), (tantivy.Occur.Must, Query.const_score_query(kept, 0.0))]
            )
    return matched


def _phrase(field: str, tokens: tuple[str, ...], tschema: tantivy.Schema) -> tantivy.Query:
    name = f"t_{field}"
    if len(tokens) == 1:
        return tantivy.Query.term_query(tschema, name, tokens[0])
    return tantivy.Query.phrase_query(tschema, name, list(tokens))


def _negative_clauses(plan: QueryPlan, tschema: tantivy.Schema) -> list[tantivy.Query]:
    clauses = [
        tantivy.Query.term_query(tschema, f"t_{field}", term)
        for term in plan.excluded_terms
        for field in plan.searchable
    ]
    clauses.extend(_phrase(field, phrase, tschema) for phrase in plan.excluded_phrases for field in plan.searchable)
    return clauses


def _filter_query(item: Filter, tschema: tantivy.Schema) -> tantivy.Query:
    field = f"v_{item.field.name}"
    if isinstance(item, RangeFilter):
        return _range(item.field, tschema, item.lower, item.upper, item.include_lower, item.include_upper)
    if item.field.type == "keyword":
        return tantivy.Query.term_set_query(tschema, field, [str(value) for value in item.values])
    return tantivy.Query.boolean_query(
        [(tantivy.Occur.Should, _range(item.field, tschema, value, value, True, True)) for value in item.values]
    )


def _range(
    spec: FieldSpec,
    tschema: tantivy.Schema,
    lower: FilterValue | None,
    upper: FilterValue | None,
    include_lower: bool,
    include_upper: bool,
) -> tantivy.Query:
    return tantivy.Query.range_query(
        tschema,
        f"v_{spec.name}",
        FIELD_TYPES[spec.type],
        _range_bound(spec, lower),
        _range_bound(spec, upper),
        include_lower,
        include_upper,
    )


def _range_bound(spec: FieldSpec, value: FilterValue | None) -> FilterValue | None:
    if spec.type == "float" and isinstance(value, int):
        return float(value)  # Tantivy wants a float bound for a float field
    return value
