"""Invalidation the indexer calls after each acknowledged batch.

Deleting a document's key and bumping the search generation also retire the ETags of what they
invalidate: ETags are hashes of the cached bodies, so the next request computes a new body (and a new
ETag when the content changed), and an old ETag no longer matches anything that is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from src.cache.base import Cache
from src.cache.keys import document_key, generation_key, surrogate_keys
from src.cache.purge import PurgeQueue


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
    cache: Cache | None,
    *,
    namespace: str,
    schema_fingerprint: str,
    purges: PurgeQueue | None = None,
    announce: Callable[[Sequence[str], int | None], Awaitable[None]] | None = None,
) -> Callable[[Sequence[str]], Awaitable[None]]:
    """What the indexer calls after each acknowledged batch: drop the documents' keys, bump the generation
    (in the shared cache, when there is one), then hand the CDN purge their surrogate keys and the key of
    the generation the bump retired (in the background: the purge never blocks the stream)."""

    async def invalidate(doc_ids: Sequence[str]) -> None:
        generation = None
        if cache is not None:
            await invalidate_documents(doc_ids, cache=cache, namespace=namespace, schema_fingerprint=schema_fingerprint)
            generation = await bump_search_generation(
                cache=cache, namespace=namespace, schema_fingerprint=schema_fingerprint
            )
        if announce is not None:  # every API process drops them from its in-process tier at once
            await announce(doc_ids, generation)
        if purges is not None:
            purges.submit(surrogate_keys(list(doc_ids), generation - 1 if generation else None))

    return invalidate
