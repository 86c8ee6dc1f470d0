"""Unit tests of src.cache.tokens: lock tokens unique per call and per process."""

from __future__ import annotations

from src.cache import tokens
from src.cache.tokens import lock_token


def test_lock_token_when_called_repeatedly_never_repeats() -> None:
    tokens = {lock_token() for _ in range(10_000)}
    assert len(tokens) == 10_000


def test_lock_token_after_fork_takes_a_new_prefix() -> None:
    before = lock_token()
    tokens._after_fork()  # what os.register_at_fork runs in a child
    after = lock_token()
    assert after.split("-")[0] != before.split("-")[0]
    assert after.endswith("-0")  # the counter starts again under the new prefix
