"""The read API as an AWS Lambda function behind API Gateway (HTTP API, payload 2.0), through Mangum.

Handler path (part of the deployment contract): `src.serverless.api.handler`.

- **One lifespan per execution environment**, not per request: Mangum's own lifespan support runs the
  app's startup and shutdown around every invocation (clients reopened each time), so it is off, and
  the app's lifespan is entered once, on an event loop this module keeps for the environment's life;
  Mangum runs every request on that same loop, so the clients stay connected between invocations.
- **Lazy**: importing this module imports nothing of the app. The first invocation (or the init phase
  with provisioned concurrency, `AWS_LAMBDA_INITIALIZATION_TYPE=provisioned-concurrency`) builds it,
  importing only the configured engine's adapter (no Tantivy with Elasticsearch) and no indexer code.
- **Metrics**: one CloudWatch Embedded Metric Format line per request on stdout (requests, 5xx errors,
  latency, cache hits and misses), which CloudWatch turns into metrics without an API call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from src.observability.logging import access_log
from src.serverless.emf import api_request_record, write_record
from src.serverless.environment import PerEnvironment
from src.serverless.secrets import load_secrets

if TYPE_CHECKING:
    from fastapi import FastAPI
    from mangum import Mangum

type LambdaEvent = dict[str, Any]
"""An API Gateway HTTP API (payload format 2.0) event, as Lambda passes it (a vendor JSON body)."""
type LambdaResponse = dict[str, Any]
"""The HTTP API response object Mangum builds (statusCode, headers, body, isBase64Encoded)."""


@dataclass(slots=True)
class ApiRuntime:
    """The app, its running lifespan and the event loop they live on, for one execution environment."""

    app: FastAPI
    adapter: Mangum
    loop: asyncio.AbstractEventLoop
    lifespan: AbstractAsyncContextManager[Any]

    def __call__(self, event: LambdaEvent, context: object) -> LambdaResponse:
        started = time.perf_counter()
        response = self.adapter(event, context)  # type: ignore[arg-type]  # Mangum's context is a Protocol
        access_log().flush()  # the environment may be frozen once this returns: no batch waits for a timer
        write_record(api_request_record(event, response, duration_ms=(time.perf_counter() - started) * 1000))
        return response

    def close(self) -> None:
        """Run the app's shutdown (clients closed) and close the loop; for tests and benchmarks."""
        try:
            self.loop.run_until_complete(self.lifespan.__aexit__(None, None, None))
        finally:
            self.loop.close()


def build_runtime() -> ApiRuntime:
    """Create the app from the environment's settings and run its startup once."""
    from mangum import Mangum
    from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

    from src.main import create_app

    load_secrets(os.environ)  # SECRETS_FROM: Secrets Manager values, before the settings are read
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Mangum runs each request on the current loop: this one
    app = create_app()  # the shared factory imports only the configured engine's adapter
    lifespan = app.router.lifespan_context(app)
    try:
        loop.run_until_complete(lifespan.__aenter__())
    except BaseException:
        loop.close()
        raise
    # Problem details (application/problem+json) are text too: Mangum would send them base64-encoded.
    adapter = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, "+json"])
    return ApiRuntime(app=app, adapter=adapter, loop=loop, lifespan=lifespan)


_runtime = PerEnvironment(build_runtime)
runtime = _runtime.get
"""This execution environment's runtime, built on first use."""
reset = _runtime.reset
"""Close the runtime (the next invocation builds a new one from fresh settings): tests and benchmarks."""


def handler(event: LambdaEvent, context: object) -> LambdaResponse:
    """The Lambda entry point: one API Gateway request in, its response out."""
    return runtime()(event, context)


def _provisioned(environ: Mapping[str, str]) -> bool:
    return environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "provisioned-concurrency"


if _provisioned(os.environ):  # pragma: no cover - Lambda's init phase, before the first request
    runtime()
