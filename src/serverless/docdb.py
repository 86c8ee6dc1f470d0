"""Pure conversion of a Lambda DocumentDB event-source batch into the indexer's `ChangeBatch`.

The event format AWS documents for `eventSource: aws:docdb`: `{"eventSource": "aws:docdb",
"eventSourceArn": ..., "events": [{"event": <change event>}, ...]}`, each change event in MongoDB
Extended JSON (`{"$oid": ...}`, `{"$timestamp": {"t": ..., "i": ...}}`, `{"$date": ...}`) with
`_id` (its resume token), `operationType`, `clusterTime`, `ns`, `documentKey` and, for inserts,
replaces and (with the mapping's `FullDocument: UpdateLookup`) updates, `fullDocument`. Decoded with
PyMongo's `bson.json_util`, a record is exactly what the change stream gives the long-running stream,
so the same `to_change_event` transform (and the same external versions) applies.

Values in, values out: no client, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict, cast

import orjson
from bson import json_util

from src.indexer.models import ChangeBatch, ChangeEvent, Checkpoint, ClusterTime, ResumeToken
from src.indexer.transform import UnsupportedEvent, cluster_time_of, id_text, to_change_event

EVENT_SOURCE = "aws:docdb"


class DocDbRecord(TypedDict):
    """One record of the batch."""

    event: dict[str, object]
    """The change event in Extended JSON (the vendor's document, decoded by `decode_record`)."""


class DocDbEvent(TypedDict):
    """What Lambda passes the function for a DocumentDB event source mapping."""

    eventSource: str
    """`aws:docdb`."""
    eventSourceArn: NotRequired[str]
    """The cluster's ARN."""
    events: list[DocDbRecord]
    """The change events, in stream order."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that is not a change event indexing can read: dead-lettered, never retried forever."""

    doc_id: str
    """The `documentKey._id` when it could be read, else `?` and the record's position."""
    reason: str
    """What was wrong with it."""


@dataclass(frozen=True, slots=True)
class Conversion:
    """A batch as the pipeline writes it, and what could not go into it."""

    batch: ChangeBatch
    unreadable: tuple[Unreadable, ...]
    """Records that are not change events (malformed): the handler dead-letters them."""
    unsupported: tuple[str, ...]
    """drop, rename, invalidate and the like: the collection is gone or renamed (reported, skipped)."""


def decode_record(record: Mapping[str, object]) -> Mapping[str, object]:
    """The change event of a record with BSON types (ObjectId, Timestamp, datetime) as PyMongo decodes them."""
    raw = record["event"]
    if not isinstance(raw, Mapping):
        raise TypeError(f"the record's event is a {type(raw).__name__}, not a document")
    decoded = json_util.loads(orjson.dumps(raw))
    return cast(Mapping[str, object], decoded)


def _key_of(raw: Mapping[str, object], position: int) -> str:
    key = raw.get("documentKey")
    if isinstance(key, Mapping) and "_id" in key:
        return id_text(key["_id"])
    return f"?{position}"


def to_change_batch(records: Sequence[Mapping[str, object]], *, previous: Checkpoint | None) -> Conversion:
    """Reduce the records to one `ChangeBatch` (in order), resuming after the last of them.

    Events sharing a cluster time are told apart by a sequence number, as in the stream; it continues
    from `previous` (the consumer's checkpoint) when the batch starts in the checkpoint's cluster time,
    so a cluster time split across two invocations keeps growing versions.
    """
    last_time: ClusterTime | None = previous.cluster_time if previous else None
    last_seq = previous.seq if previous else 0
    token: ResumeToken = dict(previous.resume_token) if previous else {}
    events: list[ChangeEvent] = []
    unreadable: list[Unreadable] = []
    unsupported: list[str] = []
    for position, record in enumerate(records):
        try:
            raw = decode_record(record)
        except (KeyError, TypeError, ValueError) as err:
            unreadable.append(Unreadable(doc_id=f"?{position}", reason=f"not Extended JSON: {err}"))
            continue
        resume = raw.get("_id")
        if isinstance(resume, Mapping):
            token = cast(ResumeToken, orjson.loads(json_util.dumps(resume)))
        event_time = cluster_time_of(raw)
        last_seq = last_seq + 1 if event_time == last_time else 0
        last_time = event_time
        try:
            events.append(to_change_event(raw, last_seq))
        except UnsupportedEvent as err:
            unsupported.append(str(err))
        except (KeyError, TypeError, ValueError, AttributeError) as err:  # fields of the wrong shape
            reason = f"not a change event indexing can read: {type(err).__name__}: {err}"
            unreadable.append(Unreadable(doc_id=_key_of(raw, position), reason=reason))
    batch = ChangeBatch(events=tuple(events), resume_token=token, cluster_time=last_time, seq=last_seq)
    return Conversion(batch=batch, unreadable=tuple(unreadable), unsupported=tuple(unsupported))


def docdb_event(raw_events: Sequence[Mapping[str, object]], *, source_arn: str) -> DocDbEvent:
    """The event-source batch Lambda would deliver for these change events (as PyMongo decoded them):
    the inverse of `decode_record`, for local invocations and tests."""
    records: list[DocDbRecord] = [
        {
            "event": cast(
                dict[str, object], orjson.loads(json_util.dumps(raw, json_options=json_util.RELAXED_JSON_OPTIONS))
            )
        }
        for raw in raw_events
    ]
    return {"eventSource": EVENT_SOURCE, "eventSourceArn": source_arn, "events": records}
