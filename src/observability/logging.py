"""Loguru configured for JSON lines on stderr."""

from __future__ import annotations

import logging
import sys

from loguru import logger

_PER_REQUEST_LOGGERS = ("elastic_transport",)
"""Libraries that log every failed request (with a traceback); the breakers log outages once instead."""


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr, at `level`."""
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=True, backtrace=False, diagnose=False)
    for name in _PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
