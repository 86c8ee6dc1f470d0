"""CloudWatch Embedded Metric Format (EMF): metrics as one JSON line on stdout, no API call.

Lambda ships stdout to CloudWatch Logs, which extracts the metrics named under `_aws` (the format AWS
documents: `_aws.Timestamp` in epoch milliseconds, `_aws.CloudWatchMetrics[]` with a namespace, the
dimension sets and the metric definitions; the values are top-level members). The records are built
by pure functions (dict in, dict out) and written by `write_record`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO, TypedDict

import orjson

NAMESPACE = "SearchApi"
"""The CloudWatch namespace of every metric (the CDK app's alarms use it)."""

type Unit = Literal["Count", "Milliseconds", "Seconds"]
type EmfRecord = dict[str, object]
"""An EMF record: `_aws` plus dimensions, properties and metric values as top-level members (their names
are data, so no TypedDict can list them)."""


class MetricDefinition(TypedDict):
    """One metric of a record: its name (a top-level member holds the value) and unit."""

    Name: str
    """The metric's name."""
    Unit: Unit
    """CloudWatch unit."""


class MetricDirective(TypedDict):
    """Which members of the record are metrics, under which namespace and dimensions."""

    Namespace: str
    """CloudWatch namespace."""
    Dimensions: list[list[str]]
    """Dimension sets: each a list of top-level members whose values are dimension values."""
    Metrics: list[MetricDefinition]
    """The metrics."""


class EmfMetadata(TypedDict):
    """The `_aws` member of an EMF record."""

    Timestamp: int
    """Epoch milliseconds."""
    CloudWatchMetrics: list[MetricDirective]
    """One directive (all our records have one)."""


def emf_record(
    *,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, tuple[float, Unit]],
    properties: Mapping[str, str | int | float] | None = None,
    timestamp_ms: int,
    namespace: str = NAMESPACE,
) -> EmfRecord:
    """An EMF record: `metrics` (name → value, unit) under one dimension set, plus searchable properties."""
    metadata: EmfMetadata = {
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [
            {
                "Namespace": namespace,
                "Dimensions": [list(dimensions)],
                "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
            }
        ],
    }
    record: EmfRecord = {"_aws": metadata, **dimensions, **(properties or {})}
    record.update({name: value for name, (value, _) in metrics.items()})
    return record


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((value for key, value in headers.items() if key.lower() == name), "")


def api_request_record(
    event: Mapping[str, Any], response: Mapping[str, Any], *, duration_ms: float, now_ms: int | None = None
) -> EmfRecord:
    """The API function's record of one request: Requests, Errors (5xx), Latency, CacheHits/CacheMisses
    (from `X-Cache`: HIT, or MISS/STALE), by function; path and status as properties."""
    status = int(response.get("statusCode", 500))
    cache = _header(response.get("headers") or {}, "x-cache").upper()
    context = event.get("requestContext") or {}
    return emf_record(
        dimensions={"Function": "api"},
        metrics={
            "Requests": (1, "Count"),
            "Errors": (1 if status >= 500 else 0, "Count"),
            "Latency": (round(duration_ms, 3), "Milliseconds"),
            "CacheHits": (1 if cache == "HIT" else 0, "Count"),
            "CacheMisses": (1 if cache in ("MISS", "STALE") else 0, "Count"),
        },
        properties={
            "path": str(event.get("rawPath", "")),
            "status": status,
            "requestId": str(context.get("requestId", "")),
        },
        timestamp_ms=now_ms if now_ms is not None else int(time.time() * 1000),
    )


def write_record(record: EmfRecord, stream: TextIO | None = None) -> None:
    """One JSON line (stdout by default: Lambda sends it to CloudWatch Logs)."""
    target = stream if stream is not None else sys.stdout
    target.write(orjson.dumps(record).decode() + "\n")
    target.flush()
