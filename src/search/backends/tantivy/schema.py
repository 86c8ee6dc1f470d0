"""The Tantivy side of the index schema: its fields, its analyzer, and a document's indexed form.

Fields: `id` (raw, stored, fast), `_source` (the original document's JSON), `_version` (the external
version), `_id_hi`/`_id_lo` (the id's first 16 bytes, `id_key`), `t_<field>` the normalised text of a
searchable field (with positions), `x_<field>`/`j_<field>` the whole and joined values of a searchable
keyword field, `r` the custom ranking bits, `v_<field>` typed values for filters, facets and sorting.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import tantivy

from src.search.documents import PreparedDocument
from src.search.schema import IndexSchema

_ANALYZER = "normalised"
ID_HIGH, ID_LOW = "_id_hi", "_id_lo"
"""The id's first 16 UTF-8 bytes as two big-endian integers (fast columns): hits sharing a score are put in id
order from these columns, reading a stored id only where two ids share those 16 bytes."""
RANK_FIELD = "r"
"""The custom ranking bucket's bits, one term each (src/search/ranking.py)."""
FIELD_TYPES = {
    "integer": tantivy.FieldType.Integer,
    "float": tantivy.FieldType.Float,
    "date": tantivy.FieldType.Date,
}


def build_tantivy_schema(schema: IndexSchema) -> tantivy.Schema:
    """The Tantivy schema derived from the index schema."""
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("id", stored=True, fast=True, tokenizer_name="raw")
    builder.add_bytes_field("_source", stored=True)
    builder.add_integer_field("_version", stored=True, indexed=True, fast=True)
    builder.add_unsigned_field(ID_HIGH, fast=True)
    builder.add_unsigned_field(ID_LOW, fast=True)
    for spec in schema.searchable:
        builder.add_text_field(f"t_{spec.name}", tokenizer_name=_ANALYZER, index_option="position")
    for spec in schema.searchable:
        if spec.type == "keyword":
            builder.add_text_field(f"x_{spec.name}", tokenizer_name="raw", index_option="basic")
            builder.add_text_field(f"j_{spec.name}", tokenizer_name="raw", index_option="basic")
    if schema.custom:
        builder.add_text_field(RANK_FIELD, tokenizer_name="raw", index_option="basic")
    for spec in schema.value_fields:
        name = f"v_{spec.name}"
        match spec.type:
            case "integer":
                builder.add_integer_field(name, indexed=True, fast=True)
            case "float":
                builder.add_float_field(name, indexed=True, fast=True)
            case "date":
                builder.add_date_field(name, indexed=True, fast=True)
            case _:
                builder.add_text_field(name, fast=True, tokenizer_name="raw", index_option="basic")
    return builder.build()


def register_analyzer(index: tantivy.Index) -> None:
    # Our Python normalisation already did case, accents and punctuation; split on whitespace only.
    analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).filter(tantivy.Filter.remove_long(255)).build()
    )
    index.register_tokenizer(_ANALYZER, analyzer)


def id_key(doc_id: str) -> tuple[int, int]:
    """The id's first 16 UTF-8 bytes as two big-endian integers: their order is the ids' (UTF-8 byte order is
    code point order, and an id holds no NUL to be confused with the padding) unless both start alike."""
    head = doc_id.encode("utf-8", "surrogatepass")[:16].ljust(16, b"\0")
    return int.from_bytes(head[:8], "big"), int.from_bytes(head[8:], "big")


def add_prepared(doc: tantivy.Document, prepared: PreparedDocument, version: int) -> None:
    doc.add_text("id", prepared.id)
    high, low = id_key(prepared.id)
    doc.add_unsigned(ID_HIGH, high)
    doc.add_unsigned(ID_LOW, low)
    doc.add_bytes("_source", orjson.dumps(prepared.source))
    doc.add_integer("_version", version)
    for name, text in prepared.text.items():
        doc.add_text(f"t_{name}", text)
    for name, wholes in prepared.whole.items():
        for whole in wholes:
            doc.add_text(f"x_{name}", whole)
    for name, joined_values in prepared.joined.items():
        for joined in joined_values:
            doc.add_text(f"j_{name}", joined)
    for bit in prepared.rank:
        doc.add_text(RANK_FIELD, str(bit))
    for name, values in prepared.values.items():
        for value in values:
            if isinstance(value, datetime):
                doc.add_date(f"v_{name}", value.astimezone(UTC))
            elif isinstance(value, bool | str):
                doc.add_text(f"v_{name}", str(value))
            elif isinstance(value, int):
                doc.add_integer(f"v_{name}", value)
            else:
                doc.add_float(f"v_{name}", value)
