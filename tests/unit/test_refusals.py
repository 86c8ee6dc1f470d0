"""Unit tests of src.search.backends.refusals: what an engine's refusal means, from its own words."""

from __future__ import annotations

from typing import Any

import pytest

from src.search.backends.refusals import PressureRefusal, parse_pressure, request_bytes, too_large_alone

# --- indexing pressure: the engines' own words (Elasticsearch 9.2 and OpenSearch 2.19, 512 MB heaps) -----

ES_PRIMARY = (
    "es_rejected_execution_exception: rejected execution of primary operation [coordinating_and_primary_bytes="
    "12583263, replica_bytes=0, all_bytes=12583263, primary_operation_bytes=50332284, max_primary_bytes=53687091]"
)
"""A 6 MB document alone: its primary bytes fit the limit, its own coordinating bytes on top do not."""
ES_PRIMARY_12MB = (
    "es_rejected_execution_exception: rejected execution of primary operation [coordinating_and_primary_bytes="
    "25166173, replica_bytes=0, all_bytes=25166173, primary_operation_bytes=100663924, max_primary_bytes=53687091]"
)
ES_COORDINATING = (
    "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, "
    "coordinating_operation_bytes=62914899, max_coordinating_bytes=53687091]"
)
OS_COORDINATING = (
    "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, "
    "coordinating_operation_bytes=62914947, max_coordinating_and_primary_bytes=53687091]"
)
OS_SHARD_LEVEL = (
    "rejected execution of primary operation [shard_detail=[idx][0][P], shard_coordinating_and_primary_bytes=10, "
    "shard_operation_bytes=900, shard_max_coordinating_and_primary_bytes=1000] OR [node_coordinating_and_primary_bytes"
    "=40000000, node_replica_bytes=0, node_all_bytes=40000000, node_operation_bytes=20000000, "
    "node_max_coordinating_and_primary_bytes=53687091]"
)
QUEUE_FULL = (
    "es_rejected_execution_exception: rejected execution of org.elasticsearch.common.util.concurrent.TimedRunnable"
    "@1 on EsThreadPoolExecutor[name = node/write, queue capacity = 10000]"
)
FLOOD_STAGE = (
    "cluster_block_exception: index [i] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage "
    "watermark, index has read-only-allow-delete block];"
)


def test_parse_pressure_when_primary_stage_reads_the_figures() -> None:
    assert parse_pressure(ES_PRIMARY) == PressureRefusal(
        stage="primary", operation_bytes=50332284, limit_bytes=53687091, in_flight_bytes=12583263
    )


def test_parse_pressure_when_coordinating_stage_on_either_engine() -> None:
    assert parse_pressure(ES_COORDINATING) == PressureRefusal("coordinating", 62914899, 53687091, 0)
    assert parse_pressure(OS_COORDINATING) == PressureRefusal("coordinating", 62914947, 53687091, 0)


def test_parse_pressure_when_opensearch_shard_level_takes_the_nodes_figures() -> None:
    assert parse_pressure(OS_SHARD_LEVEL) == PressureRefusal("primary", 20000000, 53687091, 40000000)


@pytest.mark.parametrize("reason", [QUEUE_FULL, FLOOD_STAGE, "", "rejected execution of primary operation [x=1]"])
def test_parse_pressure_when_not_an_indexing_pressure_refusal_is_none(reason: str) -> None:
    assert parse_pressure(reason) is None


def test_too_large_alone_when_413_always() -> None:
    assert too_large_alone(413, "", 100)


def test_too_large_alone_when_the_operation_alone_is_over_the_limit() -> None:
    assert too_large_alone(429, ES_PRIMARY_12MB, 25166099)
    assert too_large_alone(429, ES_COORDINATING, 62914825)
    assert too_large_alone(429, OS_COORDINATING, 62914825)


def test_too_large_alone_when_the_node_held_only_this_requests_bytes() -> None:
    assert too_large_alone(429, ES_PRIMARY, 12583189)  # 74 bytes under what the engine counted


def test_too_large_alone_when_the_node_also_held_others_writes_is_the_engine_busy() -> None:
    assert not too_large_alone(429, ES_PRIMARY, 1_000_000)
    assert not too_large_alone(429, OS_SHARD_LEVEL, 20_000_000)


@pytest.mark.parametrize("reason", [QUEUE_FULL, FLOOD_STAGE])
def test_too_large_alone_when_busy_for_other_reasons_never_blames_the_document(reason: str) -> None:
    assert not too_large_alone(429, reason, 10**9)


def test_request_bytes_is_the_compact_ndjson_size() -> None:
    operations: list[dict[str, Any]] = [{"index": {"_id": "a"}}, {"id": "a", "t": {"x": "é"}}]
    assert request_bytes(operations) == len(b'{"index":{"_id":"a"}}\n{"id":"a","t":{"x":"\xc3\xa9"}}\n')
