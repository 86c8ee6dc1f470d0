"""`python -m src`: serve the read API with uvicorn on APP_HOST:APP_PORT."""

import gc

import uvicorn

from src.api.security import SecurityHeaders
from src.main import create_app
from src.serving import EdgeHttpToolsProtocol
from src.settings import ApiSettings, UnsafeSettings, settings_or_exit


def main() -> None:
    """Run the server (one process; scale out with more processes behind the gateway)."""
    settings = settings_or_exit(ApiSettings)
    try:
        settings.check_serving()  # before the port is bound: one line naming each setting, no traceback
    except UnsafeSettings as err:
        raise SystemExit(f"refusing to serve with APP_ENV=production: {err}") from None
    app = create_app(settings)
    protocol = EdgeHttpToolsProtocol.configured(
        header_timeout_seconds=settings.http.header_timeout_seconds,
        max_unread_body_bytes=settings.http.max_body_bytes,
        security_headers=SecurityHeaders(hsts_max_age_seconds=settings.edge.hsts_max_age_seconds),
    )
    # Everything built so far (modules, FastAPI's routes and their pydantic validators) lives as long as
    # the process: frozen, the collector no longer walks it. A full collection otherwise took about 50 ms
    # here, every few seconds under load, with the event loop stopped (most of the typo benchmark's p99).
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_level=settings.app.log_level.lower(),
        access_log=False,  # the app writes its own access log (src/api/outermost.py)
        log_config=None,  # uvicorn's loggers go through the app's JSON logging
        proxy_headers=False,  # the app reads X-Forwarded-For itself, from TRUSTED_PROXIES only
        server_header=False,  # no `server: uvicorn`: nothing that names the software to a client
        http=protocol,  # one write per response, head deadline, problem-document errors (src/serving.py)
        ws="none",  # no WebSocket routes: an upgrade is an ordinary request (uvicorn's own 403 had no headers)
    )


if __name__ == "__main__":
    main()
