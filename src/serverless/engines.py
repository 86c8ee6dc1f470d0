"""The search backend for a Lambda cold start: import only the configured engine's adapter.

The shared factory (`src.search.backends.factory`) imports every adapter at its top, Tantivy (and
its numpy and rapidfuzz) included, which would cost an Elasticsearch-backed cold start a few hundred
milliseconds for nothing. Elasticsearch is built here from the same settings; any other engine goes
through the shared factory, so a new engine works at once (only without the saving).
"""

from __future__ import annotations

from src.search.backends.base import SearchBackend
from src.search.schema import IndexSchema
from src.settings import Settings


def create_backend_lazily(settings: Settings, schema: IndexSchema) -> SearchBackend:
    """The configured backend, importing no other engine's code when it is Elasticsearch."""
    if settings.backend_kind != "elasticsearch":
        from src.main import create_configured_backend

        return create_configured_backend(settings, schema)
    from src.search.backends.elasticsearch import create_elasticsearch_backend

    password = settings.elasticsearch_password
    return create_elasticsearch_backend(
        url=settings.elasticsearch_url,
        schema=schema,
        alias=settings.index_alias,
        timeout_seconds=settings.search_timeout_seconds,
        api_key=settings.elasticsearch_api_key.get_secret_value() if settings.elasticsearch_api_key else None,
        basic_auth=(settings.elasticsearch_username, password.get_secret_value())
        if settings.elasticsearch_username and password
        else None,
        replicas=settings.elasticsearch_replicas,
        refresh_interval=settings.elasticsearch_refresh_interval,
    )
