"""Unit tests of src.cache.keys: search, generation, document and lock keys."""

from __future__ import annotations

import hashlib
import re

import pytest

from src.cache.keys import GenerationalKey, document_key, generation_key, lock_key, search_key

CANONICAL = b'{"q":"nginx","size":10}'
DIGEST = re.compile(r"[0-9a-f]{32}")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def test_search_key_exact_parts() -> None:
    key = search_key("ns", "fp1", CANONICAL)
    assert key == GenerationalKey(
        generation_key="ns:generation",
        prefix="ns:search:fp1:g",
        suffix=f":{_sha(CANONICAL)}",
    )


def test_search_key_deterministic() -> None:
    assert search_key("ns", "fp1", CANONICAL) == search_key("ns", "fp1", bytes(bytearray(CANONICAL)))
    assert search_key("ns", "fp1", CANONICAL).at(3) == search_key("ns", "fp1", CANONICAL).at(3)


def test_search_key_differs_by_namespace() -> None:
    assert search_key("ns-a", "fp1", CANONICAL).at(0) != search_key("ns-b", "fp1", CANONICAL).at(0)


def test_search_key_differs_by_schema_fingerprint() -> None:
    assert search_key("ns", "fp1", CANONICAL).at(0) != search_key("ns", "fp2", CANONICAL).at(0)


def test_search_key_differs_by_canonical_bytes() -> None:
    other = b'{"q":"nginx","size":20}'
    assert search_key("ns", "fp1", CANONICAL).at(0) != search_key("ns", "fp1", other).at(0)
    assert search_key("ns", "fp1", b"").at(0) != search_key("ns", "fp1", b" ").at(0)


def test_search_key_at_puts_generation_in_the_middle() -> None:
    key = search_key("ns", "fp1", CANONICAL)
    assert key.at(7) == f"ns:search:fp1:g7:{_sha(CANONICAL)}"
    assert key.at(0) == f"ns:search:fp1:g0:{_sha(CANONICAL)}"
    assert key.at(12345) == f"{key.prefix}12345{key.suffix}"


def test_search_key_at_differs_per_generation() -> None:
    key = search_key("ns", "fp1", CANONICAL)
    assert len({key.at(1), key.at(2), key.at(11), key.at(12)}) == 4


def test_generation_key_format() -> None:
    assert generation_key("ns") == "ns:generation"


def test_generation_key_shared_by_search_keys_of_a_namespace() -> None:
    first = search_key("ns", "fp1", b"a")
    second = search_key("ns", "fp2", b"b")
    assert first.generation_key == second.generation_key == generation_key("ns")


def test_generation_key_differs_per_namespace() -> None:
    assert search_key("ns-a", "fp1", b"a").generation_key != search_key("ns-b", "fp1", b"a").generation_key


def test_document_key_exact_form() -> None:
    assert document_key("ns", "fp1", "doc-1") == f"ns:doc:fp1:{_sha(b'doc-1')}"


@pytest.mark.parametrize(
    "doc_id",
    ["doc-1", "with space", "line\nbreak", "tab\there", "ünïcödé-文書-🎉", "a:b:c", "", "*", "\x00nul"],
)
def test_document_key_hashes_any_id(doc_id: str) -> None:
    key = document_key("ns", "fp1", doc_id)
    prefix, _, digest = key.rpartition(":")
    assert prefix == "ns:doc:fp1"
    assert DIGEST.fullmatch(digest)
    assert digest == _sha(doc_id.encode())


def test_document_key_differs_per_id() -> None:
    ids = ["a", "a ", "a\n", "A", "á", "b"]
    assert len({document_key("ns", "fp1", doc_id) for doc_id in ids}) == len(ids)


def test_document_key_deterministic() -> None:
    assert document_key("ns", "fp1", "doc 1") == document_key("ns", "fp1", "doc " + "1")


def test_document_key_differs_by_namespace_and_fingerprint() -> None:
    keys = {document_key("ns", "fp1", "x"), document_key("ns2", "fp1", "x"), document_key("ns", "fp2", "x")}
    assert len(keys) == 3


def test_document_key_not_generational() -> None:
    key = document_key("ns", "fp1", "doc-1")
    assert not key.startswith(search_key("ns", "fp1", b"doc-1").prefix)
    assert key != search_key("ns", "fp1", b"doc-1").at(0)


def test_lock_key_suffix() -> None:
    assert lock_key("ns:doc:fp1:abc") == "ns:doc:fp1:abc:lock"
    assert lock_key("k") != "k"
