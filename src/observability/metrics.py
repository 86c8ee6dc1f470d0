"""Prometheus metrics of the read API (exposed on GET /metrics)."""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

CACHE_LOOKUPS = Counter(
    "search_api_cache_lookups_total", "Cache-aside outcomes per route (hit, miss, stale).", ["route", "result"]
)
CACHE_ERRORS = Counter("search_api_cache_errors_total", "Cache failures served as misses, by operation.", ["operation"])
CACHE_SKIPPED = Counter("search_api_cache_skipped_total", "Responses not cached, by reason.", ["reason"])
ADMISSION_REJECTED = Counter(
    "search_api_admission_rejected_total", "Engine calls refused by admission control (fast 503s)."
)
ENGINE_INFLIGHT = Gauge("search_api_engine_inflight", "Engine calls running now in this process.")
BACKEND_FAILURES = Counter("search_api_backend_failures_total", "Search backend calls that failed.", ["kind"])
BACKEND_REJECTIONS = Counter(
    "search_api_backend_rejections_total", "Search backend calls refused because of their input.", ["kind"]
)
UNAVAILABLE_RESPONSES = Counter(
    "search_api_unavailable_responses_total", "503 responses, by the dependency that was unavailable.", ["dependency"]
)
BREAKER_TRANSITIONS = Counter(
    "search_api_breaker_transitions_total", "Circuit breaker state changes (reopenings included).", ["breaker", "state"]
)
BREAKER_OPEN = Gauge("search_api_breaker_open", "1 while the breaker is open or half-open.", ["breaker"])
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics(Collector):
    """`search_api_requests_total{method,route,status,cache}` and
    `search_api_request_duration_seconds{method,route,cache}` (the trace id of the latest sampled request
    in each bucket as its exemplar).

    Recorded on the event-loop thread only, into plain lists, so a request costs a dict lookup, a bisect
    and two additions, without the lock every prometheus_client child takes; the registry reads them
    at scrape time (a scrape runs on the same loop, so it never sees a half-made update).
    """

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.inflight = 0
        """Requests being answered now (the middleware counts; `search_api_requests_inflight` reads it)."""
        self._counts: dict[tuple[str, str, str, str], int] = {}
        # per (method, route, cache): per-bucket counts (non-cumulative, +Inf last), sum, and the latest
        # sampled request per bucket as (trace id, seconds, when): made an Exemplar at scrape time
        self._histograms: dict[
            tuple[str, str, str], tuple[list[int], list[float], list[tuple[str, float, float] | None]]
        ] = {}

    def observe(self, method: str, route: str, status: str, cache: str, seconds: float, trace_id: str | None) -> None:
        """One answered request."""
        key = (method, route, status, cache)
        self._counts[key] = self._counts.get(key, 0) + 1
        histogram = self._histograms.get((method, route, cache))
        if histogram is None:
            histogram = self._histograms[(method, route, cache)] = (
                [0] * (len(self.buckets) + 1),
                [0.0],
                [None] * (len(self.buckets) + 1),
            )
        position = bisect.bisect_left(self.buckets, seconds)
        histogram[0][position] += 1
        histogram[1][0] += seconds
        if trace_id is not None:
            histogram[2][position] = (trace_id, seconds, time.time())

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "search_api_requests",
            "HTTP requests answered, per method, route template, status and cache outcome (fast hits included).",
            labels=["method", "route", "status", "cache"],
        )
        for labels, count in list(self._counts.items()):
            requests.add_metric(labels, count)
        yield requests
        duration = HistogramMetricFamily(
            "search_api_request_duration_seconds",
            "Time to answer an HTTP request, per method, route template and cache outcome.",
            labels=["method", "route", "cache"],
        )
        bounds = [*(repr(bound) for bound in self.buckets), "+Inf"]
        for series, (counts, total, exemplars) in list(self._histograms.items()):
            cumulative = 0
            buckets: list[tuple[str, float] | tuple[str, float, Exemplar]] = []
            for bound, count, latest in zip(bounds, counts, exemplars, strict=True):
                cumulative += count
                if latest is None:
                    buckets.append((bound, cumulative))
                else:
                    buckets.append((bound, cumulative, Exemplar({"trace_id": latest[0]}, latest[1], latest[2])))
            duration.add_metric(series, buckets, total[0])
        yield duration


REQUEST_METRICS = RequestMetrics(_LATENCY_BUCKETS)
REGISTRY.register(REQUEST_METRICS)

RATE_LIMITED = Counter("search_api_rate_limited_total", "Requests refused (429), by limit: all, engine.", ["limit"])
RATE_LIMITER_ERRORS = Counter(
    "search_api_rate_limiter_errors_total",
    "Engine-budget checks the shared window (Redis) did not answer in time: the local per-process count decided.",
)
REQUESTS_INFLIGHT = Gauge("search_api_requests_inflight", "HTTP requests being answered now in this process.")
REQUESTS_INFLIGHT.set_function(lambda: REQUEST_METRICS.inflight)
ENGINE_DURATION = Histogram(
    "search_api_engine_duration_seconds",
    "Search engine calls of the read path, per engine, operation and outcome (ok, unavailable, rejected).",
    ["engine", "operation", "outcome"],
    buckets=_LATENCY_BUCKETS,
)
REDIS_DURATION = Histogram(
    "search_api_redis_duration_seconds",
    "Redis calls of the cache, per operation and outcome (ok, error).",
    ["operation", "outcome"],
    buckets=_LATENCY_BUCKETS,
)

INDEXER_EVENTS = Counter("search_indexer_events_read_total", "Change events read from the source.", ["consumer"])
INDEXER_WRITTEN = Counter(
    "search_indexer_documents_written_total", "Index writes the backend acknowledged.", ["consumer", "op"]
)
INDEXER_FAILURES = Counter("search_indexer_failures_total", "Indexer failures by kind.", ["consumer", "kind"])
BROKER_EVENTS = Counter(
    "search_broker_events_total", "Broker events: published, publish_failed, applied, consumed.", ["event", "outcome"]
)
CDN_PURGES = Counter(
    "search_indexer_cdn_purge_keys_total",
    "Surrogate keys purged at the CDN: sent, failed, dropped.",
    ["purger", "outcome"],
)
CDN_PURGE_PENDING = Gauge("search_indexer_cdn_purge_pending", "Surrogate keys waiting to be purged.")
INDEXER_DEAD_LETTERS = Counter(
    "search_indexer_dead_letters_total", "Documents the engine refused for good (dead-lettered).", ["consumer"]
)
INDEXER_BATCH_SECONDS = Histogram(
    "search_indexer_batch_seconds",
    "From a batch's first event read to its checkpoint saved.",
    ["consumer"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INDEXER_LAG_SECONDS = Gauge(
    "search_indexer_lag_seconds", "Cluster-time age of the newest event indexed when it was acknowledged.", ["consumer"]
)
INDEXER_CHECKPOINT_AGE = Gauge(
    "search_indexer_checkpoint_age_seconds", "Seconds since the last checkpoint save.", ["consumer"]
)
_checkpoint_saved_at: dict[str, float] = {}


def mark_checkpoint_saved(consumer: str, *, age_seconds: float = 0.0) -> None:
    """A checkpoint was saved `age_seconds` ago: from now on the age gauge counts from that moment, read
    at each scrape (a gauge set to 0 on save would never show a stalled stream). The stream marks the
    checkpoint it starts from too, so one that never gets a batch through still shows its age."""
    first = consumer not in _checkpoint_saved_at
    _checkpoint_saved_at[consumer] = time.monotonic() - age_seconds
    if first:
        INDEXER_CHECKPOINT_AGE.labels(consumer).set_function(lambda: time.monotonic() - _checkpoint_saved_at[consumer])


INDEXER_WRITE_BLOCKED = Gauge(
    "search_indexer_write_blocked_seconds",
    "Seconds the oldest write still refused for the engine's load has been retried (0 when none is).",
    ["consumer"],
)
INDEXER_WRITE_STALLED = Gauge(
    "search_indexer_write_stalled",
    "1 while a write has been refused for the engine's load longer than INDEXER_PRESSURE_ALERT_SECONDS.",
    ["consumer"],
)


def watch_blocked_writes(consumer: str, blocked_seconds: Callable[[], float], alert_seconds: float) -> None:
    """Export how long the engine has held `consumer`'s writes back, read at each scrape (the latest
    sink built for a consumer is the one watched)."""
    INDEXER_WRITE_BLOCKED.labels(consumer).set_function(blocked_seconds)
    INDEXER_WRITE_STALLED.labels(consumer).set_function(lambda: float(blocked_seconds() > alert_seconds))
