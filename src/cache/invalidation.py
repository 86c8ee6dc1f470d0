"""Invalidation the indexer calls after each acknowledged batch.

Deleting a document's key and bumping the search generation also retire the ETags of what they
invalidate: ETags are hashes of the cached bodies, so the next request computes a new body (and a new
ETag when the content changed), and an old ETag no longer matches anything that is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from src.cache.base import Cache
from src.cache.keys import document_key, generation_key


async def invalidate_documents(
    doc_ids: Iterable[str], *, cache: Cache, namespace: str, schema_fingerprint: str
) -> None:
    """Delete the cached responses of these documents (raises CacheUnavailable: the caller retries)."""
    keys = [document_key(namespace, schema_fingerprint, doc_id) for doc_id in doc_ids]
    if keys:
        await cache.delete(*keys)


async def bump_search_generation(*, cache: Cache, namespace: str, schema_fingerprint: str) -> int:
    """Retire every cached search response of this scope and schema at once; returns the new generation."""
    return await cache.incr(generation_key(namespace, schema_fingerprint))


def make_invalidator(
    cache: Cache, *, namespace: str, schema_fingerprint: str
) -> Callable[[Sequence[str]], Awaitable[None]]:
    """What the indexer calls after each acknowledged batch: drop the documents' keys, bump the generation."""

    async def invalidate(doc_ids: Sequence[str]) -> None:
        await invalidate_documents(doc_ids, cache=cache, namespace=namespace, schema_fingerprint=schema_fingerprint)
        await bump_search_generation(cache=cache, namespace=namespace, schema_fingerprint=schema_fingerprint)

    return invalidate
