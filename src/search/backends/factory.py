"""Build the configured SearchBackend from settings (the only place that reads backend settings)."""

from __future__ import annotations

from src.search.backends.base import SearchBackend
from src.search.schema import IndexSchema
from src.settings import Settings


def create_backend(settings: Settings, schema: IndexSchema) -> SearchBackend:
    """Elasticsearch or OpenSearch when its URL is set, otherwise the embedded Tantivy index."""
    # Each engine's module (and its client) is imported only when it is the configured one: a cold
    # start (a Lambda, say) loads one client, never Tantivy beside Elasticsearch.
    if settings.backend_kind == "elasticsearch":
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
    if settings.backend_kind == "opensearch":
        from src.search.backends.opensearch import create_opensearch_backend

        secret = settings.opensearch_password
        return create_opensearch_backend(
            url=settings.opensearch_url,
            schema=schema,
            alias=settings.index_alias,
            timeout_seconds=settings.search_timeout_seconds,
            basic_auth=(settings.opensearch_username, secret.get_secret_value())
            if settings.opensearch_username and secret
            else None,
            aws_region=settings.opensearch_signing_region,
            aws_service=settings.opensearch_aws_service,
            replicas=settings.opensearch_replicas,
            refresh_interval=settings.opensearch_refresh_interval,
        )
    from src.search.backends.tantivy import TantivyBackend

    return TantivyBackend(
        settings.tantivy_data_dir,
        schema=schema,
        alias=settings.index_alias,
        timeout_seconds=settings.search_timeout_seconds,
        reload_interval_seconds=settings.tantivy_reload_interval_seconds,
    )
