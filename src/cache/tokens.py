"""Lock tokens: unique per process and call, made without a system call.

`uuid.uuid4()` reads `os.urandom`, which releases the GIL: on a loop thread next to a busy worker
thread (an engine call in `asyncio.to_thread`) getting it back can take a whole switch interval (5 ms),
on every request. A token only has to be unique among the lock's contenders, not unpredictable: a
random prefix drawn once per process (again after a fork) and a counter are.
"""

from __future__ import annotations

import itertools
import os
import uuid

_prefix = uuid.uuid4().hex
_counter = itertools.count()


def _after_fork() -> None:
    global _prefix, _counter
    _prefix = uuid.uuid4().hex
    _counter = itertools.count()


os.register_at_fork(after_in_child=_after_fork)


def lock_token() -> str:
    """A token no other process or call gets."""
    return f"{_prefix}-{next(_counter)}"
