"""Unit tests of src.settings: the settings grouped by concern read every variable the flat `Settings` read,
under the same name, into its group; each process reads only its groups; build, replace and the entry
point's one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from src.settings import (
    ApiSettings,
    CacheSettings,
    CdnSettings,
    IndexerSettings,
    ProcessSettings,
    QuerySettings,
    settings_or_exit,
)

VARIABLES: tuple[tuple[str, str, str, object], ...] = (
    ("APP_ENV", "production", "app.env", "production"),
    ("ELASTICSEARCH_URL", "http://host.test", "engine.elasticsearch_url", "http://host.test"),
    ("ELASTICSEARCH_API_KEY", "s3cret", "engine.elasticsearch_api_key", "s3cret"),
    ("ELASTICSEARCH_USERNAME", "value-2", "engine.elasticsearch_username", "value-2"),
    ("ELASTICSEARCH_PASSWORD", "s3cret", "engine.elasticsearch_password", "s3cret"),
    ("ELASTICSEARCH_REPLICAS", "1", "engine.elasticsearch_replicas", 1),
    ("ELASTICSEARCH_REFRESH_INTERVAL", "5s", "engine.elasticsearch_refresh_interval", "5s"),
    ("OPENSEARCH_URL", "http://host.test", "engine.opensearch_url", "http://host.test"),
    ("OPENSEARCH_USERNAME", "value-2", "engine.opensearch_username", "value-2"),
    ("OPENSEARCH_PASSWORD", "s3cret", "engine.opensearch_password", "s3cret"),
    ("OPENSEARCH_SIGV4", "true", "engine.opensearch_sigv4", True),
    ("AWS_REGION", "eu-west-1", "engine.aws_region", "eu-west-1"),
    ("OPENSEARCH_AWS_SERVICE", "aoss", "engine.opensearch_aws_service", "aoss"),
    ("OPENSEARCH_REPLICAS", "1", "engine.opensearch_replicas", 1),
    ("OPENSEARCH_REFRESH_INTERVAL", "5s", "engine.opensearch_refresh_interval", "5s"),
    ("SEARCH_TIMEOUT_SECONDS", "2.5", "engine.timeout_seconds", 2.5),
    ("TANTIVY_DATA_DIR", "/srv/path-2", "engine.tantivy_data_dir", Path("/srv/path-2")),
    ("TANTIVY_RELOAD_INTERVAL_SECONDS", "1.5", "engine.tantivy_reload_interval_seconds", 1.5),
    ("INDEX_ALIAS", "catalog-2", "index.alias", "catalog-2"),
    ("INDEX_SCHEMA_PATH", "/srv/path-2", "index.schema_path", Path("/srv/path-2")),
    ("FUZZY_ONE_EDIT_MIN_CHARS", "5", "query.fuzzy_one_edit_min_chars", 5),
    ("FUZZY_TWO_EDITS_MIN_CHARS", "9", "query.fuzzy_two_edits_min_chars", 9),
    ("SEARCH_MAX_QUERY_CHARS", "513", "query.max_query_chars", 513),
    ("SEARCH_MAX_QUERY_TERMS", "17", "query.max_query_terms", 17),
    ("SEARCH_MAX_FILTERS", "21", "query.max_filters", 21),
    ("SEARCH_DEFAULT_SIZE", "11", "query.default_size", 11),
    ("SEARCH_FACET_SIZE", "21", "query.facet_size", 21),
    ("SEARCH_TRACK_TOTAL_HITS_UP_TO", "10001", "query.track_total_hits_up_to", 10001),
    ("HIGHLIGHT_FRAGMENT_CHARS", "161", "query.highlight_fragment_chars", 161),
    ("HIGHLIGHT_MAX_FRAGMENTS", "4", "query.highlight_max_fragments", 4),
    ("CURSOR_SECRET", "s3cret", "query.cursor_secret", "s3cret"),
    ("CURSOR_SECRETS", "s3cret", "query.cursor_secrets", "s3cret"),
    ("SEARCH_BREAKER_FAILURES", "6", "engine.breaker_failures", 6),
    ("SEARCH_BREAKER_RESET_SECONDS", "5.5", "engine.breaker_reset_seconds", 5.5),
    ("REDIS_URL", "http://host.test", "redis.url", "http://host.test"),
    ("REDIS_TIMEOUT_SECONDS", "0.55", "redis.timeout_seconds", 0.55),
    ("REDIS_CONNECT_TIMEOUT_SECONDS", "0.7", "redis.connect_timeout_seconds", 0.7),
    ("REDIS_BREAKER_FAILURES", "4", "redis.breaker_failures", 4),
    ("REDIS_BREAKER_RESET_SECONDS", "2.5", "redis.breaker_reset_seconds", 2.5),
    ("CACHE_NAMESPACE", "ns-2", "cache.namespace", "ns-2"),
    ("CACHE_SOFT_TTL_SECONDS", "30.5", "cache.soft_ttl_seconds", 30.5),
    ("CACHE_HARD_TTL_SECONDS", "300.5", "cache.hard_ttl_seconds", 300.5),
    ("CACHE_TTL_JITTER", "0.6", "cache.ttl_jitter", 0.6),
    ("CACHE_STALE_IF_ERROR_SECONDS", "600.5", "cache.stale_if_error_seconds", 600.5),
    ("CACHE_NEGATIVE_TTL_SECONDS", "5.5", "cache.negative_ttl_seconds", 5.5),
    ("CACHE_MAX_ENTRY_BYTES", "524289", "cache.max_entry_bytes", 524289),
    ("CACHE_MEMORY_MAX_ENTRIES", "10001", "cache.memory_max_entries", 10001),
    ("CACHE_MEMORY_MAX_BYTES", "67108865", "cache.memory_max_bytes", 67108865),
    ("CACHE_LOCK_LEASE_SECONDS", "5.5", "cache.lock_lease_seconds", 5.5),
    ("CACHE_LOCK_WAIT_SECONDS", "2.5", "cache.lock_wait_seconds", 2.5),
    ("CACHE_GZIP_MIN_BYTES", "1025", "cache.gzip_min_bytes", 1025),
    ("CACHE_ENABLED", "false", "cache.enabled", False),
    ("CACHE_NEAR_TTL_SECONDS", "2.5", "cache.near_ttl_seconds", 2.5),
    ("CACHE_NEAR_MAX_ENTRIES", "2001", "cache.near_max_entries", 2001),
    ("CACHE_NEAR_MAX_BYTES", "33554433", "cache.near_max_bytes", 33554433),
    ("CACHE_GENERATION_POLL_MS", "251", "cache.generation_poll_ms", 251),
    ("REDIS_CLUSTER", "true", "redis.cluster", True),
    ("REDIS_MAX_CONNECTIONS", "257", "redis.max_connections", 257),
    ("SEARCH_MAX_INFLIGHT", "33", "cache.max_inflight", 33),
    ("HTTP_MAX_TARGET_BYTES", "8193", "http.max_target_bytes", 8193),
    ("HTTP_MAX_HEADER_BYTES", "16385", "http.max_header_bytes", 16385),
    ("HTTP_MAX_BODY_BYTES", "1048577", "http.max_body_bytes", 1048577),
    ("HTTP_HEADER_TIMEOUT_SECONDS", "10.5", "http.header_timeout_seconds", 10.5),
    ("HTTP_MAX_AGE_SECONDS", "31", "http_cache.max_age_seconds", 31),
    ("HTTP_S_MAXAGE_SECONDS", "61", "http_cache.s_maxage_seconds", 61),
    ("HTTP_STALE_WHILE_REVALIDATE_SECONDS", "31", "http_cache.stale_while_revalidate_seconds", 31),
    ("HTTP_STALE_IF_ERROR_SECONDS", "301", "http_cache.stale_if_error_seconds", 301),
    ("MONGODB_URL", "http://host.test", "source.url", "http://host.test"),
    ("MONGODB_DATABASE", "value-2", "source.database", "value-2"),
    ("MONGODB_COLLECTION", "value-2", "source.collection", "value-2"),
    ("MONGODB_TIMEOUT_SECONDS", "5.5", "source.timeout_seconds", 5.5),
    ("MONGODB_FLAVOR", "documentdb", "source.flavor", "documentdb"),
    ("MONGODB_TLS", "true", "source.tls", True),
    ("MONGODB_TLS_CA_FILE", "/srv/path-2", "source.tls_ca_file", Path("/srv/path-2")),
    ("MONGODB_TLS_CERT_KEY_FILE", "/srv/path-2", "source.tls_cert_key_file", Path("/srv/path-2")),
    ("MONGODB_USERNAME", "value-2", "source.username", "value-2"),
    ("MONGODB_PASSWORD", "s3cret", "source.password", "s3cret"),
    ("MONGODB_AUTH_MECHANISM", "SCRAM-SHA-256", "source.auth_mechanism", "SCRAM-SHA-256"),
    ("INDEXER_CONSUMER", "consumer-2", "indexer.consumer", "consumer-2"),
    ("INDEXER_CHECKPOINT_COLLECTION", "value-2", "indexer.checkpoint_collection", "value-2"),
    ("INDEXER_DEAD_LETTER_COLLECTION", "value-2", "indexer.dead_letter_collection", "value-2"),
    ("INDEXER_BATCH_MAX_EVENTS", "2001", "indexer.batch_max_events", 2001),
    ("INDEXER_BATCH_MAX_BYTES", "4194305", "indexer.batch_max_bytes", 4194305),
    ("INDEXER_BATCH_MAX_SECONDS", "0.75", "indexer.batch_max_seconds", 0.75),
    ("INDEXER_HEARTBEAT_SECONDS", "5.5", "indexer.heartbeat_seconds", 5.5),
    ("INDEXER_QUEUE_BATCHES", "3", "indexer.queue_batches", 3),
    ("INDEXER_RETRY_ATTEMPTS", "7", "indexer.retry_attempts", 7),
    ("INDEXER_RETRY_BASE_SECONDS", "0.6", "indexer.retry_base_seconds", 0.6),
    ("INDEXER_RETRY_CAP_SECONDS", "10.5", "indexer.retry_cap_seconds", 10.5),
    ("INDEXER_TOKEN_RETENTION_SECONDS", "10800.5", "indexer.token_retention_seconds", 10800.5),
    ("INDEXER_REINDEX_BATCH_SIZE", "1001", "indexer.reindex_batch_size", 1001),
    ("INDEXER_REINDEX_KEEP_PREVIOUS", "2", "indexer.reindex_keep_previous", 2),
    ("INDEXER_BUILD_HEARTBEAT_SECONDS", "60.5", "indexer.build_heartbeat_seconds", 60.5),
    ("INDEXER_ORPHAN_AFTER_SECONDS", "600.5", "indexer.orphan_after_seconds", 600.5),
    ("INDEXER_METRICS_HOST", "value-2", "indexer.metrics_host", "value-2"),
    ("INDEXER_METRICS_PORT", "9109", "indexer.metrics_port", 9109),
    ("INDEXER_STATUS_MAX_LAG_SECONDS", "60.5", "indexer.status_max_lag_seconds", 60.5),
    ("INDEXER_STATUS_STALL_SECONDS", "60.5", "indexer.status_stall_seconds", 60.5),
    ("INDEXER_MAX_DOCUMENT_BYTES", "2097153", "indexer.max_document_bytes", 2097153),
    ("INDEXER_PRESSURE_ALERT_SECONDS", "60.5", "indexer.pressure_alert_seconds", 60.5),
    ("INDEXER_SHUTDOWN_GRACE_SECONDS", "10.5", "indexer.shutdown_grace_seconds", 10.5),
    ("APP_HOST", "192.0.2.10", "http.host", "192.0.2.10"),
    ("APP_PORT", "8001", "http.port", 8001),
    ("LOG_LEVEL", "DEBUG", "app.log_level", "DEBUG"),
    ("ACCESS_LOG", "false", "http.access_log", False),
    ("TRUSTED_PROXIES", "10.0.0.0/8", "edge.trusted_proxies", "10.0.0.0/8"),
    ("RATE_LIMIT_ENABLED", "true", "edge.rate_limit_enabled", True),  # tests run with it false (conftest)
    ("RATE_LIMIT", "5/second", "edge.rate_limit", "5/second"),
    ("RATE_LIMIT_ENGINE", "2/second", "edge.rate_limit_engine", "2/second"),
    ("CORS_ALLOW_ORIGINS", "value-2", "edge.cors_allow_origins", "value-2"),
    ("HSTS_MAX_AGE_SECONDS", "1", "edge.hsts_max_age_seconds", 1),
    ("DOCS_ENABLED", "true", "edge.docs_enabled", True),
    ("PREVIEW_ENABLED", "true", "edge.preview_enabled", True),
    ("METRICS_SCOPE", "value-2", "edge.metrics_scope", "value-2"),
    ("METRICS_PUBLIC", "true", "edge.metrics_public", True),
    ("AUTH_JWKS_URL", "http://host.test", "auth.jwks_url", "http://host.test"),
    ("AUTH_STATIC_KEY", "s3cret", "auth.static_key", "s3cret"),
    ("AUTH_ISSUER", "value-2", "auth.issuer", "value-2"),
    ("AUTH_AUDIENCE", "value-2", "auth.audience", "value-2"),
    ("AUTH_ALLOW_ANY_ISSUER", "true", "auth.allow_any_issuer", True),
    ("AUTH_ALLOW_ANY_AUDIENCE", "true", "auth.allow_any_audience", True),
    ("AUTH_ALGORITHMS", "ES256", "auth.algorithms", "ES256"),
    ("AUTH_LEEWAY_SECONDS", "30.5", "auth.leeway_seconds", 30.5),
    ("AUTH_JWKS_CACHE_SECONDS", "300.5", "auth.jwks_cache_seconds", 300.5),
    ("AUTH_JWKS_MIN_REFRESH_SECONDS", "30.5", "auth.jwks_min_refresh_seconds", 30.5),
    ("BROKER_URL", "http://host.test", "broker.url", "http://host.test"),
    ("BROKER_SUBSCRIBE", "false", "broker.subscribe", False),
    ("CDN_PURGER", "xkey", "cdn.purger", "xkey"),
    ("CDN_PURGE_URL", "http://host.test", "cdn.purge_url", "http://host.test"),
    ("FASTLY_SERVICE_ID", "value-2", "cdn.fastly_service_id", "value-2"),
    ("FASTLY_API_TOKEN", "s3cret", "cdn.fastly_api_token", "s3cret"),
    ("FASTLY_API_URL", "http://host.test", "cdn.fastly_api_url", "http://host.test"),
    ("FASTLY_SOFT_PURGE", "true", "cdn.fastly_soft_purge", True),
    ("CLOUDFRONT_DISTRIBUTION_ID", "value-2", "cdn.cloudfront_distribution_id", "value-2"),
    ("CDN_PURGE_MAX_PENDING", "100001", "cdn.purge_max_pending", 100001),
    ("CDN_PURGE_REPEAT_SECONDS", "3.5", "cdn.purge_repeat_seconds", 3.5),
    ("DEMO_DATA_PATH", "/srv/path-2", "load.demo_data_path", Path("/srv/path-2")),
    ("LOAD_BATCH_SIZE", "501", "load.batch_size", 501),
)
"""Every variable the flat `Settings` read before the settings were grouped (main at the regrouping: the
field names of `git show main:src/settings.py`, in capitals, in their order), with a value unlike its
default, the group and field it sets now, and the value read."""

COMPANIONS = {"CDN_PURGER": {"CDN_PURGE_URL": "http://varnish.test"}}
"""What a variable's sample value needs beside it to be valid (CDN_PURGER=xkey needs its URL)."""

API_ONLY = {"query", "http", "http_cache", "edge", "auth"}
INDEXER_ONLY = {"cdn", "load"}


def _read(settings: ProcessSettings, where: str) -> object:
    group, field = where.split(".")
    value = getattr(getattr(settings, group), field)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_variables_when_grouped_are_exactly_the_ones_the_flat_settings_read() -> None:
    names = [variable for variable, *_ in VARIABLES]
    assert len(names) == len(set(names)) == 138
    assert set(ApiSettings.variables()) | set(IndexerSettings.variables()) == set(names)


@pytest.mark.parametrize(("variable", "raw", "where", "expected"), VARIABLES, ids=[row[0] for row in VARIABLES])
def test_value_when_set_in_the_environment_is_read_into_its_grouped_field(
    variable: str, raw: str, where: str, expected: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    readers = [model for model in (ApiSettings, IndexerSettings) if where.split(".")[0] in model.groups()]
    assert readers
    for model in readers:
        assert _read(model(), where) != expected  # the default differs: what follows is the variable's doing
    for name, value in {variable: raw, **COMPANIONS.get(variable, {})}.items():
        monkeypatch.setenv(name, value)
    for model in readers:
        settings = model()
        assert _read(settings, where) == expected
        assert settings.variables()[variable] == tuple(where.split("."))
        assert settings.value(variable.lower()) is getattr(getattr(settings, where.split(".")[0]), where.split(".")[1])


def test_groups_when_composed_per_process_leave_out_what_the_other_process_reads() -> None:
    api, indexer = set(ApiSettings.groups()), set(IndexerSettings.groups())
    assert api - indexer == API_ONLY
    assert indexer - api == INDEXER_ONLY
    assert api & indexer == set(ProcessSettings.groups())


def test_value_when_set_in_lower_case_or_in_the_dotenv_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("REDIS_URL=redis://from-dotenv:6379/0\nCDN_PURGE_MAX_PENDING=7\n")
    monkeypatch.setenv("search_max_inflight", "3")
    settings = IndexerSettings()
    assert (settings.redis.url, settings.cdn.purge_max_pending, settings.cache.max_inflight) == (
        "redis://from-dotenv:6379/0",
        7,
        3,
    )


def test_build_when_given_variable_names_routes_each_to_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_SOFT_TTL_SECONDS", "12")
    settings = ApiSettings.build(redis_url="redis://r:6379/0", search_max_inflight=4, cursor_secret="k" * 32)
    assert (settings.redis.url, settings.cache.max_inflight) == ("redis://r:6379/0", 4)
    assert settings.query.cursor_secret.get_secret_value() == "k" * 32
    assert settings.cache.soft_ttl_seconds == 12  # the rest of a group still comes from the environment


def test_build_when_a_variable_is_not_the_process_s_refuses_it() -> None:
    with pytest.raises(TypeError, match="IndexerSettings reads no variable named cursor_secret"):
        IndexerSettings.build(cursor_secret="k")


def test_replace_when_given_variables_validates_them_and_keeps_the_rest() -> None:
    settings = ApiSettings.build(cache_soft_ttl_seconds=5, redis_url="redis://r:6379/0")
    changed = settings.replace(cache_enabled=False, app_env="production")
    assert (changed.cache.enabled, changed.cache.soft_ttl_seconds, changed.app.production) == (False, 5, True)
    assert changed.redis is settings.redis  # an untouched group is shared
    assert (settings.cache.enabled, settings.app.production) == (True, False)
    with pytest.raises(ValidationError):
        settings.replace(cache_hard_ttl_seconds=1)  # under the soft TTL


@pytest.mark.parametrize(
    ("model", "variables", "named"),
    [
        (QuerySettings, {"FUZZY_ONE_EDIT_MIN_CHARS": "9"}, "FUZZY_TWO_EDITS_MIN_CHARS must be >="),
        (CacheSettings, {"CACHE_HARD_TTL_SECONDS": "10"}, "CACHE_HARD_TTL_SECONDS must be >="),
        (CdnSettings, {"CDN_PURGER": "fastly"}, "CDN_PURGER=fastly needs FASTLY_SERVICE_ID and FASTLY_API_TOKEN"),
        (CdnSettings, {"CDN_PURGER": "cloudfront"}, "CDN_PURGER=cloudfront needs CLOUDFRONT_DISTRIBUTION_ID"),
    ],
)
def test_settings_when_fields_of_a_group_disagree_refuse_naming_the_variables(
    model: type[QuerySettings | CacheSettings | CdnSettings],
    variables: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=named):
        model()


def test_settings_or_exit_when_several_groups_are_invalid_names_every_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEARCH_MAX_INFLIGHT", "0")
    monkeypatch.setenv("REDIS_TIMEOUT_SECONDS", "-1")
    with pytest.raises(SystemExit) as exited:
        settings_or_exit(ApiSettings)
    message = str(exited.value.code)
    assert "SEARCH_MAX_INFLIGHT: Input should be greater than or equal to 1" in message
    assert "REDIS_TIMEOUT_SECONDS: Input should be greater than 0" in message


@pytest.mark.parametrize(
    ("variable", "value", "refused_by"),
    [("SEARCH_DEFAULT_SIZE", "0", ApiSettings), ("CDN_PURGER", "xkey", IndexerSettings)],
)
def test_settings_or_exit_when_a_variable_of_the_other_process_is_invalid_starts_anyway(
    variable: str, value: str, refused_by: type[ProcessSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    other = IndexerSettings if refused_by is ApiSettings else ApiSettings
    assert isinstance(settings_or_exit(other), other)  # it reads no such variable
    with pytest.raises(SystemExit, match=variable):
        settings_or_exit(refused_by)
