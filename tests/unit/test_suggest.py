"""Unit tests of src.search.suggest: "did you mean" from the top hit."""

from __future__ import annotations

from src.search.models import Document
from src.search.query import ParsedQuery, parse_q
from src.search.suggest import suggestion
from tests.fixtures.catalog import SCHEMA

NGINX: Document = {
    "id": "nginx",
    "name": "nginx",
    "title": "Small, fast web server",
    "body": "HTTP server and reverse proxy",
}


def _q(text: str) -> ParsedQuery:
    return parse_q(text, one_edit_min_chars=4, two_edits_min_chars=8, max_terms=16)


def test_suggestion_when_words_were_corrected_spells_them_as_the_hit_does() -> None:
    assert suggestion(_q("ngnix fsat "), NGINX, SCHEMA) == "nginx fast"
    assert suggestion(_q("revrse proxy "), NGINX, SCHEMA) == "reverse proxy"


def test_suggestion_when_words_match_as_typed_or_are_short_is_none() -> None:
    assert suggestion(_q("web server "), NGINX, SCHEMA) is None
    assert suggestion(_q("serv"), NGINX, SCHEMA) is None  # completes a word: still typing
    assert suggestion(_q("xyz "), NGINX, SCHEMA) is None  # too short for a typo: left alone
    assert suggestion(_q("ngnix "), None, SCHEMA) is None
    assert suggestion(_q(""), NGINX, SCHEMA) is None


def test_suggestion_when_hit_has_a_synonym_of_the_word_keeps_the_word() -> None:
    postgres: Document = {"id": "postgresql", "name": "postgresql", "title": "Object-relational SQL database"}
    assert suggestion(_q("pg "), postgres, SCHEMA) is None
