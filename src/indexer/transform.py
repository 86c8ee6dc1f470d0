"""Pure transform: a raw change event (or a copied document) into an index action.

Takes values, returns values: no client, no clock, no settings. BSON values become JSON values here
(ObjectId and Decimal128 to strings/numbers, datetimes to ISO 8601) so the search side only ever sees
JSON documents with a string `id`.

What must never reach the engine is decided here too, by one rule for every path that writes (stream,
reindex copy and replay, the Lambda indexer): `refusal` refuses an `_id` the index cannot hold losslessly
(`id_refusal`) and a document over the size limit (`size_refusal`); the sink dead-letters both.
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
from bson import ObjectId, json_util

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
    1023 events sharing one cluster time saturate (see docs/decisions.md).
    """
    inc = min(cluster_time.inc, (1 << _INC_BITS) - 1)
    return (cluster_time.time << (_INC_BITS + _SEQ_BITS)) | (inc << _SEQ_BITS) | min(seq, MAX_SEQ)


COPY_VERSION = 1
"""The version of a copied document: copies go into a new, empty index before any replay, so the lowest
version is right: every replayed change (versioned by its cluster time) then wins, whatever the clocks of
this host and the database."""


class UnsupportedId(ValueError):
    """A BSON `_id` that has no lossless index id (see `id_refusal`)."""


def id_refusal(raw: object) -> str | None:
    """Why a BSON `_id` cannot be an index id, or None when it can.

    Strings, ObjectIds and integers (booleans are not) each have one text form: the string, the
    ObjectId's hex, the decimal digits (so the integer 1 and the string "1" share the index id "1").
    Anything else (documents, arrays, floats, Decimal128, binary and UUIDs, null, ...) has no text form
    that could not also be a real string id: `{'a': 1}` as text would overwrite the document whose
    `_id` is the string "{'a': 1}".
    """
    if isinstance(raw, str | ObjectId) or (isinstance(raw, int) and not isinstance(raw, bool)):
        return None
    kind = "null" if raw is None else type(raw).__name__
    return f"_id {id_text(raw)} ({kind}) cannot be an index id: only strings, ObjectIds and integers can"


def id_string(raw: object) -> str:
    """The index id of a BSON `_id` (a string as it is, an ObjectId's hex, an integer's digits);
    UnsupportedId for every other kind."""
    refused = id_refusal(raw)
    if refused is not None:
        raise UnsupportedId(refused)
    return str(raw)


def id_text(raw: object) -> str:
    """Any `_id` as text, for naming it (dead letters, logs): the index id when there is one, else its
    Extended JSON (`{"a": 1}`, `1.5`, `null`)."""
    if isinstance(raw, str | ObjectId) or (isinstance(raw, int) and not isinstance(raw, bool)):
        return str(raw)
    try:
        return json_util.dumps(raw, json_options=json_util.RELAXED_JSON_OPTIONS)
    except (TypeError, ValueError):  # a native uuid.UUID (no representation configured), and the like
        return repr(raw)


def size_refusal(size_bytes: int, max_document_bytes: int) -> str | None:
    """Why a document of `size_bytes` (its JSON encoding) is not sent, or None when it fits."""
    if size_bytes <= max_document_bytes:
        return None
    return f"document is {size_bytes} bytes, over INDEXER_MAX_DOCUMENT_BYTES={max_document_bytes}"


def refusal(action: IndexAction, *, max_document_bytes: int) -> str | None:
    """Why `action` must not be sent to the engine (None: send it): an `_id` the index cannot hold (the
    transform's verdict, kept on the action), or an upsert whose document's JSON encoding (orjson) is
    over `max_document_bytes`."""
    if action.refused is not None:
        return action.refused
    if action.document is None:
        return None
    return size_refusal(len(orjson.dumps(action.document)), max_document_bytes)


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
    """A source document as the search side stores it: `_id` becomes the string `id` (UnsupportedId
    when it has none, see `id_refusal`)."""
    document = {key: to_json(value) for key, value in raw.items() if key != "_id"}
    document["id"] = id_string(raw["_id"])
    return document


def _refused_document(raw: Mapping[str, object]) -> Document:
    """A document with a refused `_id`, as its dead letter keeps it (`id` names the `_id`)."""
    document = {key: to_json(value) for key, value in raw.items() if key != "_id"}
    document["id"] = id_text(raw["_id"])
    return document


def to_copy_event(raw: Mapping[str, object]) -> ChangeEvent:
    """A document of a collection snapshot as the insert a reindex copies, at COPY_VERSION (its `_id`
    refused on the event when the index cannot hold it)."""
    refused = id_refusal(raw["_id"])
    document = to_document(raw) if refused is None else _refused_document(raw)
    return ChangeEvent(
        op="insert",
        doc_id=str(document["id"]),
        document=document,
        version=COPY_VERSION,
        size_bytes=len(orjson.dumps(document)),
        refused=refused,
    )


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
    refused = id_refusal(key["_id"])
    document = None
    if full is not None and op != "delete":
        document = to_document(full) if refused is None else _refused_document(full)
    return ChangeEvent(
        op=op,
        doc_id=id_text(key["_id"]),
        document=document,
        version=event_version(cluster_time, seq),
        size_bytes=len(orjson.dumps(document)) if document is not None else 64,
        refused=refused,
    )


def to_index_action(event: ChangeEvent) -> IndexAction:
    """The write that brings the index in line with the event.

    An update whose document is already gone (updateLookup found nothing) is a delete: the document
    does not exist at the time the event is read.
    """
    if event.document is None:
        return IndexAction(op="delete", doc_id=event.doc_id, version=event.version, refused=event.refused)
    return IndexAction(
        op="upsert", doc_id=event.doc_id, document=event.document, version=event.version, refused=event.refused
    )
