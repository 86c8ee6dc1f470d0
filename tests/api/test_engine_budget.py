"""The engine budget against a burst: one client's 100 concurrent uncached searches are refused (429) past
its budget before they take engine slots, while another client's searches keep succeeding.

The same scenario with a real Redis, up and paused, is in tests/integration/test_engine_budget_redis.py."""

from __future__ import annotations

from src.main import create_app
from src.settings import ApiSettings
from tests.fixtures.burst import LIMITS, burst


async def test_engine_budget_when_one_client_bursts_refuses_it_and_serves_the_other(settings: ApiSettings) -> None:
    app = create_app(settings.replace(**LIMITS))
    async with app.router.lifespan_context(app):
        outcome = await burst(app)
    assert outcome.abuser.count(429) == 80
    assert outcome.abuser.count(200) == 20  # its budget, and not one engine slot more
    assert outcome.neighbour_success() >= 0.95
    assert 503 not in outcome.abuser + outcome.neighbour  # nobody was pushed out by admission control
