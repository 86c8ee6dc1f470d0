"""Unit tests of src.cache.keys: what makes two keys equal or different, and what a key may contain."""

from __future__ import annotations

import re

import pytest

from src.cache.keys import document_key, generation_key, lock_key, scoped_namespace, search_key

CANONICAL = b'{"q":"nginx","size":10}'
SAFE = re.compile(r"[A-Za-z0-9:_.-]+")
"""A key never carries request bytes: only the scope, the fingerprint, the generation and a hex digest."""


def test_search_key_when_same_request_is_equal_at_each_generation() -> None:
    first, again = search_key("ns", "fp1", CANONICAL), search_key("ns", "fp1", bytes(bytearray(CANONICAL)))
    assert first == again
    assert first.at(3) == again.at(3)
    assert SAFE.fullmatch(first.at(3))


@pytest.mark.parametrize(
    ("namespace", "fingerprint", "canonical"),
    [("ns-b", "fp1", CANONICAL), ("ns", "fp2", CANONICAL), ("ns", "fp1", b'{"q":"nginx","size":20}')],
)
def test_search_key_when_scope_schema_or_request_differs_differs(
    namespace: str, fingerprint: str, canonical: bytes
) -> None:
    assert search_key(namespace, fingerprint, canonical).at(0) != search_key("ns", "fp1", CANONICAL).at(0)


def test_search_key_when_bytes_differ_by_a_space_differs() -> None:
    assert search_key("ns", "fp1", b"").at(0) != search_key("ns", "fp1", b" ").at(0)


def test_search_key_at_when_generations_differ_gives_distinct_keys() -> None:
    key = search_key("ns", "fp1", CANONICAL)
    generations = [0, 1, 2, 11, 12, 12345]
    assert len({key.at(generation) for generation in generations}) == len(generations)
    assert all(str(generation) in key.at(generation) for generation in generations)


def test_generation_key_when_alias_or_schema_differs_is_another_counter() -> None:
    here = search_key(scoped_namespace("search", "packages"), "fp1", b"a")
    assert here.generation_key == search_key(scoped_namespace("search", "packages"), "fp1", b"b").generation_key
    assert here.generation_key == generation_key(scoped_namespace("search", "packages"), "fp1")
    others = {
        generation_key(scoped_namespace("search", "packages-staging"), "fp1"),
        generation_key(scoped_namespace("search", "packages"), "fp2"),
        generation_key(scoped_namespace("other", "packages"), "fp1"),
    }
    assert here.generation_key not in others
    assert len(others) == 3


def test_scoped_namespace_when_parts_shift_does_not_collide() -> None:
    assert scoped_namespace("a", "b-c") != scoped_namespace("a-b", "c")


@pytest.mark.parametrize(
    "doc_id",
    ["doc-1", "with space", "line\nbreak", "tab\there", "ünïcödé-文書-🎉", "a:b:c", "", "*", "\x00nul", "x" * 5000],
)
def test_document_key_when_id_is_any_string_is_safe_and_bounded(doc_id: str) -> None:
    key = document_key("ns", "fp1", doc_id)
    assert SAFE.fullmatch(key)
    assert len(key) < 64
    assert key == document_key("ns", "fp1", str(doc_id))


def test_document_key_when_ids_differ_slightly_differs() -> None:
    ids = ["a", "a ", "a\n", "A", "á", "b", "a:b", "a:b:"]
    assert len({document_key("ns", "fp1", doc_id) for doc_id in ids}) == len(ids)


def test_document_key_when_scope_or_schema_differs_differs() -> None:
    keys = {document_key("ns", "fp1", "x"), document_key("ns2", "fp1", "x"), document_key("ns", "fp2", "x")}
    assert len(keys) == 3


def test_document_key_when_generation_bumped_is_unaffected() -> None:
    key = document_key("ns", "fp1", "doc-1")
    search = search_key("ns", "fp1", b"doc-1")
    assert not key.startswith(search.prefix)
    assert key not in {search.at(0), search.at(1), search.generation_key}


def test_lock_key_when_derived_never_equals_the_key() -> None:
    keys = ["ns:doc:fp1:abc", search_key("ns", "fp1", CANONICAL).at(2)]
    locks = [lock_key(key) for key in keys]
    assert set(locks).isdisjoint(keys)
    assert len(set(locks)) == 2
