"""Build the configured Cache and cache-aside policy from settings."""

from __future__ import annotations

import sys

from src.cache.aside import CacheAside, CachePolicy
from src.cache.base import Cache
from src.cache.keys import scoped_namespace
from src.cache.memory import MemoryCache
from src.cache.null import NullCache
from src.cache.tiered import TieredCache
from src.settings import ProcessSettings


def create_shared_cache(settings: ProcessSettings) -> Cache:
    """The cache every process shares: Redis (or Redis Cluster) when REDIS_URL is set, else the in-process LRU."""
    redis, cache = settings.redis, settings.cache
    if redis.url:
        from src.cache.redis import create_redis_cache  # redis-py loads only where Redis is configured

        return create_redis_cache(
            redis.url,
            timeout_seconds=redis.timeout_seconds,
            connect_timeout_seconds=redis.connect_timeout_seconds,
            failure_threshold=redis.breaker_failures,
            reset_seconds=redis.breaker_reset_seconds,
            cluster=redis.cluster,
            max_connections=redis.max_connections,
        )
    return MemoryCache(max_entries=cache.memory_max_entries, max_bytes=cache.memory_max_bytes)


def create_cache(settings: ProcessSettings) -> Cache:
    """The API's cache: none when disabled; Redis behind a small in-process tier; or the in-process LRU."""
    cache = settings.cache
    if not cache.enabled:
        return NullCache()
    shared = create_shared_cache(settings)
    if not settings.redis.url or cache.near_ttl_seconds <= 0:
        return shared
    near = MemoryCache(max_entries=cache.near_max_entries, max_bytes=cache.near_max_bytes)
    keep = cache.hard_ttl_seconds * (1 + cache.ttl_jitter) + cache.stale_if_error_seconds
    return TieredCache(
        near,
        shared,
        near_ttl_seconds=cache.near_ttl_seconds,
        generation_poll_seconds=cache.generation_poll_ms / 1000,
        keep_seconds=keep,
    )


def cache_policy(settings: ProcessSettings) -> CachePolicy:
    """The cache-aside policy from settings; keys are scoped by namespace and index alias."""
    cache = settings.cache
    return CachePolicy(
        namespace=scoped_namespace(cache.namespace, settings.index.alias),
        soft_ttl_seconds=cache.soft_ttl_seconds,
        hard_ttl_seconds=cache.hard_ttl_seconds,
        jitter=cache.ttl_jitter,
        stale_if_error_seconds=cache.stale_if_error_seconds,
        negative_ttl_seconds=cache.negative_ttl_seconds,
        max_entry_bytes=cache.max_entry_bytes,
        lock_lease_seconds=cache.lock_lease_seconds,
        lock_wait_seconds=cache.lock_wait_seconds,
        # Nothing is kept when the cache is off: a response is gzipped when served, if its client asks
        # (HttpCachePolicy.compress_min_bytes), not for an entry no one reads again.
        gzip_min_bytes=cache.gzip_min_bytes if cache.enabled else sys.maxsize,
        max_inflight=cache.max_inflight,
    )


def create_cache_aside(settings: ProcessSettings) -> CacheAside:
    """The process-wide cache-aside layer."""
    return CacheAside(create_cache(settings), cache_policy(settings))
