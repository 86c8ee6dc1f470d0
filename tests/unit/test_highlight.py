"""Unit tests of src.search.highlight: <mark> fragments of the original text."""

from __future__ import annotations

from src.search.highlight import highlight, word_matches
from src.search.query import ParsedQuery, Term, parse_q

LONG_TEXT = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nginx nu xi omicron pi rho sigma tau"
    " upsilon phi chi psi omega nginx end"
)


def _q(q: str) -> ParsedQuery:
    return parse_q(q, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=10)


def _hl(text: str, q: str, *, fragment_chars: int = 100, max_fragments: int = 3) -> list[str]:
    return highlight(text, _q(q), fragment_chars=fragment_chars, max_fragments=max_fragments)


# --- word_matches --------------------------------------------------------------------------------


def test_word_matches_exact() -> None:
    assert word_matches("nginx", _q("nginx ")) is True


def test_word_matches_within_typo_budget() -> None:
    query = _q("nginx ")
    assert word_matches("ngnix", query) is True  # transposition
    assert word_matches("nginy", query) is True  # substitution
    assert word_matches("ngin", query) is True  # deletion
    assert word_matches("mginy", query) is False  # two edits for a one-edit term


def test_word_matches_two_edits_for_long_terms() -> None:
    query = _q("postgres ")
    assert word_matches("potsgers", query) is True
    assert word_matches("potsgerz", query) is False


def test_word_matches_short_term_has_no_typo_budget() -> None:
    assert word_matches("cat", _q("car ")) is False


def test_word_matches_prefix_only_when_open() -> None:
    assert word_matches("webservers", _q("web")) is True
    assert word_matches("webservers", _q("web ")) is False


def test_word_matches_prefix_only_for_the_prefix_term() -> None:
    query = ParsedQuery(terms=(Term(text="web", edits=0, prefix=False), Term(text="ser", edits=0, prefix=True)))
    assert word_matches("server", query) is True
    assert word_matches("website", query) is False


def test_word_matches_phrase_words() -> None:
    query = _q('"http server" ')
    assert word_matches("http", query) is True
    assert word_matches("server", query) is True
    assert word_matches("https", query) is False


def test_word_matches_ignores_exclusions() -> None:
    assert word_matches("apache", _q("-apache")) is False
    assert word_matches("apache", _q("-foo-apache")) is False


# --- highlight -----------------------------------------------------------------------------------


def test_highlight_exact_word() -> None:
    assert _hl("The nginx web server", "nginx ") == ["The <mark>nginx</mark> web server"]


def test_highlight_fuzzy_and_case_insensitive() -> None:
    assert _hl("The ngnix web server and NGINX proxy", "nginx ") == [
        "The <mark>ngnix</mark> web server and <mark>NGINX</mark> proxy"
    ]


def test_highlight_prefix_of_last_word() -> None:
    assert _hl("Serving web pages with webservers", "web") == [
        "Serving <mark>web</mark> pages with <mark>webservers</mark>"
    ]


def test_highlight_closed_last_word_is_not_prefix() -> None:
    assert _hl("Serving web pages with webservers", "web ") == ["Serving <mark>web</mark> pages with webservers"]


def test_highlight_phrase_words() -> None:
    assert _hl("a fast http server, http only", '"http server" ') == [
        "a fast <mark>http</mark> <mark>server</mark>, <mark>http</mark> only"
    ]


def test_highlight_keeps_accents_of_original_text() -> None:
    assert _hl("Crème brûlée recipe", "creme BRULEE ") == ["<mark>Crème</mark> <mark>brûlée</mark> recipe"]


def test_highlight_accented_query_matches_plain_text() -> None:
    assert _hl("creme brulee recipe", "Crème ") == ["<mark>creme</mark> brulee recipe"]


def test_highlight_decomposed_accents_in_original_text() -> None:
    assert _hl("Cre\u0300me brulee", "creme ") == ["<mark>Cre\u0300me</mark> brulee"]


def test_highlight_escapes_html() -> None:
    assert _hl('<b>nginx</b> & "co" it\'s', "nginx ") == [
        "&lt;b&gt;<mark>nginx</mark>&lt;/b&gt; &amp; &quot;co&quot; it&#x27;s"
    ]


def test_highlight_escapes_script_tags() -> None:
    assert _hl("<script>alert(1)</script>", "script ") == [
        "&lt;<mark>script</mark>&gt;alert(1)&lt;/<mark>script</mark>&gt;"
    ]


def test_highlight_underscore_separates_words() -> None:
    assert _hl("foo_nginx_bar", "nginx ") == ["foo_<mark>nginx</mark>_bar"]


def test_highlight_ellipses_when_cut_on_both_sides() -> None:
    assert _hl(LONG_TEXT, "nginx ", fragment_chars=20, max_fragments=3) == [
        "…mu <mark>nginx</mark> nu xi…",
        "…<mark>nginx</mark> end",
    ]


def test_highlight_max_fragments_limits_fragments() -> None:
    assert _hl(LONG_TEXT, "nginx ", fragment_chars=20, max_fragments=1) == ["…mu <mark>nginx</mark> nu xi…"]


def test_highlight_zero_max_fragments() -> None:
    assert _hl("nginx nginx", "nginx ", max_fragments=0) == []


def test_highlight_fragments_in_text_order_with_trailing_ellipsis() -> None:
    text = "nginx one two three four five six seven eight nine ten eleven nginx"
    assert _hl(text, "nginx ", fragment_chars=30, max_fragments=5) == [
        "<mark>nginx</mark> one two three four five…",
        "…<mark>nginx</mark>",
    ]


def test_highlight_whole_text_fits_in_one_fragment() -> None:
    text = "nginx one two nginx"
    assert _hl(text, "nginx ", fragment_chars=100, max_fragments=1) == ["<mark>nginx</mark> one two <mark>nginx</mark>"]


def test_highlight_word_longer_than_fragment_is_kept_whole() -> None:
    word = "supercalifragilisticexpialidocious"
    assert _hl(f"{word} nginx", f"{word} ", fragment_chars=10, max_fragments=2) == [f"<mark>{word}</mark>…"]


def test_highlight_window_without_spaces_starts_at_match() -> None:
    assert _hl("ab-cd-nginx", "nginx ", fragment_chars=8) == ["…<mark>nginx</mark>"]


def test_highlight_window_without_spaces_cut_mid_text() -> None:
    assert _hl("nginx-abcdefghijklmnop", "nginx ", fragment_chars=8) == ["<mark>nginx</mark>-ab…"]


def test_highlight_no_match() -> None:
    assert _hl("nothing to see here", "nginx ") == []


def test_highlight_match_all_query_has_no_highlight() -> None:
    assert _hl("nginx web server", "") == []
    assert _hl("nginx web server", "-nginx") == []


def test_highlight_empty_text() -> None:
    assert _hl("", "nginx ") == []
