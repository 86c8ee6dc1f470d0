"""`python -m src`: serve the read API with uvicorn on APP_HOST:APP_PORT."""

import gc

import uvicorn

from src.main import create_app
from src.serving import CoalescingHttpToolsProtocol
from src.settings import settings_or_exit


def main() -> None:
    """Run the server (one process; scale out with more processes behind the gateway)."""
    settings = settings_or_exit()
    app = create_app(settings)
    # Everything built so far (modules, FastAPI's routes and their pydantic validators) lives as long as
    # the process: frozen, the collector no longer walks it. A full collection otherwise took about 50 ms
    # here, every few seconds under load, with the event loop stopped (most of the typo benchmark's p99).
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.app_host,
        port=settings.app_port,
        log_level=settings.log_level.lower(),
        access_log=False,  # the app writes its own access log (src/observability/middleware.py)
        log_config=None,  # uvicorn's loggers go through the app's JSON logging
        proxy_headers=False,  # the app reads X-Forwarded-For itself, from TRUSTED_PROXIES only
        server_header=False,  # no `server: uvicorn`: nothing that names the software to a client
        http=CoalescingHttpToolsProtocol,  # a response's head and body in one write (src/serving.py)
    )


if __name__ == "__main__":
    main()
