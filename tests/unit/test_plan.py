"""Unit tests of src.search.plan: the engine-neutral plan every backend translates."""

from __future__ import annotations

import dataclasses

from src.search.plan import TYPO_PREFIX_LENGTHS, QueryPlan, build_plan, relaxations
from src.search.query import ParsedQuery, parse_filters, parse_q
from src.search.ranking import PROXIMITY_SLOP, tiers_for
from tests.fixtures.catalog import SCHEMA


def _parse(q: str) -> ParsedQuery:
    return parse_q(q, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=16)


def test_build_plan_when_word_is_long_offers_exact_prefix_and_each_typo_count_per_field() -> None:
    plan = build_plan(_parse("postgresq"), (), SCHEMA)
    (word,) = plan.words
    tiers = tiers_for(SCHEMA, 1)
    name = [(alt.kind, alt.edits, alt.weight) for alt in word.alternatives if alt.field == "name"]
    assert name == [
        ("exact", 0, tiers.word(0, kind="exact", edits=0, field="name")),
        ("prefix", 0, tiers.word(0, kind="prefix", edits=0, field="name")),
        ("typo", 1, tiers.word(0, kind="typo", edits=1, field="name")),
        ("typo", 2, tiers.word(0, kind="typo", edits=2, field="name")),
    ]
    assert {alt.field for alt in word.alternatives} == {spec.name for spec in SCHEMA.searchable}
    assert {alt.group for alt in word.alternatives} == {"t"}


def test_build_plan_when_tiers_compared_orders_exact_prefix_one_typo_two_typos() -> None:
    plan = build_plan(_parse("postgresq"), (), SCHEMA)
    weights = {(alt.kind, alt.edits): alt.weight for alt in plan.words[0].alternatives if alt.field == "name"}
    assert weights["exact", 0] > weights["prefix", 0] > weights["typo", 1] > weights["typo", 2] > 0


def test_build_plan_when_word_allows_two_typos_keeps_the_first_letter_for_two_only() -> None:
    plan = build_plan(_parse("postgresq "), (), SCHEMA)
    assert plan.whole is not None
    for alternatives in (plan.words[0].alternatives, plan.whole.alternatives):
        kept = {(alt.edits, alt.prefix_length) for alt in alternatives if alt.kind == "typo"}
        assert kept == {(1, 0), (2, 1)}
    assert TYPO_PREFIX_LENGTHS == {1: 0, 2: 1}
    assert {alt.prefix_length for alt in plan.words[0].alternatives if alt.kind != "typo"} == {0}


def test_build_plan_when_query_has_words_adds_the_whole_query_on_keyword_fields_only() -> None:
    plan = build_plan(_parse("web serv"), (), SCHEMA)
    assert plan.whole is not None
    assert plan.whole.text == "web serv"
    keyword_fields = {spec.name for spec in SCHEMA.searchable if spec.type == "keyword"}
    assert {alt.field for alt in plan.whole.alternatives} == keyword_fields
    forms = {(alt.group, alt.kind, alt.text) for alt in plan.whole.alternatives}
    assert forms == {("x", "exact", "web serv"), ("j", "exact", "webserv"), ("j", "prefix", "webserv")} | {
        ("x", "typo", "web serv")
    }


def _best_words(plan: QueryPlan) -> float:
    return sum(max(alt.weight for alt in word.alternatives) for word in plan.words) + sum(
        pair.weight for pair in plan.proximity
    )


def test_build_plan_when_name_matches_whole_outranks_word_matches_of_as_many_typos() -> None:
    meilisearch = dataclasses.replace(SCHEMA, rules=("words", "typo", "proximity", "attribute", "exactness", "bm25"))
    plan = build_plan(_parse("quiet server "), (), meilisearch)
    assert plan.whole is not None
    by_form = {(alt.group, alt.kind, alt.edits): alt.weight for alt in plan.whole.alternatives}
    assert by_form["x", "exact", 0] > by_form["j", "exact", 0] > _best_words(plan)
    assert by_form["x", "typo", 1] < _best_words(plan)  # a typo of the name is a typo: after exact words
    exact_and_typo = sum(
        max(alt.weight for alt in word.alternatives if (alt.kind, alt.edits) == kind)
        for word, kind in zip(plan.words, [("exact", 0), ("typo", 1)], strict=True)
    ) + sum(pair.weight for pair in plan.proximity)
    assert by_form["x", "typo", 1] > exact_and_typo  # but before words with as many typos (exactness)


def test_build_plan_when_name_rule_is_first_a_misspelled_name_outranks_exact_words() -> None:
    name_first = dataclasses.replace(
        SCHEMA, rules=("words", "name_with_typos", "typo", "proximity", "attribute", "exactness", "bm25")
    )
    plan = build_plan(_parse("web server "), (), name_first)
    assert plan.whole is not None
    typo_name = next(alt.weight for alt in plan.whole.alternatives if alt.kind == "typo" and alt.edits == 1)
    assert typo_name > _best_words(plan)


def test_build_plan_when_query_is_empty_matches_all_with_filters_and_exclusions() -> None:
    filters = parse_filters(["category:web"], SCHEMA)
    plan = build_plan(_parse("-apache"), filters, SCHEMA)
    assert plan.match_all
    assert plan.whole is None
    assert plan.excluded_terms == ("apache",)
    assert plan.filters == filters
    assert plan.searchable == tuple(spec.name for spec in SCHEMA.searchable)
    assert plan.custom == ()


def test_build_plan_when_phrase_given_weighs_it_per_field() -> None:
    plan = build_plan(_parse('"web server"'), (), SCHEMA)
    (phrase,) = plan.phrases
    tiers = tiers_for(SCHEMA, 1)
    assert phrase.tokens == ("web", "server")
    assert dict(phrase.fields) == {
        spec.name: tiers.word(0, kind="exact", edits=0, field=spec.name) for spec in SCHEMA.searchable
    }


def test_build_plan_when_schema_has_custom_ranking_adds_its_bits() -> None:
    ranked = dataclasses.replace(SCHEMA, custom=(("stock", True),))
    plan = build_plan(_parse("web "), (), ranked)
    assert [bit for bit, _ in plan.custom] == [5, 4, 3, 2, 1, 0]
    assert plan.custom[0][1] == 2 * plan.custom[1][1]
    exactness_unit = plan.tiers.units["exactness"] if plan.tiers else 0
    assert sum(weight for _, weight in plan.custom) < exactness_unit  # custom ranks after exactness


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


def test_build_plan_when_several_words_adds_a_proximity_digit_per_consecutive_pair() -> None:
    plan = build_plan(_parse("quiet fan motor "), (), SCHEMA)
    assert [pair.tokens for pair in plan.proximity] == [("quiet", "fan"), ("fan", "motor")]
    assert all(pair.slop == PROXIMITY_SLOP for pair in plan.proximity)
    assert build_plan(_parse("quiet "), (), SCHEMA).proximity == ()
