"""Unit tests of src.search.analysis: normalisation, tokenisation, typo budgets and edit distance."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.search.analysis import allowed_edits, damerau_levenshtein, normalise, normalise_unicode, tokenize


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
def test_damerau_levenshtein_distances(a: str, b: str, expected: int) -> None:
    assert damerau_levenshtein(a, b, limit=5) == expected
    assert damerau_levenshtein(b, a, limit=5) == expected


def test_damerau_levenshtein_transposition_is_one_edit_within_limit_one() -> None:
    assert damerau_levenshtein("postgres", "postgers", limit=1) == 1


def test_damerau_levenshtein_exact_at_limit() -> None:
    assert damerau_levenshtein("kitten", "sitting", limit=3) == 3


def test_damerau_levenshtein_cut_off_above_limit() -> None:
    assert damerau_levenshtein("kitten", "sitting", limit=2) == 3
    assert damerau_levenshtein("kitten", "sitting", limit=1) == 2
    assert damerau_levenshtein("abc", "xyz", limit=0) == 1


def test_damerau_levenshtein_length_difference_short_circuits() -> None:
    assert damerau_levenshtein("a", "abcdef", limit=2) == 3
    assert damerau_levenshtein("abcdef", "", limit=1) == 2


def test_damerau_levenshtein_row_minimum_cut_off() -> None:
    # Same length (no length short-circuit) but every cell of the first rows already exceeds the limit.
    assert damerau_levenshtein("aaaa", "bbbb", limit=1) == 2
    assert damerau_levenshtein("xbcd", "abcd", limit=0) == 1


def test_damerau_levenshtein_final_cell_over_limit_is_capped() -> None:
    # The last row keeps a cell within the limit ("ab" vs "ab"), but the final distance exceeds it.
    assert damerau_levenshtein("abc", "abxy", limit=1) == 2
