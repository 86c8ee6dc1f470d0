"""A freshly built index is compacted before its alias moves: one segment on the engine clusters, unless it is
larger than `FORCE_MERGE_MAX_BYTES` (then the engine's own merging is left alone)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from src.search.backends import cluster
from src.search.backends.base import IndexAction
from src.search.backends.cluster import ClusterBackend
from tests.conftest import cluster_backend
from tests.fixtures.catalog import DOCS, SCHEMA

pytestmark = pytest.mark.integration


@pytest.fixture(params=["elasticsearch", "opensearch"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ClusterBackend[Any]]:
    async with cluster_backend(str(request.param), SCHEMA, tmp_path) as backend:
        yield backend


async def _written_in_batches(backend: ClusterBackend[Any]) -> str:
    """A new index whose documents came in three refreshed batches: three segments at least."""
    index = await backend.create_index()
    for batch in (DOCS[:4], DOCS[4:8], DOCS[8:]):
        await backend.bulk([IndexAction(op="upsert", doc_id=str(d["id"]), document=d) for d in batch], index=index)
        await backend.refresh(index)
    return index


async def _segments(backend: ClusterBackend[Any], index: str) -> int:
    response = await backend._client.indices.segments(index=index)
    shards = response["indices"][index]["shards"].values()
    return sum(len(copy["segments"]) for copies in shards for copy in copies)


async def test_optimize_when_index_is_small_merges_it_into_one_segment(engine: ClusterBackend[Any]) -> None:
    index = await _written_in_batches(engine)
    assert await _segments(engine, index) >= 3
    await engine.optimize(index)
    assert await _segments(engine, index) == 1
    assert await engine.count(index) == len(DOCS)


async def test_optimize_when_index_is_over_the_limit_leaves_its_segments(
    engine: ClusterBackend[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = await _written_in_batches(engine)
    before = await _segments(engine, index)
    monkeypatch.setattr(cluster, "FORCE_MERGE_MAX_BYTES", 0)
    await engine.optimize(index)
    assert await _segments(engine, index) == before >= 3
