"""Unit tests of src.search.ranking: the ranking rules as the digits of one score."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from src.search.ranking import (
    CUSTOM_BITS,
    MAX_INTEGER_BITS,
    MAX_RANKED_WORDS,
    bucket_bits,
    custom_bucket,
    tiers_for,
)
from src.search.schema import DEFAULT_RULES, SchemaError, parse_rules
from tests.fixtures.catalog import SCHEMA

RANKED = dataclasses.replace(SCHEMA, custom=(("stock", True),))


@pytest.mark.parametrize("words", [1, 2, 3, 6, 16])
def test_tiers_for_when_rules_compared_no_later_rule_outweighs_one_unit_of_an_earlier(words: int) -> None:
    tiers = tiers_for(RANKED, words)
    for (rule, _), (lower, lower_base) in itertools.pairwise(tiers.bases):
        assert tiers.units[rule] == tiers.units[lower] * lower_base  # a mixed radix: base times unit below
    least = tiers.bases[-1][0]
    assert tiers.units[least] == 1.0  # BM25's fraction stays below the least significant digit
    top_rule, top_base = tiers.bases[0]
    assert tiers.units[top_rule] * top_base <= 2**MAX_INTEGER_BITS
    assert 1 <= tiers.ranked <= min(words, MAX_RANKED_WORDS)  # fewer when the digits would not fit


def test_tiers_for_when_scores_are_float32_keeps_every_digit_exact() -> None:
    tiers = tiers_for(RANKED, 3)
    best = tiers.whole(level="exact", edits=0, field="name") + sum(w for _, w in tiers.custom_weights())
    as_float32 = float(np.float32(best + 0.5))
    assert math.floor(as_float32) == best  # the integer part survives a 32-bit score with a BM25 fraction


MEILISEARCH = ("words", "typo", "proximity", "attribute", "exactness", "bm25")


def test_tiers_for_when_rule_order_changes_moves_the_digits() -> None:
    typo_first = tiers_for(dataclasses.replace(SCHEMA, rules=MEILISEARCH), 2)
    attribute_first = tiers_for(dataclasses.replace(SCHEMA, rules=("attribute", "typo", "bm25")), 2)
    one_typo_in_name = typo_first.word(0, kind="typo", edits=1, field="name")
    exact_in_body = typo_first.word(0, kind="exact", edits=0, field="body")
    assert exact_in_body > one_typo_in_name  # typo before attribute (the default)
    assert attribute_first.word(0, kind="typo", edits=1, field="name") > attribute_first.word(
        0, kind="exact", edits=0, field="body"
    )
    assert "proximity" not in attribute_first.units


def test_tiers_for_when_prefix_is_zero_typos_outranks_a_typo() -> None:
    tiers = tiers_for(SCHEMA, 1)  # the default: attribute before typo, so in one field
    assert tiers.word(0, kind="prefix", edits=0, field="name") > tiers.word(0, kind="typo", edits=1, field="name")
    typo_first = tiers_for(dataclasses.replace(SCHEMA, rules=MEILISEARCH), 1)
    assert typo_first.word(0, kind="prefix", edits=0, field="body") > typo_first.word(
        0, kind="typo", edits=1, field="name"
    )
    assert tiers.word(0, kind="exact", edits=0, field="name") > tiers.word(0, kind="prefix", edits=0, field="name")
    assert tiers.word(0, kind="exact", edits=0, field="name") > tiers.word(0, kind="synonym", edits=0, field="name")


def test_tiers_for_when_custom_follows_bm25_keeps_it_out_of_the_score() -> None:
    late = dataclasses.replace(RANKED, rules=("words", "typo", "proximity", "attribute", "exactness", "bm25", "custom"))
    assert tiers_for(late, 2).custom_weights() == ()
    assert tiers_for(RANKED, 1).custom_bits == CUSTOM_BITS


def test_tiers_for_when_query_is_long_counts_the_first_words_and_fewer_custom_bits() -> None:
    short, long = tiers_for(RANKED, 1), tiers_for(RANKED, 16)
    assert long.ranked <= MAX_RANKED_WORDS
    assert long.word(long.ranked, kind="exact", edits=0, field="name") == 0.0
    assert long.word(long.ranked - 1, kind="exact", edits=0, field="name") > 0.0
    assert 0 < long.custom_bits < short.custom_bits


def test_explain_when_score_decoded_names_each_rule_value() -> None:
    tiers = tiers_for(RANKED, 2)
    score = (
        tiers.word(0, kind="exact", edits=0, field="name")
        + tiers.word(1, kind="typo", edits=1, field="title")
        + tiers.proximity(0)
        + sum(weight for bit, weight in tiers.custom_weights() if bit in bucket_bits(37))
        + 0.25
    )
    details = tiers.explain(score, (500,))
    assert details["words"] == {"matched": 2, "of": 2}
    assert details.get("name") == {"matched": False}
    assert details.get("typo") == {"typos": 1, "counted_words": 2}
    assert details.get("proximity") == {"close_pairs": 1, "of": 1}
    assert details.get("exactness") == {"name_match": None, "exact_words": 1}
    assert details.get("custom") == {"bucket": 37 >> (CUSTOM_BITS - tiers.custom_bits), "values": [500]}
    assert details.get("bm25") == pytest.approx(0.25 / tiers.bm25, rel=1e-3)


def test_explain_when_whole_name_matched_says_so() -> None:
    tiers = tiers_for(SCHEMA, 1)
    details = tiers.explain(tiers.whole(level="joined", edits=0, field="name"))
    assert details.get("exactness") == {"name_match": "joined", "exact_words": 1}
    assert tiers.explain(None) == {"words": {"matched": 1, "of": 1}}


@pytest.mark.parametrize(
    ("value", "descending", "bucket"),
    [(0, True, 0), (1, True, 2), (3, True, 4), (1_000_000, True, 39), (10**30, True, 63), (None, True, 0)],
)
def test_custom_bucket_when_value_grows_by_half_octaves(value: int | None, descending: bool, bucket: int) -> None:
    assert custom_bucket(value, descending=descending) == bucket


def test_custom_bucket_when_ascending_mirrors_and_junk_is_lowest() -> None:
    assert custom_bucket(0, descending=False) == 63
    assert custom_bucket(-5, descending=True) == 0
    assert custom_bucket(float("nan"), descending=True) == 0
    assert custom_bucket(True, descending=True) == 0
    assert bucket_bits(37) == (0, 2, 5)


def test_parse_rules_when_valid_keeps_the_order() -> None:
    assert parse_rules(["typo", "words", "bm25", "custom"]) == ("typo", "words", "bm25", "custom")
    assert DEFAULT_RULES[-3:] == ("custom", "typo", "bm25")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["typo", "typo"], "once"),
        (["typo", "sort"], "unknown"),
        (["bm25", "typo"], "before bm25"),
        ("typo", "list"),
    ],
)
def test_parse_rules_when_invalid_names_the_problem(raw: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        parse_rules(raw)
