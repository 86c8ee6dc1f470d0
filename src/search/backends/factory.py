"""Build the configured SearchBackend from settings (the only place that reads backend settings)."""

from __future__ import annotations

from src.search.backends.base import SearchBackend
from src.search.schema import IndexSchema
from src.settings import ProcessSettings


def create_backend(settings: ProcessSettings, schema: IndexSchema) -> SearchBackend:
    """Elasticsearch or OpenSearch when its URL is set, otherwise the embedded Tantivy index."""
    # Each engine's module (and its client) is imported only when it is the configured one: a cold
    # start (a Lambda, say) loads one client, never Tantivy beside Elasticsearch.
    engine, alias = settings.engine, settings.index.alias
    if engine.kind == "elasticsearch":
        from src.search.backends.elasticsearch import create_elasticsearch_backend

        password = engine.elasticsearch_password
        return create_elasticsearch_backend(
            url=engine.elasticsearch_url,
            schema=schema,
            alias=alias,
            timeout_seconds=engine.timeout_seconds,
            api_key=engine.elasticsearch_api_key.get_secret_value() if engine.elasticsearch_api_key else None,
            basic_auth=(engine.elasticsearch_username, password.get_secret_value())
            if engine.elasticsearch_username and password
            else None,
            replicas=engine.elasticsearch_replicas,
            refresh_interval=engine.elasticsearch_refresh_interval,
        )
    if engine.kind == "opensearch":
        from src.search.backends.opensearch import create_opensearch_backend

        secret = engine.opensearch_password
        return create_opensearch_backend(
            url=engine.opensearch_url,
            schema=schema,
            alias=alias,
            timeout_seconds=engine.timeout_seconds,
            basic_auth=(engine.opensearch_username, secret.get_secret_value())
            if engine.opensearch_username and secret
            else None,
            aws_region=engine.opensearch_signing_region,
            aws_service=engine.opensearch_aws_service,
            replicas=engine.opensearch_replicas,
            refresh_interval=engine.opensearch_refresh_interval,
        )
    from src.search.backends.tantivy import TantivyBackend

    return TantivyBackend(
        engine.tantivy_data_dir,
        schema=schema,
        alias=alias,
        timeout_seconds=engine.timeout_seconds,
        reload_interval_seconds=engine.tantivy_reload_interval_seconds,
    )
