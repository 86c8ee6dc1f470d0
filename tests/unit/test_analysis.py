"""Unit tests of src.search.analysis: normalisation, tokenisation and typo budgets; and the edit distance the
typo rules use everywhere (highlighting, suggestions, Tantivy's expansion, the test fake): rapidfuzz's OSA,
pinned here to the semantics the hand-written function it replaced had."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rapidfuzz.distance import OSA

from src.search.analysis import allowed_edits, normalise, normalise_unicode, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Crème-Brûlée  FAQ!", "creme brulee faq"),
        ("HELLO World", "hello world"),
        ("Straße", "strasse"),
        ("ﬁne", "fine"),  # NFKD compatibility decomposition of the ligature
        ("snake_case__name", "snake case name"),
        ("a.b,c;d/e", "a b c d e"),
        ("  leading and trailing  ", "leading and trailing"),
        ("tabs\tand\nnewlines", "tabs and newlines"),
        ("C++ & C#", "c c"),
        ("Ångström", "angstrom"),
        ("Çà ñ", "ca n"),
        ("v1.2.3", "v1 2 3"),
        ("日本語", "日本語"),
        ("", ""),
        ("!!! ---", ""),
    ],
)
def test_normalise_folds_strips_and_collapses(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_normalise_decomposed_and_precomposed_forms_agree() -> None:
    assert normalise("Cre\u0300me") == normalise("Crème") == "creme"


@given(st.text(alphabet=st.sampled_from(string.printable + "\x00\x01\x7f"), max_size=60))
def test_normalise_ascii_fast_path_equals_the_unicode_path(text: str) -> None:
    assert normalise(text) == normalise_unicode(text)


def test_tokenize_splits_normalised_text() -> None:
    assert tokenize("Crème-Brûlée  FAQ!") == ["creme", "brulee", "faq"]


def test_tokenize_empty_and_punctuation_only_give_no_tokens() -> None:
    assert tokenize("") == []
    assert tokenize(" -_- ") == []


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("", 0),
        ("abc", 0),
        ("abcd", 1),
        ("abcdefg", 1),
        ("abcdefgh", 2),
        ("abcdefghijkl", 2),
    ],
)
def test_allowed_edits_thresholds_four_and_eight(term: str, expected: int) -> None:
    assert allowed_edits(term, one_edit_min_chars=4, two_edits_min_chars=8) == expected


def test_allowed_edits_custom_thresholds() -> None:
    assert allowed_edits("ab", one_edit_min_chars=2, two_edits_min_chars=3) == 1
    assert allowed_edits("abc", one_edit_min_chars=2, two_edits_min_chars=3) == 2
    assert allowed_edits("a", one_edit_min_chars=2, two_edits_min_chars=3) == 0


def _reference_osa(a: str, b: str, *, limit: int) -> int:
    """The project's former hand-written distance, kept here only as the oracle `OSA.distance` must equal:
    optimal string alignment (an adjacent transposition is one edit, an already transposed pair is not
    edited again), `limit + 1` as soon as the distance is known to exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return min(prev[-1], limit + 1)


# A small alphabet makes repeats, transpositions and near misses common; the full one covers any text.
_WORDS = st.text(alphabet="abcd", max_size=10) | st.text(max_size=10)


@given(_WORDS, _WORDS, st.integers(min_value=0, max_value=12))
def test_osa_distance_equals_the_former_hand_written_distance(a: str, b: str, limit: int) -> None:
    assert OSA.distance(a, b, score_cutoff=limit) == _reference_osa(a, b, limit=limit)


@pytest.mark.parametrize(
    ("a", "b", "limit", "expected"),
    [
        ("abc", "ca", 5, 3),
        ("nginx", "ngnix", 1, 1),
        ("aaaa", "bbbb", 1, 2),  # a row over the limit
        ("a", "abcdef", 2, 3),  # lengths too far apart
        ("abc", "abxy", 1, 2),  # the final cell over the limit
    ],
)
def test_reference_osa_matches_known_distances(a: str, b: str, limit: int, expected: int) -> None:
    # The oracle itself, through each of its exits, so a wrong oracle cannot make the property pass.
    assert _reference_osa(a, b, limit=limit) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 0),
        ("nginx", "nginx", 0),
        ("", "ab", 2),
        ("ab", "", 2),
        ("nginx", "ngnix", 1),  # adjacent transposition "in" -> "ni" is one edit
        ("ab", "ba", 1),
        ("abcd", "bacd", 1),
        ("abcd", "abdc", 1),
        ("nginx", "nginxx", 1),  # insertion
        ("nginx", "ngix", 1),  # deletion
        ("nginx", "nginy", 1),  # substitution
        ("kitten", "sitting", 3),
        ("abc", "ca", 3),  # optimal string alignment: no edit of an already transposed pair
        ("flaw", "lawn", 2),
    ],
)
def test_osa_distance_known_pairs_both_ways(a: str, b: str, expected: int) -> None:
    assert OSA.distance(a, b, score_cutoff=5) == expected
    assert OSA.distance(b, a, score_cutoff=5) == expected


def test_osa_distance_transposition_is_one_edit_within_limit_one() -> None:
    assert OSA.distance("postgres", "postgers", score_cutoff=1) == 1


def test_osa_distance_exact_at_limit() -> None:
    assert OSA.distance("kitten", "sitting", score_cutoff=3) == 3


def test_osa_distance_cut_off_above_limit() -> None:
    assert OSA.distance("kitten", "sitting", score_cutoff=2) == 3
    assert OSA.distance("kitten", "sitting", score_cutoff=1) == 2
    assert OSA.distance("abc", "xyz", score_cutoff=0) == 1


def test_osa_distance_length_difference_over_limit() -> None:
    assert OSA.distance("a", "abcdef", score_cutoff=2) == 3
    assert OSA.distance("abcdef", "", score_cutoff=1) == 2


def test_osa_distance_same_length_over_limit() -> None:
    assert OSA.distance("aaaa", "bbbb", score_cutoff=1) == 2
    assert OSA.distance("xbcd", "abcd", score_cutoff=0) == 1


def test_osa_distance_final_cell_over_limit_is_capped() -> None:
    assert OSA.distance("abc", "abxy", score_cutoff=1) == 2
