"""Loguru configured for JSON lines on stderr."""

from __future__ import annotations

import sys

from loguru import logger


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr, at `level`."""
    logger.remove()
    logger.add(sys.stderr, level=level, serialize=True, backtrace=False, diagnose=False)
