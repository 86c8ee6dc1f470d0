"""Schemathesis against the app on the demo data: at least 1,000 generated requests, every check.

For each operation of the OpenAPI document, schema-valid (positive) and schema-violating (negative)
requests are drawn and sent in-process; every response must pass all of schemathesis's checks: no
server error, documented status codes, content types and headers, bodies conforming to their schema,
schema-violating data rejected and schema-valid data accepted.

One allowance, written down here and in docs/api.md (Errors): a schema-valid request may still be a 422 when
what it names is not in the index schema or was not issued by this service (a `filter` on a field
that is not filterable, a `cursor` this service did not sign): an OpenAPI document cannot say which
strings those are, so `positive_data_acceptance` accepts 422 as well as 2xx and 404.

Schemathesis starts the app's lifespan itself (in its own thread and loop), so this test is synchronous.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import SecretStr
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.errors import FailureGroup

from src.indexer.load import load_file
from src.main import create_app
from src.search.backends.tantivy import TantivyBackend
from src.search.schema import load_schema
from src.settings import Settings

NOT_FUZZED = {
    # No parameters and no body to generate; it publishes to the broker (a 503 without one, by design) and
    # fuzzing it would fill the shared reindex queue. Its token checks and both outcomes are tested in
    # tests/api/test_security.py, the real request in tests/integration/test_events_rabbitmq.py.
    "POST /v1/admin/reindex",
}
ADMIN_SECRET = "fuzz-only-hmac-secret-of-32-bytes!!"
ADMIN_TOKEN = jwt.encode(
    {"exp": int(time.time()) + 3600, "scope": "search:cache:purge search:read-status"}, ADMIN_SECRET, algorithm="HS256"
)

pytestmark = pytest.mark.integration

DEMO = Path("data/debian-packages.jsonl.gz")
MIN_REQUESTS = 1_000
MAX_EXAMPLES = 260
"""Per operation and generation mode: two parametrised operations x two modes x 260 > 1,000."""

load_all_checks()
ALL_CHECKS = cast(list[Any], CHECKS.get_all())


@dataclass
class Stats:
    requests: collections.Counter[tuple[str, str, str]] = field(default_factory=collections.Counter)
    failures: dict[tuple[str, str, str], tuple[int, str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    @property
    def server_errors(self) -> int:
        return sum(n for (_, _, status), n in self.requests.items() if status == "crash" or int(status) >= 500)

    def fail(self, key: tuple[str, str, str], example: str) -> None:
        count, first = self.failures.get(key, (0, example))
        self.failures[key] = (count + 1, first)

    def report(self) -> str:
        lines = [f"{self.total} requests, {self.server_errors} server errors, {len(self.failures)} kinds of failure"]
        lines += [f"  {label} [{mode}] -> {status}: {n}" for (label, mode, status), n in sorted(self.requests.items())]
        lines += [f"FAILURE x{n}: {key}\n{example[:1500]}" for key, (n, example) in self.failures.items()]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def demo_settings(tmp_path_factory: pytest.TempPathFactory, secantus_url: str) -> Settings:
    """The demo data in a Tantivy index of its own."""
    directory = tmp_path_factory.mktemp("fuzz")
    config = Settings(
        tantivy_data_dir=directory / "tantivy",
        index_alias="fuzz",
        cursor_secret="fuzz-secret",
        elasticsearch_url="",  # the embedded engine, whatever the environment says
        opensearch_url="",
        redis_url="",
        rate_limit_enabled=False,  # hundreds of requests a second from one client: the limits would answer
        auth_static_key=SecretStr(ADMIN_SECRET),  # the admin operations are fuzzed with a token granting them
        auth_algorithms="HS256",
        mongodb_url=secantus_url,  # the indexer status reads a real (never streamed) source
    )

    async def load_demo() -> None:
        backend = TantivyBackend(
            config.tantivy_data_dir, schema=load_schema(config.index_schema_path), alias="fuzz", timeout_seconds=30
        )
        try:
            summary = await load_file(DEMO, backend=backend, batch_size=1_000)
        finally:
            await backend.close()
        assert summary.documents == 5_000

    asyncio.run(load_demo())
    return config


def fuzz(operation: Any, mode: GenerationMode, stats: Stats) -> None:
    """Send MAX_EXAMPLES generated requests of one operation and mode; record statuses and failures."""
    label = str(operation.label)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any]) -> None:
        try:
            response = case.call()
        except Exception as err:  # an unhandled exception in the app surfaces here, not as a 500
            stats.requests[(label, mode.value, "crash")] += 1
            stats.fail((label, "CRASH", repr(err)), case.as_curl_command())
            return
        stats.requests[(label, mode.value, str(response.status_code))] += 1
        try:
            case.validate_response(response, checks=ALL_CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                stats.fail((label, str(failure.code), failure.title), str(group))

    run()


def test_openapi_when_fuzzed_has_no_server_error_and_no_schema_violation(demo_settings: Settings) -> None:
    config = schemathesis.Config.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404", "422"]}}}
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(demo_settings), config=config)

    @schema.hook
    def filter_case(context: object, case: schemathesis.Case[Any]) -> bool:
        # Schemathesis 4.32 reports negative_data_rejection for a repeatable query parameter mutated to a
        # scalar (`?filter=true` is a valid one-item list on the wire): such cases test nothing.
        return isinstance((case.query or {}).get("filter", []), list)

    @schema.auth().apply_to(path_regex="^/v1/admin/")
    class AdminToken:
        """A token granting the admin operations (the ignored_auth check also sends them without it)."""

        def get(self, case: schemathesis.Case[Any], context: object) -> str:
            return ADMIN_TOKEN

        def set(self, case: schemathesis.Case[Any], data: str, context: object) -> None:
            headers = case.headers if case.headers is not None else CaseInsensitiveDict()
            headers["Authorization"] = f"Bearer {data}"
            case.headers = headers

    stats = Stats()
    for result in schema.get_all_operations():
        operation = cast(Any, result).ok()  # raises if the document has an operation it cannot read
        if str(operation.label) in NOT_FUZZED:
            continue
        has_parameters = any(True for _ in operation.iter_parameters())
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_parameters else (GenerationMode.POSITIVE,)
        for mode in modes:
            fuzz(operation, mode, stats)

    assert stats.total >= MIN_REQUESTS, stats.report()
    assert stats.server_errors == 0, stats.report()
    assert not stats.failures, stats.report()
    search_statuses = {status for (label, _, status) in stats.requests if label == "GET /v1/search"}
    assert {"200", "422"} <= search_statuses, stats.report()  # both outcomes were really exercised
