"""Unit tests of src.indexer.transform: versions, ids, BSON to JSON, change events and index actions."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import orjson
import pytest
from bson import Binary, Decimal128, Int64, ObjectId, Timestamp
from hypothesis import given
from hypothesis import strategies as st

from src.indexer.models import ChangeEvent, ClusterTime
from src.indexer.transform import (
    COPY_VERSION,
    MAX_SEQ,
    UnsupportedEvent,
    UnsupportedId,
    event_version,
    id_refusal,
    id_string,
    id_text,
    refusal,
    size_refusal,
    to_change_event,
    to_copy_event,
    to_document,
    to_index_action,
    to_json,
)
from src.search.backends.base import IndexAction
from src.search.models import Document

MAX_INC = (1 << 21) - 1
MAX_TIME = 2**31 - 1
OID = ObjectId("65a1b2c3d4e5f60718293a4b")

_times = st.integers(min_value=0, max_value=MAX_TIME)
_incs = st.integers(min_value=0, max_value=MAX_INC)
_seqs = st.integers(min_value=0, max_value=MAX_SEQ)


# --- event_version -------------------------------------------------------------------------------


def test_event_version_exact_bit_layout() -> None:
    assert event_version(ClusterTime(1_700_000_000, 5), 3) == (1_700_000_000 << 31) | (5 << 10) | 3


def test_event_version_zero_is_zero() -> None:
    assert event_version(ClusterTime(0, 0), 0) == 0


def test_event_version_max_seq_is_1023() -> None:
    assert MAX_SEQ == 1023


def test_event_version_later_time_beats_larger_inc_and_seq() -> None:
    earlier = event_version(ClusterTime(100, MAX_INC), MAX_SEQ)
    later = event_version(ClusterTime(101, 0), 0)
    assert later > earlier
    assert later == earlier + 1


def test_event_version_larger_inc_beats_larger_seq() -> None:
    earlier = event_version(ClusterTime(100, 7), MAX_SEQ)
    later = event_version(ClusterTime(100, 8), 0)
    assert later > earlier
    assert later == earlier + 1


def test_event_version_seq_breaks_ties_within_cluster_time() -> None:
    assert event_version(ClusterTime(100, 7), 4) == event_version(ClusterTime(100, 7), 3) + 1


@given(a=st.tuples(_times, _incs, _seqs), b=st.tuples(_times, _incs, _seqs))
def test_event_version_orders_like_time_inc_seq(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    version_a = event_version(ClusterTime(a[0], a[1]), a[2])
    version_b = event_version(ClusterTime(b[0], b[1]), b[2])
    assert (version_a < version_b) == (a < b)
    assert (version_a == version_b) == (a == b)


def test_event_version_inc_saturates_at_max() -> None:
    at_max = event_version(ClusterTime(100, MAX_INC), 0)
    assert event_version(ClusterTime(100, MAX_INC + 1), 0) == at_max
    assert event_version(ClusterTime(100, 2**32 - 1), 0) == at_max
    assert at_max == (100 << 31) | (MAX_INC << 10)


def test_event_version_inc_saturation_does_not_reach_next_second() -> None:
    assert event_version(ClusterTime(100, 2**32 - 1), MAX_SEQ) < event_version(ClusterTime(101, 0), 0)


def test_event_version_seq_saturates_at_max() -> None:
    at_max = event_version(ClusterTime(100, 7), MAX_SEQ)
    assert event_version(ClusterTime(100, 7), MAX_SEQ + 1) == at_max
    assert event_version(ClusterTime(100, 7), 10**9) == at_max
    assert at_max == (100 << 31) | (7 << 10) | 1023


def test_event_version_seq_saturation_does_not_reach_next_inc() -> None:
    assert event_version(ClusterTime(100, 7), 10**9) < event_version(ClusterTime(100, 8), 0)


def test_event_version_fits_signed_64_bit_at_max_time() -> None:
    version = event_version(ClusterTime(MAX_TIME, 2**32 - 1), 10**9)
    assert version < 2**63
    assert version == (MAX_TIME << 31) | (MAX_INC << 10) | MAX_SEQ


@given(time=_times, inc=st.integers(min_value=0, max_value=2**32 - 1), seq=st.integers(min_value=0, max_value=2**20))
def test_event_version_always_below_2_63(time: int, inc: int, seq: int) -> None:
    assert 0 <= event_version(ClusterTime(time, inc), seq) < 2**63


# --- id_string -----------------------------------------------------------------------------------


def test_id_string_object_id_is_hex() -> None:
    assert id_string(OID) == "65a1b2c3d4e5f60718293a4b"


def test_id_string_int() -> None:
    assert id_string(42) == "42"


def test_id_string_int64_is_its_digits() -> None:
    assert id_string(Int64(2**40)) == "1099511627776"


def test_id_string_str_unchanged() -> None:
    assert id_string("sku-1") == "sku-1"


def test_id_string_when_the_id_has_no_index_id_raises_unsupported_id() -> None:
    with pytest.raises(UnsupportedId, match="only strings, ObjectIds and integers"):
        id_string({"a": 1})


@pytest.mark.parametrize("raw", ["sku-1", "", OID, 0, -7, Int64(5), 2**62])
def test_id_refusal_when_string_object_id_or_integer_accepts(raw: object) -> None:
    assert id_refusal(raw) is None


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"a": 1}, '_id {"a": 1} (dict)'),
        ([1, 2], "_id [1, 2] (list)"),
        (1.5, "_id 1.5 (float)"),
        (Decimal128("1.5"), '_id {"$numberDecimal": "1.5"} (Decimal128)'),
        (Binary(b"ab", 0), '_id {"$binary": {"base64": "YWI=", "subType": "00"}} (Binary)'),
        (uuid.UUID(int=1), "_id UUID('00000000-0000-0000-0000-000000000001') (UUID)"),
        (None, "_id null (null)"),
        (True, "_id true (bool)"),
    ],
)
def test_id_refusal_when_any_other_kind_names_it(raw: object, named: str) -> None:
    assert id_refusal(raw) == f"{named} cannot be an index id: only strings, ObjectIds and integers can"


def test_id_text_when_the_id_is_refused_is_extended_json_never_a_python_repr() -> None:
    assert id_text({"a": 1}) == '{"a": 1}'  # not "{'a': 1}", which a real string id could be
    assert id_text(OID) == "65a1b2c3d4e5f60718293a4b"


# --- up-front refusal ----------------------------------------------------------------------------


def test_size_refusal_when_over_the_limit_names_both_sizes() -> None:
    assert size_refusal(2049, 2048) == "document is 2049 bytes, over INDEXER_MAX_DOCUMENT_BYTES=2048"
    assert size_refusal(2048, 2048) is None


def test_refusal_when_the_encoding_is_over_the_limit_refuses_the_upsert() -> None:
    document: Document = {"id": "a", "text": "x" * 100}
    size = len(orjson.dumps(document))
    action = IndexAction(op="upsert", doc_id="a", document=document)
    assert refusal(action, max_document_bytes=size) is None
    assert refusal(action, max_document_bytes=size - 1) == (
        f"document is {size} bytes, over INDEXER_MAX_DOCUMENT_BYTES={size - 1}"
    )


def test_refusal_when_the_id_was_refused_gives_that_reason_whatever_the_size() -> None:
    action = IndexAction(op="upsert", doc_id="1.5", document={"id": "1.5"}, refused="_id 1.5 (float) ...")
    assert refusal(action, max_document_bytes=10**9) == "_id 1.5 (float) ..."


def test_refusal_when_delete_has_no_document_to_measure() -> None:
    assert refusal(IndexAction(op="delete", doc_id="a"), max_document_bytes=1) is None


# --- to_json -------------------------------------------------------------------------------------


def test_to_json_none() -> None:
    assert to_json(None) is None


def test_to_json_str() -> None:
    assert to_json("héllo") == "héllo"


def test_to_json_bool_stays_bool() -> None:
    assert to_json(True) is True
    assert to_json(False) is False


def test_to_json_int() -> None:
    result = to_json(-7)
    assert result == -7
    assert type(result) is int


def test_to_json_float() -> None:
    assert to_json(2.5) == 2.5


def test_to_json_nested_dict_converts_keys_and_values() -> None:
    value = {"a": {"b": OID, 1: Decimal("1.5")}, "c": [uuid.UUID(int=1)]}
    assert to_json(value) == {
        "a": {"b": "65a1b2c3d4e5f60718293a4b", "1": 1.5},
        "c": ["00000000-0000-0000-0000-000000000001"],
    }


def test_to_json_list_converts_items() -> None:
    assert to_json([1, b"\x00\x01", [OID]]) == [1, "AAE=", ["65a1b2c3d4e5f60718293a4b"]]


def test_to_json_tuple_becomes_list() -> None:
    assert to_json((1, "x", (2,))) == [1, "x", [2]]


def test_to_json_naive_datetime_is_utc() -> None:
    assert to_json(dt.datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05+00:00"


def test_to_json_naive_datetime_keeps_microseconds() -> None:
    assert to_json(dt.datetime(2024, 1, 2, 3, 4, 5, 123000)) == "2024-01-02T03:04:05.123000+00:00"


def test_to_json_aware_datetime_keeps_offset() -> None:
    tz = dt.timezone(dt.timedelta(hours=2))
    assert to_json(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz)) == "2024-01-02T03:04:05+02:00"


def test_to_json_decimal_is_float() -> None:
    result = to_json(Decimal("12.25"))
    assert result == 12.25
    assert type(result) is float


def test_to_json_bytes_is_base64() -> None:
    assert to_json(b"hello") == "aGVsbG8="


def test_to_json_uuid_is_text() -> None:
    assert to_json(uuid.UUID("12345678-1234-5678-1234-567812345678")) == "12345678-1234-5678-1234-567812345678"


def test_to_json_decimal128_is_float() -> None:
    result = to_json(Decimal128("19.99"))
    assert result == 19.99
    assert type(result) is float


def test_to_json_object_id_is_hex() -> None:
    assert to_json(OID) == "65a1b2c3d4e5f60718293a4b"


def test_to_json_timestamp_is_its_str() -> None:
    stamp = Timestamp(1_700_000_000, 5)
    assert to_json(stamp) == str(stamp)
    assert to_json(stamp) == "Timestamp(1700000000, 5)"


# --- to_document ---------------------------------------------------------------------------------


def test_to_document_replaces_underscore_id_with_string_id() -> None:
    document = to_document({"_id": OID, "name": "lamp"})
    assert document == {"name": "lamp", "id": "65a1b2c3d4e5f60718293a4b"}
    assert "_id" not in document


def test_to_document_converts_nested_values() -> None:
    raw: dict[str, object] = {
        "_id": 7,
        "price": Decimal128("3.5"),
        "added": dt.datetime(2024, 5, 6, 7, 8, 9),
        "tags": ("a", "b"),
        "meta": {"ref": OID, "blob": b"\xff"},
    }
    assert to_document(raw) == {
        "price": 3.5,
        "added": "2024-05-06T07:08:09+00:00",
        "tags": ["a", "b"],
        "meta": {"ref": "65a1b2c3d4e5f60718293a4b", "blob": "/w=="},
        "id": "7",
    }


def test_to_document_missing_id_raises_key_error() -> None:
    with pytest.raises(KeyError, match="_id"):
        to_document({"name": "x"})


# --- to_change_event -----------------------------------------------------------------------------


def _raw(op: str, **extra: object) -> dict[str, object]:
    return {
        "operationType": op,
        "documentKey": {"_id": OID},
        "clusterTime": Timestamp(1_700_000_000, 5),
        "ns": {"db": "shop", "coll": "items"},
        **extra,
    }


EXPECTED_VERSION = (1_700_000_000 << 31) | (5 << 10) | 3


@pytest.mark.parametrize("op", ["insert", "update", "replace"])
def test_to_change_event_with_full_document(op: str) -> None:
    event = to_change_event(_raw(op, fullDocument={"_id": OID, "name": "lamp", "price": Decimal128("9.5")}), 3)
    document: Document = {"name": "lamp", "price": 9.5, "id": "65a1b2c3d4e5f60718293a4b"}
    assert event == ChangeEvent(
        op=op,  # type: ignore[arg-type]
        doc_id="65a1b2c3d4e5f60718293a4b",
        document=document,
        version=EXPECTED_VERSION,
        size_bytes=len(orjson.dumps(document)),
    )
    assert event.size_bytes > 0


def test_to_change_event_update_without_full_document_has_no_document() -> None:
    event = to_change_event(_raw("update"), 3)
    assert event.op == "update"
    assert event.document is None
    assert event.doc_id == "65a1b2c3d4e5f60718293a4b"
    assert event.version == EXPECTED_VERSION
    assert event.size_bytes == 64


def test_to_change_event_update_with_null_full_document_has_no_document() -> None:
    event = to_change_event(_raw("update", fullDocument=None), 0)
    assert event.document is None
    assert event.size_bytes == 64


def test_to_change_event_delete_has_no_document() -> None:
    event = to_change_event(_raw("delete"), 0)
    assert event == ChangeEvent(
        op="delete",
        doc_id="65a1b2c3d4e5f60718293a4b",
        document=None,
        version=(1_700_000_000 << 31) | (5 << 10),
        size_bytes=64,
    )


def test_to_change_event_delete_ignores_full_document() -> None:
    event = to_change_event(_raw("delete", fullDocument={"_id": OID, "name": "lamp"}), 1)
    assert event.op == "delete"
    assert event.document is None
    assert event.size_bytes > 0


def test_to_change_event_doc_id_comes_from_document_key() -> None:
    raw = _raw("insert", fullDocument={"_id": "other", "x": 1})
    raw["documentKey"] = {"_id": 99}
    event = to_change_event(raw, 0)
    assert event.doc_id == "99"
    assert event.document == {"x": 1, "id": "other"}


def test_to_change_event_when_the_id_is_a_document_refuses_it_and_keeps_the_document() -> None:
    raw = _raw("insert", fullDocument={"_id": {"a": 1}, "name": "lamp"})
    raw["documentKey"] = {"_id": {"a": 1}}
    event = to_change_event(raw, 0)
    assert event.doc_id == '{"a": 1}'
    assert event.refused == '_id {"a": 1} (dict) cannot be an index id: only strings, ObjectIds and integers can'
    assert event.document == {"name": "lamp", "id": '{"a": 1}'}
    assert to_index_action(event).refused == event.refused


def test_to_change_event_when_a_delete_has_a_refused_id_refuses_it_too() -> None:
    raw = _raw("delete")
    raw["documentKey"] = {"_id": 2.5}
    event = to_change_event(raw, 0)
    assert (event.doc_id, event.document) == ("2.5", None)
    assert event.refused is not None
    assert "(float)" in event.refused
    assert to_index_action(event) == IndexAction(
        op="delete", doc_id="2.5", version=event.version, refused=event.refused
    )


def test_to_copy_event_is_an_insert_at_the_copy_version() -> None:
    event = to_copy_event({"_id": OID, "name": "lamp"})
    document: Document = {"name": "lamp", "id": "65a1b2c3d4e5f60718293a4b"}
    assert event == ChangeEvent(
        op="insert",
        doc_id="65a1b2c3d4e5f60718293a4b",
        document=document,
        version=COPY_VERSION,
        size_bytes=len(orjson.dumps(document)),
    )


def test_to_copy_event_when_the_id_is_refused_carries_the_reason() -> None:
    event = to_copy_event({"_id": [1], "name": "lamp"})
    assert (event.doc_id, event.document) == ("[1]", {"name": "lamp", "id": "[1]"})
    assert event.refused is not None
    assert "(list)" in event.refused


def test_to_change_event_version_follows_cluster_time_and_seq() -> None:
    raw = _raw("delete")
    raw["clusterTime"] = Timestamp(1_700_000_001, 2)
    assert to_change_event(raw, 9).version == (1_700_000_001 << 31) | (2 << 10) | 9


def test_to_change_event_seq_saturates() -> None:
    assert to_change_event(_raw("delete"), 5000).version == (1_700_000_000 << 31) | (5 << 10) | 1023


@pytest.mark.parametrize("op", ["drop", "rename", "invalidate", "dropDatabase"])
def test_to_change_event_unsupported_operation_raises(op: str) -> None:
    raw: dict[str, object] = {"operationType": op, "ns": {"db": "shop", "coll": "items"}}
    with pytest.raises(UnsupportedEvent) as info:
        to_change_event(raw, 0)
    message = str(info.value)
    assert f"'{op}'" in message
    assert "{'db': 'shop', 'coll': 'items'}" in message


def test_to_change_event_unsupported_is_value_error() -> None:
    with pytest.raises(ValueError, match="'invalidate'"):
        to_change_event({"operationType": "invalidate"}, 0)


def test_to_change_event_missing_operation_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedEvent, match="reported None on None"):
        to_change_event({}, 0)


# --- to_index_action -----------------------------------------------------------------------------


def test_to_index_action_upsert_with_document_and_version() -> None:
    event = ChangeEvent(op="insert", doc_id="a1", document={"id": "a1", "n": 1}, version=77, size_bytes=20)
    assert to_index_action(event) == IndexAction(op="upsert", doc_id="a1", document={"id": "a1", "n": 1}, version=77)


def test_to_index_action_delete_when_document_none() -> None:
    event = ChangeEvent(op="delete", doc_id="a1", document=None, version=78, size_bytes=64)
    assert to_index_action(event) == IndexAction(op="delete", doc_id="a1", document=None, version=78)


def test_to_index_action_update_without_document_is_delete() -> None:
    event = to_change_event(_raw("update"), 3)
    assert to_index_action(event) == IndexAction(
        op="delete", doc_id="65a1b2c3d4e5f60718293a4b", document=None, version=EXPECTED_VERSION
    )


def test_to_json_when_float_not_finite_gives_null() -> None:
    assert to_json(float("nan")) is None
    assert to_json(float("inf")) is None
    assert to_json(Decimal("-Infinity")) is None
