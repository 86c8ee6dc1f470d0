"""Loguru configured for one JSON object per line on stderr, in every process (API, indexer, CLI).

Each line: `ts` (UTC, ISO 8601), `level`, `logger`, `message`, `process` (api, indexer, ...), the
current `trace_id`/`span_id` when a span is active, the record's bound fields, and `exception` (the
formatted traceback) when there is one. Values are JSON-escaped (orjson), so an untrusted value (a
document id, a query, a header) can never start a line of its own. The standard library's loggers
(uvicorn's, the clients') are routed into loguru, so their lines have the same shape.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from datetime import UTC
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from loguru import logger

from src.observability.tracing import current_ids

if TYPE_CHECKING:
    from loguru import Message

_PER_REQUEST_LOGGERS = ("elastic_transport", "opensearch", "opensearchpy.trace")
"""Libraries that log every failed request (with a traceback); the breakers log outages once instead."""

_ROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "faststream", "pymongo", "elasticsearch", "opensearch")
"""Loggers that bring handlers of their own (uvicorn's); theirs are removed so each line is written once."""

_SILENCED_LOGGERS = ("uvicorn.access",)
"""The API writes its own access log (src/api/outermost.py): uvicorn's, without handlers
anywhere above it, is not even formatted (uvicorn checks `hasHandlers()`)."""


def json_line(record: Any, process: str) -> bytes:
    """The JSON line of one loguru record (without the newline)."""
    line: dict[str, object] = {
        "ts": record["time"].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": record["level"].name,
        "logger": record["extra"].get("logger", record["name"]),
        "message": record["message"],
        "process": process,
    }
    ids = current_ids()
    if ids is not None:
        line["trace_id"], line["span_id"] = ids
    for key, value in record["extra"].items():
        if key != "logger":
            line.setdefault(key, value)
    exception = record["exception"]
    if exception is not None and exception.type is not None:
        line["exception"] = "".join(traceback.format_exception(exception.type, exception.value, exception.traceback))
    return orjson.dumps(line, default=str)


class _JsonSink:
    def __init__(self, stream: TextIO | None, process: str) -> None:
        self._stream = stream
        self._process = process

    def __call__(self, message: Message) -> None:
        stream = self._stream or sys.stderr  # looked up per line: whatever stderr is now
        stream.write(json_line(message.record, self._process).decode() + "\n")
        stream.flush()


class InterceptHandler(logging.Handler):
    """Hands standard-library log records to loguru, keeping their level and logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(logger=record.name).opt(exception=record.exc_info, depth=0).log(level, record.getMessage())


class _Timestamps:
    """ISO 8601 UTC with milliseconds; the part up to the second is formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


class AccessLog:
    """Access-log lines in the same JSON shape as every other line, without loguru's per-record work
    (frame inspection, record building: about 25 us, more than a whole cache hit).

    Lines are written in batches, as nginx's `access_log ... buffer= flush=` does: at most
    `FLUSH_SECONDS` after the first unwritten one, at once when `MAX_PENDING_BYTES` are waiting, and at
    shutdown. A write per request (a system call each) cost a tenth of a cache hit's throughput; the
    price is that a process killed without shutting down loses at most the last 50 ms of lines."""

    FLUSH_SECONDS = 0.05
    MAX_PENDING_BYTES = 64 * 1024

    def __init__(self, process: str, stream: TextIO | None) -> None:
        self._process = process
        self._stream = stream
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._timestamps = _Timestamps()

    def write(self, fields: dict[str, object]) -> None:
        """One line: `fields` after ts, level, logger, message and process (the dict is used as given,
        those five first when it has them already, as the middleware's does)."""
        fields.update(ts=self._timestamps.now(), level="INFO", logger="access", message="access", process=self._process)
        line = orjson.dumps(fields, default=str)
        self._pending.append(line)
        self._pending_bytes += len(line) + 1
        if self._pending_bytes >= self.MAX_PENDING_BYTES:
            self.flush()
        elif len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_later(self.FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no loop: write at once
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"\n".join(self._pending) + b"\n"
        self._pending.clear()
        self._pending_bytes = 0
        stream = self._stream or sys.stderr
        binary = getattr(stream, "buffer", None)
        if binary is not None:
            stream.flush()  # keep the order with text written before
            binary.write(data)
            binary.flush()
        else:
            stream.write(data.decode())
            stream.flush()


_access_log = AccessLog("api", None)


def access_log() -> AccessLog:
    """The process's access log (set up by `configure_logging`)."""
    return _access_log


def configure_logging(level: str, *, process: str = "api", stream: TextIO | None = None) -> None:
    """One JSON object per line on `stream` (stderr), at `level`, standard logging included."""
    global _access_log
    _access_log.flush()
    _access_log = AccessLog(process, stream)
    logger.remove()
    logger.add(_JsonSink(stream, process), level=level, backtrace=False, diagnose=False)
    root = logging.getLogger()
    root.handlers = [InterceptHandler()]
    root.setLevel(level)
    for name in _ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers = []
        routed.propagate = True
    for name in _SILENCED_LOGGERS:
        silenced = logging.getLogger(name)
        silenced.handlers = []
        silenced.propagate = False
    for name in _PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
