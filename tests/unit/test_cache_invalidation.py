"""Unit tests of src.cache.invalidation against the in-process cache."""

from __future__ import annotations

from src.cache.invalidation import bump_search_generation, invalidate_documents
from src.cache.keys import document_key, scoped_namespace, search_key
from src.cache.memory import MemoryCache

NS = "ns"
FP = "fp1"


class RecordingCache(MemoryCache):
    """A MemoryCache that records its delete calls."""

    def __init__(self) -> None:
        super().__init__(max_entries=100, max_bytes=10_000)
        self.deletes: list[tuple[str, ...]] = []

    async def delete(self, *keys: str) -> None:
        self.deletes.append(keys)
        await super().delete(*keys)


async def _seed(cache: MemoryCache, doc_ids: list[str]) -> None:
    for doc_id in doc_ids:
        await cache.set(document_key(NS, FP, doc_id), doc_id.encode(), 60.0)


async def test_invalidate_documents_deletes_exactly_the_document_keys() -> None:
    cache = RecordingCache()
    await _seed(cache, ["a", "b", "c d", "é\n"])
    other_ns = document_key("other", FP, "a")
    other_fp = document_key(NS, "fp2", "a")
    search = search_key(NS, FP, b"a").at(0)
    for key in (other_ns, other_fp, search):
        await cache.set(key, b"keep", 60.0)

    await invalidate_documents(["a", "é\n"], cache=cache, namespace=NS, schema_fingerprint=FP)

    assert await cache.get(document_key(NS, FP, "a")) is None
    assert await cache.get(document_key(NS, FP, "é\n")) is None
    assert await cache.get(document_key(NS, FP, "b")) == b"b"
    assert await cache.get(document_key(NS, FP, "c d")) == b"c d"
    assert await cache.get(other_ns) == b"keep"
    assert await cache.get(other_fp) == b"keep"
    assert await cache.get(search) == b"keep"
    assert cache.deletes == [(document_key(NS, FP, "a"), document_key(NS, FP, "é\n"))]


async def test_invalidate_documents_accepts_any_iterable() -> None:
    cache = RecordingCache()
    await _seed(cache, ["a", "b"])
    await invalidate_documents(iter(["b"]), cache=cache, namespace=NS, schema_fingerprint=FP)
    assert await cache.get(document_key(NS, FP, "b")) is None
    assert await cache.get(document_key(NS, FP, "a")) == b"a"


async def test_invalidate_documents_absent_ids_are_fine() -> None:
    cache = RecordingCache()
    await _seed(cache, ["a"])
    await invalidate_documents(["never-cached"], cache=cache, namespace=NS, schema_fingerprint=FP)
    assert await cache.get(document_key(NS, FP, "a")) == b"a"
    assert cache.deletes == [(document_key(NS, FP, "never-cached"),)]


async def test_invalidate_documents_empty_ids_is_a_no_op() -> None:
    cache = RecordingCache()
    await _seed(cache, ["a"])
    await invalidate_documents([], cache=cache, namespace=NS, schema_fingerprint=FP)
    assert cache.deletes == []
    assert await cache.get(document_key(NS, FP, "a")) == b"a"


async def test_bump_search_generation_increments() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=10_000)
    assert await bump_search_generation(cache=cache, namespace=NS, schema_fingerprint=FP) == 1
    assert await bump_search_generation(cache=cache, namespace=NS, schema_fingerprint=FP) == 2
    assert await bump_search_generation(cache=cache, namespace="other", schema_fingerprint=FP) == 1


async def test_bump_search_generation_changes_the_key_read() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=10_000)
    key = search_key(NS, FP, b'{"q":"nginx"}')
    await cache.set(key.at(0), b"generation zero", 60.0)
    await cache.set(key.at(1), b"generation one", 60.0)
    assert await cache.get_generational(key.generation_key, key.prefix, key.suffix) == (0, b"generation zero")

    assert await bump_search_generation(cache=cache, namespace=NS, schema_fingerprint=FP) == 1

    assert await cache.get_generational(key.generation_key, key.prefix, key.suffix) == (1, b"generation one")
    await bump_search_generation(cache=cache, namespace=NS, schema_fingerprint=FP)
    assert await cache.get_generational(key.generation_key, key.prefix, key.suffix) == (2, None)


async def test_bump_search_generation_leaves_other_namespaces() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=10_000)
    other = search_key("other", FP, b"q")
    await cache.set(other.at(0), b"other zero", 60.0)
    await bump_search_generation(cache=cache, namespace=NS, schema_fingerprint=FP)
    assert await cache.get_generational(other.generation_key, other.prefix, other.suffix) == (0, b"other zero")


async def test_bump_search_generation_keeps_document_keys() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=10_000)
    await _seed(cache, ["a"])
    await bump_search_generation(cache=cache, namespace=NS, schema_fingerprint=FP)
    assert await cache.get(document_key(NS, FP, "a")) == b"a"


async def test_bump_search_generation_when_another_alias_or_schema_bumps_keeps_this_one() -> None:
    cache = MemoryCache(max_entries=100, max_bytes=10_000)
    here = search_key(scoped_namespace("search", "packages"), FP, b"q")
    await cache.set(here.at(0), b"ours", 60.0)
    await bump_search_generation(cache=cache, namespace=scoped_namespace("search", "staging"), schema_fingerprint=FP)
    await bump_search_generation(cache=cache, namespace=scoped_namespace("search", "packages"), schema_fingerprint="v2")
    assert await cache.get_generational(here.generation_key, here.prefix, here.suffix) == (0, b"ours")
