"""Build the configured Cache and cache-aside policy from settings."""

from __future__ import annotations

import sys

from src.cache.aside import CacheAside, CachePolicy
from src.cache.base import Cache
from src.cache.keys import scoped_namespace
from src.cache.memory import MemoryCache
from src.cache.null import NullCache
from src.cache.tiered import TieredCache
from src.settings import Settings


def create_shared_cache(settings: Settings) -> Cache:
    """The cache every process shares: Redis (or Redis Cluster) when REDIS_URL is set, else the in-process LRU."""
    if settings.redis_url:
        from src.cache.redis import create_redis_cache  # redis-py loads only where Redis is configured

        return create_redis_cache(
            settings.redis_url,
            timeout_seconds=settings.redis_timeout_seconds,
            connect_timeout_seconds=settings.redis_connect_timeout_seconds,
            failure_threshold=settings.redis_breaker_failures,
            reset_seconds=settings.redis_breaker_reset_seconds,
            cluster=settings.redis_cluster,
            max_connections=settings.redis_max_connections,
        )
    return MemoryCache(max_entries=settings.cache_memory_max_entries, max_bytes=settings.cache_memory_max_bytes)


def create_cache(settings: Settings) -> Cache:
    """The API's cache: none when disabled; Redis behind a small in-process tier; or the in-process LRU."""
    if not settings.cache_enabled:
        return NullCache()
    shared = create_shared_cache(settings)
    if not settings.redis_url or settings.cache_near_ttl_seconds <= 0:
        return shared
    near = MemoryCache(max_entries=settings.cache_near_max_entries, max_bytes=settings.cache_near_max_bytes)
    keep = settings.cache_hard_ttl_seconds * (1 + settings.cache_ttl_jitter) + settings.cache_stale_if_error_seconds
    return TieredCache(
        near,
        shared,
        near_ttl_seconds=settings.cache_near_ttl_seconds,
        generation_poll_seconds=settings.cache_generation_poll_ms / 1000,
        keep_seconds=keep,
    )


def cache_policy(settings: Settings) -> CachePolicy:
    """The cache-aside policy from settings; keys are scoped by namespace and index alias."""
    return CachePolicy(
        namespace=scoped_namespace(settings.cache_namespace, settings.index_alias),
        soft_ttl_seconds=settings.cache_soft_ttl_seconds,
        hard_ttl_seconds=settings.cache_hard_ttl_seconds,
        jitter=settings.cache_ttl_jitter,
        stale_if_error_seconds=settings.cache_stale_if_error_seconds,
        negative_ttl_seconds=settings.cache_negative_ttl_seconds,
        max_entry_bytes=settings.cache_max_entry_bytes,
        lock_lease_seconds=settings.cache_lock_lease_seconds,
        lock_wait_seconds=settings.cache_lock_wait_seconds,
        # Nothing is kept when the cache is off: a response is gzipped when served, if its client asks
        # (HttpCachePolicy.compress_min_bytes), not for an entry no one reads again.
        gzip_min_bytes=settings.cache_gzip_min_bytes if settings.cache_enabled else sys.maxsize,
        max_inflight=settings.search_max_inflight,
    )


def create_cache_aside(settings: Settings) -> CacheAside:
    """The process-wide cache-aside layer."""
    return CacheAside(create_cache(settings), cache_policy(settings))
