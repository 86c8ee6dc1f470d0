"""Unit tests of src.observability.logging: one JSON object per line, whatever the values."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from loguru import logger
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from src.observability.logging import AccessLog, configure_logging
from src.observability.tracing import span


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    captured = io.StringIO()
    configure_logging("DEBUG", process="indexer", stream=captured)
    yield captured
    logger.remove()
    logging.getLogger().handlers = []


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_configure_logging_when_a_value_is_hostile_keeps_one_line_per_record(stream: io.StringIO) -> None:
    forged = 'doc-1\n{"level":"ERROR","message":"forged"}'
    logger.warning("document {} refused for good", forged)
    logger.bind(doc_id=forged).info("bound")
    lines = _lines(stream)
    assert len(lines) == 2
    assert lines[0]["message"] == f"document {forged} refused for good"
    assert lines[0]["level"] == "WARNING"
    assert lines[0]["process"] == "indexer"
    assert lines[1]["doc_id"] == forged


def test_configure_logging_when_stdlib_and_uvicorn_log_routes_them_into_json(stream: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("some.library").warning("careful: %s", "x\ny")
    lines = _lines(stream)
    assert [line["logger"] for line in lines] == ["uvicorn.error", "some.library"]
    assert lines[0]["message"] == "Started server process [42]"
    assert lines[1]["level"] == "WARNING"
    assert lines[1]["message"] == "careful: x\ny"


def test_configure_logging_when_an_exception_is_logged_keeps_the_traceback_in_the_line(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (line,) = _lines(stream)
    assert "ValueError: boom" in str(line["exception"])
    assert line["level"] == "ERROR"


def test_configure_logging_when_inside_a_span_adds_its_ids(
    stream: io.StringIO, span_exporter: InMemorySpanExporter
) -> None:
    with span("unit of work") as current:
        logger.info("inside")
    logger.info("outside")
    inside, outside = _lines(stream)
    assert inside["trace_id"] == format(current.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(current.get_span_context().span_id, "016x")
    assert "trace_id" not in outside


async def test_access_log_when_lines_are_written_batches_them_until_the_flush_delay() -> None:
    stream = io.StringIO()
    log = AccessLog("api", stream)
    log.write({"route": "/v1/search", "status": 200})
    log.write({"route": "/healthz", "status": 200})
    assert stream.getvalue() == ""  # not one write per request
    await asyncio.sleep(AccessLog.FLUSH_SECONDS * 3)
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["route"] for line in lines] == ["/v1/search", "/healthz"]
    assert all(line["logger"] == "access" and line["process"] == "api" for line in lines)


async def test_access_log_when_pending_lines_reach_the_byte_bound_writes_at_once() -> None:
    stream = io.StringIO()
    log = AccessLog("api", stream)
    written = 0
    while not stream.getvalue():  # no timer can fire: this loop never yields
        log.write({"path": "x" * 1000})
        written += 1
        assert written <= AccessLog.MAX_PENDING_BYTES // 1000
    assert len(stream.getvalue().splitlines()) == written


def test_access_log_when_no_event_loop_runs_writes_at_once() -> None:
    stream = io.StringIO()
    AccessLog("indexer", stream).write({"status": 200})
    assert orjson.loads(stream.getvalue())["process"] == "indexer"
