"""Pure preparation of a source document for indexing, shared by both backends.

`prepare_document` validates a document against the index schema and splits it into what the
backends index: the normalised text of searchable fields and the typed values of filter/facet/sort
fields. The original document is stored as-is and returned by the API.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from src.search.analysis import normalise
from src.search.models import Document, JSONValue
from src.search.query import INT64_MAX, INT64_MIN
from src.search.ranking import bucket_bits, custom_bucket
from src.search.schema import FieldSpec, IndexSchema

type IndexValue = str | int | float | datetime


class DocumentInvalid(ValueError):
    """The document does not fit the index schema; the message names the field."""


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A validated document split into what the backends index."""

    id: str
    source: Document
    text: dict[str, str]
    """Searchable field to its normalised text (values of multi fields joined by spaces)."""
    values: dict[str, list[IndexValue]]
    """Filter/facet/sort field to its typed values (one unless the field is multi)."""
    whole: dict[str, list[str]]
    """Searchable keyword field to its normalised whole values (for whole-value exactness ranking)."""
    joined: dict[str, list[str]] = field(default_factory=dict)
    """Searchable keyword field to its whole values without separators (`redis server` -> `redisserver`): a
    name typed without its separators is found exactly, as a prefix while typing, or with a typo."""
    rank: tuple[int, ...] = ()
    """The bits of the first custom ranking field's bucket (src/search/ranking.py), indexed as terms."""


ID_MAX_CHARS = 512
ID_MAX_BYTES = 512
"""Elasticsearch's limit on `_id` (UTF-8 bytes); the same rule holds on every backend."""
ID_PATTERN = r"^(?:[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f.][^\x00-\x1f\x7f]*|\.{3,})$"
"""An id has no control characters and is not `.` or `..` (dot segments: HTTP clients collapse them)."""
_ID_RE = re.compile(ID_PATTERN)


def id_problem(doc_id: str) -> str | None:
    """Why `doc_id` can never be a document id, or None when it can (pure; the API and the indexer agree)."""
    if not doc_id:
        return "it is empty"
    if len(doc_id) > ID_MAX_CHARS or len(doc_id.encode("utf-8", "surrogatepass")) > ID_MAX_BYTES:
        return f"it is longer than {ID_MAX_BYTES} bytes"
    if not _ID_RE.match(doc_id):
        return "it is `.` or `..`, or holds control characters"
    return None


def document_id(document: Document) -> str:
    """The document's id as a string; DocumentInvalid when missing, not a string/integer, or not a
    possible id (see `id_problem`)."""
    raw = document.get("id")
    if isinstance(raw, bool) or not isinstance(raw, str | int) or raw == "":
        raise DocumentInvalid("id: a non-empty string (or integer) is required")
    doc_id = str(raw)
    problem = id_problem(doc_id)
    if problem is not None:
        raise DocumentInvalid(f"id: not a possible document id: {problem}")
    return doc_id


def prepare_document(document: Document, schema: IndexSchema) -> PreparedDocument:
    """Validate `document` against `schema` and split it for indexing."""
    doc_id = document_id(document)
    text: dict[str, str] = {}
    values: dict[str, list[IndexValue]] = {}
    whole: dict[str, list[str]] = {}
    joined: dict[str, list[str]] = {}
    for spec in schema.fields:
        raw = document.get(spec.name)
        if raw is None:
            continue
        items = _as_list(spec, raw)
        if spec.searchable:
            text[spec.name] = normalise(" ".join(_as_text(spec, item) for item in items))
            if spec.type == "keyword":
                whole[spec.name] = [normalise(_as_text(spec, item)) for item in items]
                joined[spec.name] = [value.replace(" ", "") for value in whole[spec.name]]
        if spec.has_value_column:
            values[spec.name] = [_typed(spec, item) for item in items]
    rank: tuple[int, ...] = ()
    if schema.custom:
        name, descending = schema.custom[0]
        first = values.get(name)
        rank = bucket_bits(custom_bucket(first[0] if first else None, descending=descending))  # type: ignore[arg-type]
    return PreparedDocument(
        id=doc_id, source={**document, "id": doc_id}, text=text, values=values, whole=whole, joined=joined, rank=rank
    )


def project(document: Document, schema: IndexSchema) -> Document:
    """The document limited to `id` and the fields the schema returns."""
    returned = set(schema.returned)
    return {key: value for key, value in document.items() if key == "id" or key in returned}


def _as_list(spec: FieldSpec, raw: JSONValue) -> list[JSONValue]:
    if isinstance(raw, list):
        if not spec.multi and spec.type != "text":
            raise DocumentInvalid(f"{spec.name}: a single value is required, not a list")
        return [item for item in raw if item is not None]
    return [raw]


def _as_text(spec: FieldSpec, item: JSONValue) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, int | float) and not isinstance(item, bool):
        return str(item)
    raise DocumentInvalid(f"{spec.name}: text is required, got {type(item).__name__}")


def _typed(spec: FieldSpec, item: JSONValue) -> IndexValue:
    match spec.type:
        case "keyword":
            if isinstance(item, str):
                return item
            if isinstance(item, int | float) and not isinstance(item, bool):
                return str(item)
        case "integer":
            number = int(item) if isinstance(item, float) and item.is_integer() else item
            if isinstance(number, int) and not isinstance(number, bool) and INT64_MIN <= number <= INT64_MAX:
                return number
        case "float":
            if isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item):
                return float(item)
        case "date":
            if isinstance(item, str):
                try:
                    parsed = datetime.fromisoformat(item)
                except ValueError:
                    pass
                else:
                    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        case "text":  # pragma: no cover - text fields have no value column (schema validation)
            pass
    raise DocumentInvalid(f"{spec.name}: a {spec.type} value is required, got {item!r:.40}")
