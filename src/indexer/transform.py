"""Pure transform: a raw change event (or a copied document) into an index action.

Takes values, returns values: no client, no clock, no settings. BSON values become JSON values here
(ObjectId and Decimal128 to strings/numbers, datetimes to ISO 8601) so the search side only ever sees
JSON documents with a string `id`.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import cast

import orjson

from src.indexer.models import ChangeEvent, ClusterTime
from src.search.backends.base import IndexAction
from src.search.models import Document, JSONValue

_INC_BITS = 21
_SEQ_BITS = 10
MAX_SEQ = (1 << _SEQ_BITS) - 1


class UnsupportedEvent(ValueError):
    """The stream reported something indexing cannot follow (drop, rename, invalidate)."""


def event_version(cluster_time: ClusterTime, seq: int) -> int:
    """A version that grows with the cluster time, ties broken by `seq` (order within one cluster time).

    Layout (fits a signed 64-bit integer, as Elasticsearch's external versions need): 31 bits of
    seconds, 21 bits of increment, 10 bits of sequence. Increments above 2^21 in one second or more than
    1023 events sharing one cluster time saturate (see README).
    """
    inc = min(cluster_time.inc, (1 << _INC_BITS) - 1)
    return (cluster_time.time << (_INC_BITS + _SEQ_BITS)) | (inc << _SEQ_BITS) | min(seq, MAX_SEQ)


def id_string(raw: object) -> str:
    """The string id of a BSON `_id` (ObjectId hex, UUID text, or the value's text)."""
    return str(raw)


_PLAIN = (str, bool, int)


def to_json(value: object) -> JSONValue:
    """Convert a BSON value (as PyMongo decodes it) to a JSON value."""
    if value is None or type(value) in _PLAIN:
        return value  # type: ignore[return-value]  # the common case first: str, int, bool as they are
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or infinity
    if isinstance(value, str | int):
        return value  # subclasses of str and int
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.isoformat()
    if isinstance(value, Decimal):
        return to_json(float(value))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    to_decimal = getattr(value, "to_decimal", None)  # bson.Decimal128
    if callable(to_decimal):
        return to_json(float(cast(Decimal, to_decimal())))
    return str(value)  # ObjectId, Timestamp, Regex, ...: their text form


def to_document(raw: Mapping[str, object]) -> Document:
    """A source document as the search side stores it: `_id` becomes the string `id`."""
    document = {key: to_json(value) for key, value in raw.items() if key != "_id"}
    document["id"] = id_string(raw["_id"])
    return document


def cluster_time_of(raw: Mapping[str, object]) -> ClusterTime:
    """The cluster time (a BSON Timestamp) of a raw change event."""
    timestamp = raw.get("clusterTime")
    return ClusterTime(time=int(getattr(timestamp, "time", 0)), inc=int(getattr(timestamp, "inc", 0)))


def to_change_event(raw: Mapping[str, object], seq: int) -> ChangeEvent:
    """Reduce a raw change event; UnsupportedEvent for drop, rename, invalidate and the like."""
    op = raw.get("operationType")
    if op not in ("insert", "update", "replace", "delete"):
        namespace = raw.get("ns")
        raise UnsupportedEvent(f"change stream reported {op!r} on {namespace!r}: the collection is gone or renamed")
    key = cast(Mapping[str, object], raw["documentKey"])
    full = cast(Mapping[str, object] | None, raw.get("fullDocument"))
    cluster_time = cluster_time_of(raw)
    document = to_document(full) if full is not None and op != "delete" else None
    return ChangeEvent(
        op=op,
        doc_id=id_string(key["_id"]),
        document=document,
        version=event_version(cluster_time, seq),
        size_bytes=len(orjson.dumps(document)) if document is not None else 64,
    )


def to_index_action(event: ChangeEvent) -> IndexAction:
    """The write that brings the index in line with the event.

    An update whose document is already gone (updateLookup found nothing) is a delete: the document
    does not exist at the time the event is read.
    """
    if event.document is None:
        return IndexAction(op="delete", doc_id=event.doc_id, version=event.version)
    return IndexAction(op="upsert", doc_id=event.doc_id, document=event.document, version=event.version)
