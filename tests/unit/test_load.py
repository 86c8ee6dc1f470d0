"""Unit tests of the pure parts of src.indexer.load: line parsing, batching, opening (gzipped) files."""

from __future__ import annotations

import gzip
import io
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import orjson
import pytest
from loguru import logger

from src.indexer.load import LoadSummary, ParsedLine, batched, load_file, open_lines, parse_lines
from src.search.backends.base import BulkItemResult, IndexAction, SearchBackend
from src.search.errors import SearchUnavailable
from src.search.models import Document


def _decode_error(raw: bytes) -> str:
    with pytest.raises(orjson.JSONDecodeError) as caught:
        orjson.loads(raw)
    return str(caught.value)


def _ok(number: int, doc_id: str, document: Document) -> ParsedLine:
    return ParsedLine(line_number=number, action=IndexAction(op="upsert", doc_id=doc_id, document=document))


# --- parse_lines ---------------------------------------------------------------------------------


def test_parse_lines_upserts() -> None:
    lines = [b'{"id": "a", "name": "x"}\n', b'{"id": 7}\n']
    assert list(parse_lines(iter(lines))) == [
        _ok(1, "a", {"id": "a", "name": "x"}),
        _ok(2, "7", {"id": 7}),
    ]


def test_parse_lines_keeps_the_document_as_read() -> None:
    (parsed,) = parse_lines(iter([b'{"id": 7, "tags": ["a", null]}']))
    assert parsed.action is not None
    assert parsed.action.document == {"id": 7, "tags": ["a", None]}
    assert parsed.action.version is None


def test_parse_lines_skips_blank_lines_but_counts_them() -> None:
    lines = [b"\n", b'{"id": "a"}\n', b"   \t\r\n", b"", b'{"id": "b"}']
    assert list(parse_lines(iter(lines))) == [_ok(2, "a", {"id": "a"}), _ok(5, "b", {"id": "b"})]


def test_parse_lines_invalid_json() -> None:
    assert list(parse_lines(iter([b'{"id": "a"\n', b'{"id": "b"}\n']))) == [
        ParsedLine(line_number=1, action=None, error=_decode_error(b'{"id": "a"\n')),
        _ok(2, "b", {"id": "b"}),
    ]


def test_parse_lines_invalid_utf8() -> None:
    raw = b'{"id": "\xff"}\n'
    assert list(parse_lines(iter([raw]))) == [ParsedLine(line_number=1, action=None, error=_decode_error(raw))]


@pytest.mark.parametrize("raw", [b"[1, 2]\n", b'"id"\n', b"42\n", b"null\n"])
def test_parse_lines_not_an_object(raw: bytes) -> None:
    assert list(parse_lines(iter([raw]))) == [ParsedLine(line_number=1, action=None, error="a JSON object is required")]


@pytest.mark.parametrize("raw", [b'{"name": "x"}', b'{"id": ""}', b'{"id": null}', b'{"id": true}', b'{"id": 1.5}'])
def test_parse_lines_missing_or_bad_id(raw: bytes) -> None:
    assert list(parse_lines(iter([raw]))) == [
        ParsedLine(line_number=1, action=None, error="id: a non-empty string (or integer) is required")
    ]


def test_parse_lines_errors_do_not_stop_the_stream() -> None:
    parsed = list(parse_lines(iter([b"nope", b"[]", b'{"x": 1}', b'{"id": "ok"}'])))
    assert [(item.line_number, item.action is None) for item in parsed] == [
        (1, True),
        (2, True),
        (3, True),
        (4, False),
    ]


def test_parse_lines_empty_input() -> None:
    assert list(parse_lines(iter([]))) == []


def test_parse_lines_when_a_line_is_over_the_document_limit_refuses_it_unread() -> None:
    big = b'{"id": "big", "body": "' + b"x" * 100 + b'"}'
    parsed = list(parse_lines(iter([b'{"id": "a"}\n', big + b"\n", b"not even json " * 10]), max_document_bytes=64))
    assert parsed == [
        _ok(1, "a", {"id": "a"}),
        ParsedLine(
            line_number=2, action=None, error=f"document is {len(big)} bytes, over INDEXER_MAX_DOCUMENT_BYTES=64"
        ),
        ParsedLine(line_number=3, action=None, error="document is 139 bytes, over INDEXER_MAX_DOCUMENT_BYTES=64"),
    ]


# --- batched -------------------------------------------------------------------------------------


def _lines(count: int) -> list[ParsedLine]:
    return [ParsedLine(line_number=n, action=None, error="e") for n in range(1, count + 1)]


def test_batched_groups_with_short_last_batch() -> None:
    items = _lines(5)
    assert list(batched(iter(items), 2)) == [items[0:2], items[2:4], items[4:5]]


def test_batched_exact_multiple_has_no_empty_batch() -> None:
    items = _lines(4)
    assert list(batched(iter(items), 2)) == [items[0:2], items[2:4]]


def test_batched_size_one() -> None:
    items = _lines(3)
    assert list(batched(iter(items), 1)) == [[items[0]], [items[1]], [items[2]]]


def test_batched_size_larger_than_input() -> None:
    items = _lines(3)
    assert list(batched(iter(items), 10)) == [items]


def test_batched_empty_input() -> None:
    assert list(batched(iter([]), 3)) == []


# --- open_lines ----------------------------------------------------------------------------------

CONTENT = b'{"id": "a"}\n{"id": "b"}\n'


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.gz", "docs"])
def test_open_lines_plain_file_whatever_the_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(CONTENT)
    with open_lines(path) as stream:
        assert list(stream) == [b'{"id": "a"}\n', b'{"id": "b"}\n']


@pytest.mark.parametrize("name", ["docs.jsonl.gz", "docs.jsonl", "docs"])
def test_open_lines_gzipped_file_whatever_the_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(CONTENT))
    with open_lines(path) as stream:
        assert list(stream) == [b'{"id": "a"}\n', b'{"id": "b"}\n']


@pytest.mark.parametrize("content", [b"", b"{"])
def test_open_lines_file_shorter_than_magic(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tiny.jsonl"
    path.write_bytes(content)
    with open_lines(path) as stream:
        assert stream.read() == content


def test_open_lines_feeds_parse_lines(tmp_path: Path) -> None:
    path = tmp_path / "docs.bin"
    path.write_bytes(gzip.compress(b'{"id": 1}\n\nnot json\n'))
    with open_lines(path) as stream:
        parsed = list(parse_lines(iter(stream)))
    assert [(item.line_number, item.action is not None) for item in parsed] == [(1, True), (3, False)]


def test_open_lines_when_input_is_a_pipe_reads_it_once(tmp_path: Path) -> None:
    fifo = tmp_path / "docs.fifo"
    os.mkfifo(fifo)
    payload = gzip.compress(b'{"id": "a"}\n{"id": "b"}\n')

    def write() -> None:
        with fifo.open("wb") as out:  # blocks until the reader opens it; a second open would block forever
            out.write(payload)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with open_lines(fifo) as stream:
        assert stream.read() == b'{"id": "a"}\n{"id": "b"}\n'
    writer.join()


def test_open_lines_when_gzipped_closes_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "a"}\n'))
    with open_lines(path) as stream:
        stream.read()
    assert stream.closed
    assert cast(io.BufferedReader, stream._owned).closed  # type: ignore[attr-defined]


def test_open_lines_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_lines(tmp_path / "absent.jsonl")


# --- load_file -----------------------------------------------------------------------------------


class _RecordingBackend:
    """Just the calls load_file makes, recorded; bulk refuses the ids listed in `refuse`."""

    def __init__(
        self,
        *,
        current: str | None,
        refuse: frozenset[str] = frozenset(),
        optimize_fails: bool = False,
        bulk_fails: bool = False,
        building: dict[str, float] | None = None,
    ) -> None:
        self.current = current
        self.refuse = refuse
        self.optimize_fails = optimize_fails
        self.bulk_fails = bulk_fails
        self.building = building or {}
        self.calls: list[tuple[str, object]] = []

    async def building_indices(self) -> dict[str, float]:
        self.calls.append(("building_indices", None))
        return dict(self.building)

    async def drop_index(self, index: str) -> None:
        self.calls.append(("drop_index", index))
        self.building.pop(index, None)

    async def heartbeat(self, index: str) -> None:
        self.calls.append(("heartbeat", index))

    async def current_index(self) -> str | None:
        self.calls.append(("current_index", None))
        return self.current

    async def create_index(self) -> str:
        self.calls.append(("create_index", None))
        return "docs-2"

    async def bulk(self, actions: Sequence[IndexAction], *, index: str | None = None) -> list[BulkItemResult]:
        self.calls.append(("bulk", (index, [action.doc_id for action in actions])))
        if self.bulk_fails:
            raise SearchUnavailable("elasticsearch bulk: ConnectionTimeout")
        return [
            BulkItemResult(doc_id=a.doc_id, ok=False, error="mapper_parsing_exception: bad")
            if a.doc_id in self.refuse
            else BulkItemResult(doc_id=a.doc_id, ok=True)
            for a in actions
        ]

    async def refresh(self, index: str | None = None) -> None:
        self.calls.append(("refresh", index))

    async def optimize(self, index: str) -> None:
        self.calls.append(("optimize", index))
        if self.optimize_fails:
            raise SearchUnavailable("force merge timed out")

    async def point_alias(self, index: str) -> None:
        self.calls.append(("point_alias", index))


def _write(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


async def _load(
    path: Path, backend: _RecordingBackend, *, recreate: bool = False, max_error_samples: int = 20
) -> tuple[LoadSummary, list[int]]:
    progress: list[int] = []
    summary = await load_file(
        path,
        backend=cast(SearchBackend, backend),
        batch_size=2,
        recreate=recreate,
        on_progress=progress.append,
        max_error_samples=max_error_samples,
    )
    return summary, progress


async def test_load_file_creates_index_and_alias_when_none(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}', b"[1]", b'{"id": "b"}', b"", b'{"id": 3}'])
    backend = _RecordingBackend(current=None)
    summary, progress = await _load(path, backend)
    assert (summary.documents, summary.errors, summary.index, summary.created) == (3, 1, "docs-2", True)
    assert summary.error_samples == ["line 2: a JSON object is required"]
    assert summary.seconds >= 0.0
    assert progress == [2, 2]
    assert backend.calls == [
        ("building_indices", None),
        ("current_index", None),
        ("create_index", None),
        ("bulk", ("docs-2", ["a"])),
        ("bulk", ("docs-2", ["b", "3"])),
        ("refresh", "docs-2"),
        ("optimize", "docs-2"),
        ("point_alias", "docs-2"),
    ]


async def test_load_file_reuses_current_index(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}'])
    backend = _RecordingBackend(current="docs-1")
    summary, progress = await _load(path, backend)
    assert (summary.documents, summary.errors, summary.index, summary.created) == (1, 0, "docs-1", False)
    assert progress == [1]
    assert backend.calls == [
        ("building_indices", None),
        ("current_index", None),
        ("bulk", ("docs-1", ["a"])),
        ("refresh", "docs-1"),
    ]


async def test_load_file_recreate_builds_new_index(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}'])
    backend = _RecordingBackend(current="docs-1")
    summary, _ = await _load(path, backend, recreate=True)
    assert (summary.index, summary.created) == ("docs-2", True)
    assert backend.calls[-1] == ("point_alias", "docs-2")


async def test_load_file_when_compaction_fails_still_moves_the_alias_and_warns(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}'])
    backend = _RecordingBackend(current="docs-1", optimize_fails=True)
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message.record["message"])), level="WARNING")
    try:
        summary, _ = await _load(path, backend, recreate=True)
    finally:
        logger.remove(sink)
    assert (summary.documents, summary.index) == (1, "docs-2")
    assert backend.calls[-2:] == [("optimize", "docs-2"), ("point_alias", "docs-2")]
    assert warnings == ["docs-2: not compacted (force merge timed out); serving it as written"]


async def test_load_file_batch_of_errors_only_skips_bulk(tmp_path: Path) -> None:
    path = _write(tmp_path, [b"x", b"y"])
    backend = _RecordingBackend(current="docs-1")
    summary, progress = await _load(path, backend)
    assert (summary.documents, summary.errors) == (0, 2)
    assert progress == [2]
    assert [name for name, _ in backend.calls] == ["building_indices", "current_index", "refresh"]


async def test_load_file_backend_refusals_and_sample_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}', b'{"id": "b"}', b"{}", b'{"id": "c"}'])
    backend = _RecordingBackend(current="docs-1", refuse=frozenset({"a", "c"}))
    summary, _ = await _load(path, backend, max_error_samples=2)
    assert (summary.documents, summary.errors) == (1, 3)
    assert summary.error_samples == [
        "line 1 (id a): mapper_parsing_exception: bad",
        "line 3: id: a non-empty string (or integer) is required",
    ]


async def test_load_file_when_a_line_is_over_the_document_limit_reports_it_as_an_error_sample(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}', b'{"id": "b", "body": "' + b"x" * 200 + b'"}'])
    backend = _RecordingBackend(current="docs-1")
    summary = await load_file(path, backend=cast(SearchBackend, backend), batch_size=10, max_document_bytes=100)
    assert (summary.documents, summary.errors) == (1, 1)
    assert summary.error_samples == ["line 2: document is 223 bytes, over INDEXER_MAX_DOCUMENT_BYTES=100"]


async def test_load_file_without_progress_callback(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}', b'{"id": "b"}', b'{"id": "c"}'])
    backend = _RecordingBackend(current="docs-1")
    summary = await load_file(path, backend=cast(SearchBackend, backend), batch_size=2)
    assert (summary.documents, summary.errors, summary.error_samples) == (3, 0, [])
    assert [name for name, _ in backend.calls] == ["building_indices", "current_index", "bulk", "bulk", "refresh"]


async def test_load_file_when_a_dead_build_was_left_behind_drops_it_first(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}'])
    backend = _RecordingBackend(current="docs-1", building={"docs-0": 0.0})
    summary, _ = await _load(path, backend, recreate=True)
    assert summary.orphans == ["docs-0"]
    assert backend.calls[:3] == [("building_indices", None), ("current_index", None), ("drop_index", "docs-0")]
    assert backend.calls[-1] == ("point_alias", "docs-2")


async def test_load_file_when_the_build_fails_drops_its_new_index(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}'])
    backend = _RecordingBackend(current="docs-1", bulk_fails=True)
    with pytest.raises(SearchUnavailable):
        await _load(path, backend, recreate=True)
    assert backend.calls[-2:] == [("bulk", ("docs-2", ["a"])), ("drop_index", "docs-2")]
    assert ("point_alias", "docs-2") not in backend.calls


async def test_load_file_when_loading_into_the_current_index_never_drops_it(tmp_path: Path) -> None:
    path = _write(tmp_path, [b'{"id": "a"}'])
    backend = _RecordingBackend(current="docs-1", bulk_fails=True)
    with pytest.raises(SearchUnavailable):
        await _load(path, backend)
    assert not [call for call in backend.calls if call[0] == "drop_index"]
