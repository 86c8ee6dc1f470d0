"""What an Elasticsearch or OpenSearch refusal means, from the engines' own words (pure).

Both engines answer a refused request alike: a status, and an error body `{"error": {"type", "reason"}}`.
These functions decide what the cluster backend does with one: a 413 or 429 is the engine's pressure
(`PRESSURE_STATUSES`); an indexing-pressure 429 is parsed (`parse_pressure`) to tell a document too large
to ever pass from a busy engine (`too_large_alone`); a 4xx of the request's own is a rejection that never
feeds a breaker (`is_rejection_status`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from src.search.backends.querydsl import ESBody

PRESSURE_STATUSES = (413, 429)
"""A write request refused as a whole for its size (413) or the engine's load (429): `EnginePressure`."""

_OWN_BYTES_SLACK = 64 * 1024
"""How much more than our own encoding of a request an engine may count for it (Elasticsearch 9.2 counted
74 bytes more for a one-document bulk): a node holding no more than this beyond our request held nothing else."""


@dataclass(frozen=True, slots=True)
class PressureRefusal:
    """An indexing-pressure refusal as Elasticsearch and OpenSearch word it: `rejected execution of
    <stage> operation [coordinating_and_primary_bytes=..., replica_bytes=..., all_bytes=...,
    <stage>_operation_bytes=..., max_<...>_bytes=...]` (OpenSearch's shard-level pressure prefixes the
    node's figures with `node_`)."""

    stage: str
    """coordinating, primary or replica."""
    operation_bytes: int
    """What the refused operation would have added."""
    limit_bytes: int
    """The node's limit for that stage (10 % of the heap by default)."""
    in_flight_bytes: int
    """What the node held before it (every stage)."""


_PRESSURE = re.compile(r"rejected execution of (\w+) operation")
_FIGURE = re.compile(r"(\w+)=(\d+)")


def parse_pressure(reason: str) -> PressureRefusal | None:
    """The figures of an indexing-pressure refusal, or None when `reason` is not one (a full write
    queue, a circuit breaker, anything else the engine says with a 429)."""
    stage = _PRESSURE.search(reason)
    if stage is None:
        return None
    figures = {name: int(value) for name, value in _FIGURE.findall(reason[stage.end() :])}
    node = {name.removeprefix("node_"): value for name, value in figures.items() if name.startswith("node_")}
    figures = node or figures  # OpenSearch's shard-level message: the node's figures decide
    operation = next((value for name, value in figures.items() if name.endswith("operation_bytes")), None)
    limit = next((value for name, value in figures.items() if name.startswith("max_")), None)
    if operation is None or limit is None:
        return None
    return PressureRefusal(
        stage=stage.group(1), operation_bytes=operation, limit_bytes=limit, in_flight_bytes=figures.get("all_bytes", 0)
    )


def too_large_alone(status: int, reason: str, request_bytes: int) -> bool:
    """Whether a refused request holding one operation of `request_bytes` can never pass, so that its
    document (not the engine's load) is to blame.

    A 413: the request alone is over the engine's (or a proxy's) size limit. A 429 for indexing pressure:
    the operation alone is over the limit, or it was refused at the primary stage by a node holding no
    more than this request's own coordinating bytes (a single node coordinates its own primaries: the
    two together never fit). Any other 429 is the engine being busy.
    """
    if status == 413:
        return True
    refusal = parse_pressure(reason) if status == 429 else None
    if refusal is None:
        return False
    if refusal.operation_bytes > refusal.limit_bytes:
        return True
    return (
        refusal.stage == "primary"
        and refusal.in_flight_bytes <= request_bytes + _OWN_BYTES_SLACK
        and refusal.operation_bytes + refusal.in_flight_bytes > refusal.limit_bytes
    )


def request_bytes(operations: Sequence[ESBody]) -> int:
    """The size of a bulk request body (NDJSON, compact) as the engine counts its coordinating bytes."""
    return sum(len(orjson.dumps(operation)) + 1 for operation in operations)


def is_rejection_status(status: int, error_type: str | None) -> bool:
    """Whether a failed call was the engine refusing the request itself.

    A 4xx other than 429, 401/403 and a missing index: such a failure is that request's 4xx and never
    feeds a breaker. Refused credentials (expired keys, a role without access, a bad SigV4 clock) and
    a missing index are the deployment's state, not the request's fault: the service is unavailable.
    """
    if status in (401, 403, 429) or status >= 500 or status < 400:
        return False
    return not (status == 404 and error_type == "index_not_found_exception")


def error_type(body: object) -> str | None:
    """The `error.type` of an engine's error body (both engines answer `{"error": {"type": ...}}`)."""
    error = body.get("error") if isinstance(body, dict) else None
    found = error.get("type") if isinstance(error, dict) else None
    return found if isinstance(found, str) else None


def error_reason(body: object) -> str:
    """The `error.reason` of an engine's error body, or "" (a 413 has no body)."""
    error = body.get("error") if isinstance(body, dict) else None
    found = error.get("reason") if isinstance(error, dict) else None
    return found if isinstance(found, str) else ""
