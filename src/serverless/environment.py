"""What a Lambda execution environment keeps between invocations: one runtime, built on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Closable(Protocol):
    """A runtime: its clients and event loop, closed together."""

    def close(self) -> None:
        """Release everything."""
        ...


class PerEnvironment[T: Closable]:
    """One `T` per execution environment (module state: Lambda keeps the module between invocations)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._built: list[T] = []

    def get(self) -> T:
        """The runtime, built at the first call."""
        if not self._built:
            self._built.append(self._build())
        return self._built[0]

    def reset(self) -> None:
        """Close the runtime; the next call builds a new one from fresh settings (tests and benchmarks)."""
        while self._built:
            self._built.pop().close()
