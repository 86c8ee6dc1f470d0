"""Unit tests of src.search.backends.vocabulary: typo expansion from a term dictionary."""

from __future__ import annotations

from src.search.backends.vocabulary import FieldVocabulary

TERMS = [("rendered", 40), ("render", 90), ("renderer", 12), ("tender", 5), ("rendering", 30), ("colected", 1)]


def test_expand_when_word_has_typos_finds_terms_by_distance_then_frequency() -> None:
    vocabulary = FieldVocabulary.build(TERMS)
    assert vocabulary.expand("renderred", 2, max_expansions=10) == [("rendered", 1), ("renderer", 2)]
    assert vocabulary.expand("renderred", 1, max_expansions=10) == [("rendered", 1)]
    assert vocabulary.expand("rendr", 1, max_expansions=10) == [("render", 1)]


def test_expand_when_two_edits_must_keep_the_first_letter_drops_the_others_before_the_bound() -> None:
    vocabulary = FieldVocabulary.build([("sender", 50), ("tenders", 40), ("rendered", 1), ("venders", 30)])
    assert vocabulary.expand("renders", 2, max_expansions=10) == [
        ("tenders", 1),
        ("venders", 1),
        ("sender", 2),
        ("rendered", 2),
    ]
    kept = vocabulary.expand("renders", 2, max_expansions=3, prefix_lengths={1: 0, 2: 1})
    assert kept == [("tenders", 1), ("venders", 1), ("rendered", 2)]  # one typo anywhere; two keep the "r"


def test_expand_when_transposed_counts_one_edit() -> None:
    vocabulary = FieldVocabulary.build(TERMS)
    assert vocabulary.expand("rnederer", 1, max_expansions=10) == [("renderer", 1)]


def test_expand_when_word_is_itself_a_term_leaves_it_to_the_exact_match() -> None:
    vocabulary = FieldVocabulary.build(TERMS)
    assert ("render", 0) not in vocabulary.expand("render", 1, max_expansions=10)
    assert vocabulary.expand("render", 1, max_expansions=10) == [("tender", 1)]


def test_expand_when_many_terms_match_keeps_the_bound_closest_and_most_frequent_first() -> None:
    vocabulary = FieldVocabulary.build([(f"ab{c}d", n) for n, c in enumerate("efghijklmnop")])
    found = vocabulary.expand("abzd", 1, max_expansions=3)
    assert found == [("abpd", 1), ("abod", 1), ("abnd", 1)]
    assert len(vocabulary) == 12


def test_blended_when_a_variant_is_rare_scores_it_as_common_as_the_most_common() -> None:
    from src.search.backends.tantivy.expansion import blended

    found = blended([("library", 1), ("libary", 1)], {"library": 500, "libary": 1}, 10_000)
    assert found[0] == ("library", 1, 1.0)
    term, edits, boost = found[1]
    assert (term, edits) == ("libary", 1)
    assert 0 < boost < 1  # the rare variant is damped to the common one's rarity
    assert blended([], {}, 10) == []


def test_expand_when_word_has_no_more_distinct_characters_than_edits_still_filters_by_added_ones() -> None:
    vocabulary = FieldVocabulary.build([("aaab", 3), ("aaaaa", 5), ("bbbb", 9), ("aabc", 1)])
    # One distinct character and one edit: the lacked-characters bound rules nothing out, the added one does.
    assert vocabulary.expand("aaaa", 1, max_expansions=10) == [("aaaaa", 1), ("aaab", 1)]
    assert vocabulary.expand("aaaa", 2, max_expansions=10) == [("aaaaa", 1), ("aaab", 1), ("aabc", 2)]
