"""How long the engine has been holding the indexer's writes back, said out loud.

A write the engine refuses for its load (429: indexing pressure, a full write queue, a flood-stage disk
block) is retried for as long as it takes: a busy engine is not the document's fault, and dropping it
would lose a change. But never silently. Every refused round is counted
(`search_indexer_failures_total{kind="pressure"}`); the first one is logged, then one line every
`log_every_seconds` at most; `search_indexer_write_blocked_seconds` says for how long the oldest write
still refused has waited, and past `alert_seconds` the stream is stalled: logged as an error once,
`search_indexer_write_stalled` is 1 (the `SearchIndexerStalled` alert), and since the blocked batch saves
no checkpoint, `python -m indexer status` reports `stalled` too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loguru import logger

from src.observability.metrics import INDEXER_FAILURES, watch_blocked_writes


@dataclass(slots=True)
class PressureWatch:
    """The writes of one consumer that the engine keeps refusing for its load, by write."""

    consumer: str
    alert_seconds: float
    log_every_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _since: dict[int, float] = field(default_factory=dict)
    """When each write still refused was first refused (a sink serves concurrent writes: the stream and
    a requested reindex)."""
    _rounds: int = 0
    _logged_at: float = float("-inf")
    _alerted: bool = False

    def __post_init__(self) -> None:
        watch_blocked_writes(self.consumer, self.blocked_seconds, self.alert_seconds)

    def refused(self, write: int, documents: int, reason: str) -> None:
        """The engine refused `documents` of `write` for its load (once per round of retries)."""
        now = self.clock()
        self._since.setdefault(write, now)
        self._rounds += 1
        INDEXER_FAILURES.labels(self.consumer, "pressure").inc()
        blocked = self.blocked_seconds()
        if blocked > self.alert_seconds and not self._alerted:
            self._alerted = True
            self._logged_at = now
            logger.error(
                "INDEXER STALLED: the engine has refused writes for its load for {:.0f} s ({} refusals, over "
                "INDEXER_PRESSURE_ALERT_SECONDS={:g}); still retrying {} documents: {}",
                blocked,
                self._rounds,
                self.alert_seconds,
                documents,
                reason,
            )
        elif now - self._logged_at >= self.log_every_seconds:
            self._logged_at = now
            log = logger.error if self._alerted else logger.warning
            log(
                "the engine refuses {} documents for its load or their size ({:.0f} s, {} refusals so far); "
                "retrying with backoff: {}",
                documents,
                blocked,
                self._rounds,
                reason,
            )

    def cleared(self, write: int) -> None:
        """`write` got through (or ended); the watch resets once no write is refused any more."""
        if self._since.pop(write, None) is None or self._since:
            return
        if self._rounds:
            logger.info("the engine takes writes again after {} refusals", self._rounds)
        self._rounds, self._logged_at, self._alerted = 0, float("-inf"), False

    def blocked_seconds(self) -> float:
        """How long the oldest write still refused has been refused (0 when none is). Also read by the
        metrics server's thread: one pass over the dict, no check-then-read."""
        since = min(self._since.values(), default=None)
        return 0.0 if since is None else self.clock() - since

    @property
    def stalled(self) -> bool:
        """Whether a write has been refused for longer than `alert_seconds`."""
        return self.blocked_seconds() > self.alert_seconds
