"""Relevance floors on every engine: `bench/relevance.py`'s probes over the demo data.

The floors sit just below the figures measured when they were set (see docs/benchmarks.md, Relevance),
so a change that makes search worse at finding misspelled, split or concatenated names fails here.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ENGINES, engine_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {
    ("name-substitution", "s1"): 0.97,
    ("name-deletion", "s1"): 0.97,
    ("name-insertion", "s1"): 0.97,
    ("name-transposition", "s1"): 0.97,
    ("name-substitution", "s10"): 0.98,
    ("name-deletion", "s10"): 0.98,
    ("name-insertion", "s10"): 0.98,
    ("name-transposition", "s10"): 0.98,
    ("separator-dropped", "s1"): 0.95,
    ("separator-added", "s1"): 0.95,
    ("known-item", "s10"): 0.97,
    ("name-prefix", "s10"): 0.95,
    ("summary-word-typo", "overlap"): 0.85,
}


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("relevance_bench", ROOT / "bench" / "relevance.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ENGINES)
def test_search_when_probed_with_typos_and_separators_stays_above_its_floors(kind: str, tmp_path: Path) -> None:
    url = "".join(engine_settings(kind).values())  # the one URL of this engine (none for Tantivy)
    figures = asyncio.run(
        _bench().evaluate_engine(
            kind, ROOT / "data" / "debian-packages.jsonl.gz", probes_per_kind=100, seed=7, tmp=tmp_path, url=url
        )
    )
    below = {
        (kind, metric): round(figures[kind][metric], 3)
        for (kind, metric), floor in FLOORS.items()
        if figures[kind][metric] < floor
    }
    assert not below, f"below the floors {FLOORS}: {below}"
    assert all(figures[kind]["errors"] == 0 for kind in figures)
