"""Prometheus metrics of the read API (exposed on GET /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CACHE_LOOKUPS = Counter(
    "search_api_cache_lookups_total", "Cache-aside outcomes per route (hit, miss, stale).", ["route", "result"]
)
CACHE_ERRORS = Counter("search_api_cache_errors_total", "Cache failures served as misses, by operation.", ["operation"])
CACHE_SKIPPED = Counter("search_api_cache_skipped_total", "Responses not cached, by reason.", ["reason"])
BACKEND_FAILURES = Counter("search_api_backend_failures_total", "Search backend calls that failed.", ["kind"])
REQUEST_SECONDS = Histogram(
    "search_api_request_seconds",
    "Time to answer, per route and cache result.",
    ["route", "result"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
