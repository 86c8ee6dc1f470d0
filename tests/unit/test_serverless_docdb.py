"""Pure conversion of DocumentDB event-source records, and the EMF records (dict in, dict out)."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

from bson import ObjectId, Timestamp

from src.indexer.models import Checkpoint, ClusterTime
from src.indexer.transform import event_version
from src.serverless.docdb import docdb_event, to_change_batch
from src.serverless.emf import api_request_record, emf_record, write_record
from src.serverless.gateway import http_api_event
from src.serverless.indexer import BatchSummary, batch_record

# The example of AWS's documentation for the DocumentDB event source (one insert), as Lambda sends it.
AWS_EXAMPLE: dict[str, Any] = {
    "eventSourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:canaryclusterb2a659a2-qo5tcmqkcl03",
    "events": [
        {
            "event": {
                "_id": {"_data": "0163eeb6e7000000090100000009000041e1"},
                "clusterTime": {"$timestamp": {"t": 1676588775, "i": 9}},
                "documentKey": {"_id": {"$oid": "63eeb6e7d418cd98afb1c1d7"}},
                "fullDocument": {"_id": {"$oid": "63eeb6e7d418cd98afb1c1d7"}, "anyField": "sampleValue"},
                "ns": {"db": "test_database", "coll": "test_collection"},
                "operationType": "insert",
            }
        }
    ],
    "eventSource": "aws:docdb",
}


def test_to_change_batch_when_given_the_aws_example_reads_the_insert() -> None:
    conversion = to_change_batch(AWS_EXAMPLE["events"], previous=None)
    [event] = conversion.batch.events
    assert (event.op, event.doc_id) == ("insert", "63eeb6e7d418cd98afb1c1d7")
    assert event.document == {"anyField": "sampleValue", "id": "63eeb6e7d418cd98afb1c1d7"}
    assert event.version == event_version(ClusterTime(1676588775, 9), 0)
    assert conversion.batch.resume_token == {"_data": "0163eeb6e7000000090100000009000041e1"}
    assert conversion.batch.cluster_time == ClusterTime(1676588775, 9)
    assert (conversion.unreadable, conversion.unsupported) == ((), ())


def raw(op: str, doc_id: str, t: int, i: int, **extra: object) -> dict[str, object]:
    return {
        "_id": {"_data": f"token-{t}-{i}-{doc_id}"},
        "operationType": op,
        "clusterTime": Timestamp(t, i),
        "documentKey": {"_id": doc_id},
        "ns": {"db": "catalog", "coll": "packages"},
        **extra,
    }


def test_docdb_event_round_trips_bson_values_through_extended_json() -> None:
    oid = ObjectId()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    event = docdb_event(
        [raw("replace", "a", 10, 1, fullDocument={"_id": "a", "owner": oid, "at": when})], source_arn="arn:x"
    )
    assert event["events"][0]["event"]["clusterTime"] == {"$timestamp": {"t": 10, "i": 1}}
    [change] = to_change_batch(event["events"], previous=None).batch.events
    assert change.document == {"owner": str(oid), "at": "2026-01-02T03:04:05+00:00", "id": "a"}


def test_to_change_batch_when_events_share_a_cluster_time_continues_the_checkpoint_sequence() -> None:
    records = docdb_event(
        [raw("delete", "a", 10, 1), raw("delete", "b", 10, 1), raw("delete", "c", 11, 0)], source_arn="x"
    )["events"]
    checkpoint = Checkpoint("c", {"_data": "t"}, ClusterTime(10, 1), seq=4, saved_at=0, token_at=0)
    versions = [event.version for event in to_change_batch(records, previous=checkpoint).batch.events]
    assert versions == [
        event_version(ClusterTime(10, 1), 5),
        event_version(ClusterTime(10, 1), 6),
        event_version(ClusterTime(11, 0), 0),
    ]
    fresh = [event.version for event in to_change_batch(records, previous=None).batch.events]
    assert fresh[:2] == [event_version(ClusterTime(10, 1), 0), event_version(ClusterTime(10, 1), 1)]


def test_to_change_batch_when_records_are_malformed_or_unsupported_sets_them_apart() -> None:
    records = docdb_event(
        [raw("insert", "ok", 1, 1, fullDocument={"_id": "ok"}), raw("drop", "-", 1, 2)], source_arn="x"
    )["events"]
    broken: list[Any] = [{"event": "not a document"}, {"event": {"operationType": "update", "clusterTime": 3}}]
    conversion = to_change_batch([*records, *broken], previous=None)
    assert [event.doc_id for event in conversion.batch.events] == ["ok"]
    assert [item.doc_id for item in conversion.unreadable] == ["?2", "?3"]
    assert len(conversion.unsupported) == 1
    assert "'drop'" in conversion.unsupported[0]
    assert conversion.batch.resume_token == {"_data": "token-1-2--"}  # the last readable event's token


def test_to_change_batch_when_an_id_has_no_index_id_refuses_it_on_the_event() -> None:
    keyed: dict[str, object] = {"_id": {"sku": 1}, "name": "lamp"}
    event = raw("insert", "-", 1, 1, fullDocument=keyed)
    event["documentKey"] = {"_id": {"sku": 1}}
    [change] = to_change_batch(docdb_event([event], source_arn="x")["events"], previous=None).batch.events
    assert (change.doc_id, change.document) == ('{"sku": 1}', {"name": "lamp", "id": '{"sku": 1}'})
    assert change.refused == '_id {"sku": 1} (dict) cannot be an index id: only strings, ObjectIds and integers can'


def test_to_change_batch_when_empty_keeps_the_checkpoint_position() -> None:
    checkpoint = Checkpoint("c", {"_data": "t"}, ClusterTime(10, 1), seq=4, saved_at=0, token_at=0)
    batch = to_change_batch([], previous=checkpoint).batch
    assert (batch.events, batch.resume_token, batch.cluster_time, batch.seq) == (
        (),
        {"_data": "t"},
        ClusterTime(10, 1),
        4,
    )


def test_emf_record_when_built_declares_every_metric_under_the_namespace() -> None:
    record = emf_record(
        dimensions={"Function": "api"},
        metrics={"Requests": (1, "Count"), "Latency": (2.5, "Milliseconds")},
        properties={"path": "/x"},
        timestamp_ms=1_000,
    )
    assert record == {
        "_aws": {
            "Timestamp": 1_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "SearchApi",
                    "Dimensions": [["Function"]],
                    "Metrics": [{"Name": "Requests", "Unit": "Count"}, {"Name": "Latency", "Unit": "Milliseconds"}],
                }
            ],
        },
        "Function": "api",
        "path": "/x",
        "Requests": 1,
        "Latency": 2.5,
    }


def test_api_request_record_when_a_5xx_miss_counts_an_error_and_a_miss() -> None:
    event = http_api_event("GET", "/v1/search?q=a&filter=x:1&filter=x:2", now=0)
    assert event["queryStringParameters"] == {"q": "a", "filter": "x:1,x:2"}
    response = {"statusCode": 503, "headers": {"X-Cache": "MISS"}}
    record = api_request_record(event, response, duration_ms=12.34567, now_ms=5)
    assert (record["Errors"], record["CacheMisses"], record["CacheHits"], record["Latency"]) == (1, 1, 0, 12.346)
    assert (record["path"], record["status"]) == ("/v1/search", 503)


def test_batch_record_when_lag_is_known_reports_it_in_seconds() -> None:
    summary = BatchSummary(events=3, written=2, dead_lettered=1, skipped=0, lag_seconds=1.23456)
    record = batch_record(summary, duration_ms=5, failed=False, now_ms=7)
    assert (record["Written"], record["DeadLetters"], record["Lag"], record["Errors"]) == (2, 1, 1.235, 0)
    assert "Lag" not in batch_record(summary | {"lag_seconds": None}, duration_ms=5, failed=True, now_ms=7)


def test_write_record_writes_one_json_line() -> None:
    out = io.StringIO()
    write_record({"a": 1}, out)
    write_record({"b": 2}, out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [{"a": 1}, {"b": 2}]
