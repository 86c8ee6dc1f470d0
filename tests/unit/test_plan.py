"""Unit tests of src.search.plan: the engine-neutral plan every backend translates."""

from __future__ import annotations

from src.search.plan import (
    EXACT_WEIGHT,
    PREFIX_WEIGHT,
    PROXIMITY_SLOP,
    TYPO_PREFIX_LENGTHS,
    TYPO_WEIGHTS,
    WHOLE_EXACT_WEIGHT,
    build_plan,
    relaxations,
)
from src.search.query import ParsedQuery, parse_filters, parse_q
from tests.fixtures.catalog import SCHEMA


def _parse(q: str) -> ParsedQuery:
    return parse_q(q, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=16)


def test_build_plan_when_word_is_long_offers_exact_prefix_and_each_typo_count_per_field() -> None:
    plan = build_plan(_parse("postgresq"), (), SCHEMA)
    (word,) = plan.words
    name = [(alt.kind, alt.edits, alt.weight) for alt in word.alternatives if alt.field == "name"]
    boost = next(spec.boost for spec in SCHEMA.searchable if spec.name == "name")
    assert name == [
        ("exact", 0, boost * EXACT_WEIGHT),
        ("prefix", 0, boost * PREFIX_WEIGHT),
        ("typo", 1, boost * TYPO_WEIGHTS[1]),
        ("typo", 2, boost * TYPO_WEIGHTS[2]),
    ]
    assert {alt.field for alt in word.alternatives} == {spec.name for spec in SCHEMA.searchable}


def test_build_plan_when_word_allows_two_typos_keeps_the_first_letter_for_two_only() -> None:
    plan = build_plan(_parse("postgresq "), (), SCHEMA)
    assert plan.whole is not None
    for alternatives in (plan.words[0].alternatives, plan.whole.alternatives):
        kept = {(alt.edits, alt.prefix_length) for alt in alternatives if alt.kind == "typo"}
        assert kept == {(1, 0), (2, 1)}
    assert TYPO_PREFIX_LENGTHS == {1: 0, 2: 1}
    assert {alt.prefix_length for alt in plan.words[0].alternatives if alt.kind != "typo"} == {0}


def test_build_plan_when_tiers_compared_orders_exact_prefix_one_typo_two_typos() -> None:
    assert EXACT_WEIGHT > PREFIX_WEIGHT > TYPO_WEIGHTS[1] > TYPO_WEIGHTS[2] > 0


def test_build_plan_when_query_has_words_adds_the_whole_query_on_keyword_fields_only() -> None:
    plan = build_plan(_parse("web serv"), (), SCHEMA)
    assert plan.whole is not None
    assert plan.whole.text == "web serv"
    keyword_fields = {spec.name for spec in SCHEMA.searchable if spec.type == "keyword"}
    assert {alt.field for alt in plan.whole.alternatives} == keyword_fields
    assert (
        max(alt.weight for alt in plan.whole.alternatives)
        == max(spec.boost for spec in SCHEMA.searchable if spec.type == "keyword") * WHOLE_EXACT_WEIGHT
    )


def test_build_plan_when_query_is_empty_matches_all_with_filters_and_exclusions() -> None:
    filters = parse_filters(["category:web"], SCHEMA)
    plan = build_plan(_parse("-apache"), filters, SCHEMA)
    assert plan.match_all
    assert plan.whole is None
    assert plan.excluded_terms == ("apache",)
    assert plan.filters == filters
    assert plan.searchable == tuple(spec.name for spec in SCHEMA.searchable)


def test_build_plan_when_phrase_given_weighs_it_per_field() -> None:
    plan = build_plan(_parse('"web server"'), (), SCHEMA)
    (phrase,) = plan.phrases
    assert phrase.tokens == ("web", "server")
    assert dict(phrase.fields) == {spec.name: spec.boost * EXACT_WEIGHT for spec in SCHEMA.searchable}


def test_relaxations_when_words_do_not_all_match_drop_them_from_the_end() -> None:
    steps = relaxations(_parse('web server "http proxy" fast cheap -apache '))
    assert [([t.text for t in relaxed.terms], ignored) for relaxed, ignored in steps] == [
        (["web", "server", "fast"], ("cheap",)),
        (["web", "server"], ("fast", "cheap")),
        (["web"], ("server", "fast", "cheap")),
    ]
    relaxed, _ = steps[0]
    assert relaxed.phrases == (("http", "proxy"),)
    assert relaxed.excluded_terms == ("apache",)
    assert relaxed.whole is None


def test_relaxations_when_one_word_offers_none() -> None:
    assert relaxations(_parse("nginx")) == []


def test_build_plan_when_several_words_adds_a_proximity_bonus_per_consecutive_pair() -> None:
    plan = build_plan(_parse("quiet fan motor "), (), SCHEMA)
    assert [pair.tokens for pair in plan.proximity] == [("quiet", "fan"), ("fan", "motor")]
    assert all(pair.slop == PROXIMITY_SLOP for pair in plan.proximity)
    assert build_plan(_parse("quiet "), (), SCHEMA).proximity == ()
