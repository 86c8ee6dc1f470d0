"""What the relevance benchmark's probe rules share: the probe itself and the one-edit typo.

Pure and deterministic: every random choice comes from the `random.Random` handed in, so the same seed
and data give the same probes (`bench/relevance.py` builds the demo data's probes, `bench/npm_probes.py`
the npm corpus's).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

EDITS = ("substitution", "deletion", "insertion", "transposition")
SEPARATORS = "-._+"
"""Characters a typo never touches: the word separators of package names."""
LETTERS = string.ascii_lowercase


@dataclass(frozen=True, slots=True)
class Probe:
    """One query and the ids that count as a hit (any of them)."""

    kind: str
    query: str
    expected: frozenset[str]
    correct: str | None = None
    """For the overlap kind: the query with the word spelled correctly (same form as `query`)."""
    group: str = ""
    """The target sample the probe came from (npm: `top5%` or `uniform`), reported apart; empty for none."""


def typo(word: str, edit: str, rng: random.Random) -> str | None:
    """`word` with one random edit of kind `edit` that never touches a separator; None when impossible."""
    inner = [i for i, ch in enumerate(word) if ch not in SEPARATORS]
    if edit == "insertion":
        i = rng.randrange(len(word) + 1)
        return word[:i] + rng.choice(LETTERS) + word[i:]
    if edit == "transposition":
        pairs = [i for i in inner if i + 1 < len(word) and word[i + 1] not in SEPARATORS and word[i] != word[i + 1]]
        if not pairs:
            return None
        i = rng.choice(pairs)
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if not inner:
        return None
    i = rng.choice(inner)
    if edit == "deletion":
        return word[:i] + word[i + 1 :]
    return word[:i] + rng.choice([ch for ch in LETTERS if ch != word[i]]) + word[i + 1 :]
