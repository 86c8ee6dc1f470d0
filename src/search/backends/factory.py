"""Build the configured SearchBackend from settings (the only place that reads backend settings)."""

from __future__ import annotations

from src.search.backends.base import SearchBackend
from src.search.backends.elasticsearch import create_elasticsearch_backend
from src.search.backends.tantivy import TantivyBackend
from src.search.schema import IndexSchema
from src.settings import Settings


def create_backend(settings: Settings, schema: IndexSchema) -> SearchBackend:
    """Elasticsearch when ELASTICSEARCH_URL is set, otherwise the embedded Tantivy index."""
    if settings.backend_kind == "elasticsearch":
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
    return TantivyBackend(
        settings.tantivy_data_dir,
        schema=schema,
        alias=settings.index_alias,
        timeout_seconds=settings.search_timeout_seconds,
        reload_interval_seconds=settings.tantivy_reload_interval_seconds,
    )
