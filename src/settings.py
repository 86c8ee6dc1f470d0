"""Process settings: one grouped pydantic-settings model, read from `.env` and the environment.

Nothing reads settings at import time: call `get_settings()` where a value is needed (it is cached),
and pass plain values into pure code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_CURSOR_SECRET = "dev-only-cursor-secret-change-me"  # noqa: S105 - a documented development default
MIN_PRODUCTION_SECRET_BYTES = 32


class UnsafeSettings(ValueError):
    """A setting that is fine for development is refused in production; the message names it."""


class Settings(BaseSettings):
    """Every setting of the read API and the indexer; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    app_env: Literal["development", "production"] = "development"

    # --- search backend -------------------------------------------------------------------------
    elasticsearch_url: str = ""
    elasticsearch_api_key: SecretStr | None = None
    elasticsearch_username: str = ""
    elasticsearch_password: SecretStr | None = None
    elasticsearch_replicas: int = Field(default=0, ge=0)
    elasticsearch_refresh_interval: str = "1s"
    opensearch_url: str = ""
    """OpenSearch (or Amazon OpenSearch Service) instead of Elasticsearch; at most one of the two URLs."""
    opensearch_username: str = ""
    opensearch_password: SecretStr | None = None
    opensearch_sigv4: bool | None = None
    """Sign requests with AWS SigV4 (credentials from the standard AWS chain). Unset: sign when
    AWS_REGION is set and OPENSEARCH_USERNAME is not."""
    aws_region: str = ""
    opensearch_aws_service: Literal["es", "aoss"] = "es"
    """The SigV4 service: `es` for an OpenSearch Service domain, `aoss` for OpenSearch Serverless."""
    opensearch_replicas: int = Field(default=0, ge=0)
    opensearch_refresh_interval: str = "1s"
    search_timeout_seconds: float = Field(default=2.0, gt=0)
    tantivy_data_dir: Path = Path("var/tantivy")
    tantivy_reload_interval_seconds: float = Field(default=1.0, ge=0)
    index_alias: str = Field(default="packages", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    index_schema_path: Path = Path("data/debian-packages.schema.json")

    # --- query behaviour --------------------------------------------------------------------------
    fuzzy_one_edit_min_chars: int = Field(default=4, ge=1)
    fuzzy_two_edits_min_chars: int = Field(default=8, ge=1)
    search_max_query_chars: int = Field(default=512, ge=1, le=4096)
    search_max_query_terms: int = Field(default=16, ge=1, le=64)
    search_max_filters: int = Field(default=20, ge=1)
    search_default_size: int = Field(default=10, ge=1, le=100)
    search_facet_size: int = Field(default=20, ge=1, le=1000)
    search_track_total_hits_up_to: int = Field(default=10_000, ge=1)
    highlight_fragment_chars: int = Field(default=160, ge=20)
    highlight_max_fragments: int = Field(default=3, ge=1)
    cursor_secret: SecretStr = SecretStr(DEV_CURSOR_SECRET)
    cursor_secrets: SecretStr = SecretStr("")
    """Comma-separated keys for rotation: the first signs new cursors, every one verifies. Overrides
    CURSOR_SECRET when set."""

    search_breaker_failures: int = Field(default=5, ge=1)
    search_breaker_reset_seconds: float = Field(default=5.0, gt=0)

    # --- cache (cache-aside + HTTP) ---------------------------------------------------------------
    redis_url: str = ""
    redis_timeout_seconds: float = Field(default=0.05, gt=0)
    redis_connect_timeout_seconds: float = Field(default=0.2, gt=0)
    redis_breaker_failures: int = Field(default=3, ge=1)
    redis_breaker_reset_seconds: float = Field(default=2.0, gt=0)
    cache_namespace: str = Field(default="search", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    cache_soft_ttl_seconds: float = Field(default=30.0, gt=0)
    cache_hard_ttl_seconds: float = Field(default=300.0, gt=0)
    cache_ttl_jitter: float = Field(default=0.1, ge=0, lt=1)
    cache_stale_if_error_seconds: float = Field(default=600.0, ge=0)
    cache_negative_ttl_seconds: float = Field(default=5.0, gt=0)
    cache_max_entry_bytes: int = Field(default=512 * 1024, ge=1)
    cache_memory_max_entries: int = Field(default=10_000, ge=1)
    cache_memory_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    cache_lock_lease_seconds: float = Field(default=5.0, gt=0)
    cache_lock_wait_seconds: float = Field(default=2.0, gt=0)
    cache_gzip_min_bytes: int = Field(default=1024, ge=0)
    cache_enabled: bool = True
    cache_near_ttl_seconds: float = Field(default=2.0, ge=0)
    cache_near_max_entries: int = Field(default=2_000, ge=1)
    cache_near_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    cache_generation_poll_ms: int = Field(default=250, ge=0)
    redis_cluster: bool = False
    redis_max_connections: int = Field(default=256, ge=1)
    search_max_inflight: int = Field(default=32, ge=1)
    http_max_target_bytes: int = Field(default=8192, ge=256)
    http_max_header_bytes: int = Field(default=16384, ge=1024)
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """A request body over this is a 413: at once when Content-Length says so, else as soon as the bytes
    received pass it (twice the largest purge: 1000 ids of 512 ASCII characters)."""
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection whose request head (request line and headers) is not complete this long after its first
    byte gets a 408 and is closed (`python -m src`; src/serving.py)."""
    http_max_age_seconds: int = Field(default=30, ge=0)
    http_s_maxage_seconds: int = Field(default=60, ge=0)
    http_stale_while_revalidate_seconds: int = Field(default=30, ge=0)
    http_stale_if_error_seconds: int = Field(default=300, ge=0)

    # --- indexer ----------------------------------------------------------------------------------
    mongodb_url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongodb_database: str = "catalog"
    mongodb_collection: str = "packages"
    mongodb_timeout_seconds: float = Field(default=5.0, gt=0)
    mongodb_flavor: Literal["mongodb", "documentdb"] = "mongodb"
    """documentdb applies Amazon DocumentDB's rules: no retryable writes, reads from the primary."""
    mongodb_tls: bool = False
    mongodb_tls_ca_file: Path | None = None
    """CA bundle that signs the server's certificate (DocumentDB: Amazon's global-bundle.pem)."""
    mongodb_tls_cert_key_file: Path | None = None
    """Client certificate and key in one PEM file, when the server asks for one."""
    mongodb_username: str = ""
    mongodb_password: SecretStr | None = None
    mongodb_auth_mechanism: Literal["", "SCRAM-SHA-1", "SCRAM-SHA-256"] = ""
    """Empty: the server's default (DocumentDB supports SCRAM-SHA-1)."""
    indexer_consumer: str = Field(default="search-indexer", pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    indexer_checkpoint_collection: str = "search_indexer_checkpoints"
    indexer_dead_letter_collection: str = "search_indexer_dead_letters"
    indexer_batch_max_events: int = Field(default=2000, ge=1, le=10_000)
    indexer_batch_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    indexer_batch_max_seconds: float = Field(default=0.25, gt=0)
    indexer_heartbeat_seconds: float = Field(default=5.0, gt=0)
    indexer_queue_batches: int = Field(default=2, ge=1, le=64)
    indexer_retry_attempts: int = Field(default=6, ge=1)
    indexer_retry_base_seconds: float = Field(default=0.1, gt=0)
    indexer_retry_cap_seconds: float = Field(default=10.0, gt=0)
    indexer_token_retention_seconds: float = Field(default=3 * 3600.0, gt=0)
    indexer_reindex_batch_size: int = Field(default=1000, ge=1)
    indexer_reindex_keep_previous: int = Field(default=1, ge=0)
    indexer_build_heartbeat_seconds: float = Field(default=60.0, gt=0)
    """How often a load or reindex refreshes the building heartbeat of the index it builds."""
    indexer_orphan_after_seconds: float = Field(default=600.0, ge=0)
    """A build of the alias whose heartbeat is older than this, and which the alias does not point at, was
    left by a dead process: the next load or reindex drops it, `status` lists it."""
    indexer_metrics_host: str = "127.0.0.1"
    indexer_metrics_port: int = Field(default=9108, ge=0, le=65535)
    indexer_status_max_lag_seconds: float = Field(default=60.0, gt=0)
    indexer_status_stall_seconds: float = Field(default=60.0, gt=0)
    indexer_max_document_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    """Documents whose JSON encoding is larger are dead-lettered unsent (stream, reindex, Lambda) or
    reported as errors (load): a safe share of a 512 MB-heap Elasticsearch's indexing pressure (README)."""
    indexer_pressure_alert_seconds: float = Field(default=60.0, gt=0)
    """Writes the engine refuses for its load for longer than this are a stall (logged, alerted)."""
    indexer_shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    """From SIGTERM to the stream's exit: the batch in flight may finish, then closing the clients."""

    # --- server -----------------------------------------------------------------------------------
    app_host: str = "127.0.0.1"
    app_port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True
    """One JSON access-log line per request (ACCESS_LOG=false turns it off)."""

    # --- edge security ----------------------------------------------------------------------------
    trusted_proxies: str = "127.0.0.1/32,::1/128"
    """Comma-separated CIDRs of the proxies whose X-Forwarded-For is believed (the gateway)."""
    rate_limit_enabled: bool | None = None
    """The per-client limits below. Unset: on with APP_ENV=production, off otherwise, so one local client of
    `make run` (a script's loop of distinct queries) is never throttled; set it to decide either way."""
    rate_limit: str = "100/second"
    """Per client, every request but the probes and /metrics, in this process's memory (`limits` notation)."""
    rate_limit_engine: str = "20/second"
    """Per client, requests that reach the engine (cache misses), in Redis when REDIS_URL is set."""
    cors_allow_origins: str = ""
    """Comma-separated origins allowed to call the API from a browser (`*` for any); empty: none."""
    hsts_max_age_seconds: int = Field(default=0, ge=0)
    """Strict-Transport-Security max-age; 0 sends no header (set it when TLS ends in front of the API)."""
    docs_enabled: bool | None = None
    """The OpenAPI page and /openapi.json; unset: on, except with APP_ENV=production."""
    preview_enabled: bool | None = None
    """The search preview page at / and /preview; unset: on, except with APP_ENV=production."""
    metrics_scope: str = ""
    """When set, GET /metrics needs a bearer token granting this scope."""
    metrics_public: bool = False
    """/metrics without METRICS_SCOPE is meant (only the scraper's network reaches the API's port); with
    APP_ENV=production an open /metrics is refused at start without it."""
    auth_jwks_url: str = ""
    auth_static_key: SecretStr | None = None
    """A PEM public key (or an HMAC secret for HS* algorithms) for development; refused in production."""
    auth_issuer: str = ""
    auth_audience: str = ""
    auth_allow_any_issuer: bool = False
    """With APP_ENV=production and AUTH_JWKS_URL, an empty AUTH_ISSUER is refused at start unless this says
    any issuer the JWKS keys verify is meant."""
    auth_allow_any_audience: bool = False
    """The same for an empty AUTH_AUDIENCE: a token the issuer minted for any other API of yours would pass."""
    auth_algorithms: str = "RS256,ES256"
    auth_leeway_seconds: float = Field(default=30.0, ge=0)
    auth_jwks_cache_seconds: float = Field(default=300.0, gt=0)
    auth_jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)

    # --- events -----------------------------------------------------------------------------------
    broker_url: str = ""
    """RabbitMQ (amqp://...) for reindex requests and invalidation events; empty: polling and the schedule."""
    broker_subscribe: bool = True
    """The API subscribes to the invalidation fan-out at start. False (a Lambda function, which cannot
    consume while frozen): no subscription, and the broker connects on the first reindex request only."""

    # --- CDN purge --------------------------------------------------------------------------------
    cdn_purger: Literal["none", "xkey", "fastly", "cloudfront"] = "none"
    cdn_purge_url: str = ""
    """xkey: where PURGE requests go (the Varnish in front of the API)."""
    fastly_service_id: str = ""
    fastly_api_token: SecretStr | None = None
    fastly_api_url: str = "https://api.fastly.com"
    fastly_soft_purge: bool = False
    cloudfront_distribution_id: str = ""
    cdn_purge_max_pending: int = Field(default=100_000, ge=1)
    cdn_purge_repeat_seconds: float = Field(default=3.0, ge=0)
    """Each key is purged again this much later (after the API's in-process tier and index reload caught
    up: a CDN refetching in between cached the old value again); 0: once only."""

    # --- loading ----------------------------------------------------------------------------------
    demo_data_path: Path = Path("data/debian-packages.jsonl.gz")
    load_batch_size: int = Field(default=500, ge=1, le=10_000)

    @field_validator(
        "mongodb_tls_ca_file",
        "mongodb_tls_cert_key_file",
        "mongodb_password",
        "opensearch_sigv4",
        "opensearch_password",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_fuzzy_thresholds(self) -> Settings:
        if self.fuzzy_two_edits_min_chars < self.fuzzy_one_edit_min_chars:
            raise ValueError("fuzzy_two_edits_min_chars must be >= fuzzy_one_edit_min_chars")
        return self

    @model_validator(mode="after")
    def _check_cdn_purger(self) -> Settings:
        needed = {
            "xkey": ("cdn_purge_url",),
            "fastly": ("fastly_service_id", "fastly_api_token"),
            "cloudfront": ("cloudfront_distribution_id",),
        }.get(self.cdn_purger, ())
        missing = [name.upper() for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"CDN_PURGER={self.cdn_purger} needs {' and '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _check_one_engine(self) -> Settings:
        if self.elasticsearch_url and self.opensearch_url:
            raise ValueError(
                "ELASTICSEARCH_URL and OPENSEARCH_URL are both set: set at most one (neither: the embedded index)"
            )
        return self

    @model_validator(mode="after")
    def _check_metrics_access(self) -> Settings:
        if self.metrics_public and self.metrics_scope:
            raise ValueError("METRICS_PUBLIC=true and METRICS_SCOPE are both set: /metrics is either open or scoped")
        return self

    @model_validator(mode="after")
    def _check_orphan_bound(self) -> Settings:
        if self.indexer_orphan_after_seconds < 2 * self.indexer_build_heartbeat_seconds:
            raise ValueError(
                "INDEXER_ORPHAN_AFTER_SECONDS must be at least twice INDEXER_BUILD_HEARTBEAT_SECONDS "
                "(a live build's heartbeat must never look that old)"
            )
        return self

    @model_validator(mode="after")
    def _default_rate_limits(self) -> Settings:
        if self.rate_limit_enabled is None:
            self.rate_limit_enabled = self.app_env == "production"
        return self

    @model_validator(mode="after")
    def _check_cache_ttls(self) -> Settings:
        if self.cache_hard_ttl_seconds < self.cache_soft_ttl_seconds:
            raise ValueError("cache_hard_ttl_seconds must be >= cache_soft_ttl_seconds")
        return self

    def cursor_keys(self) -> tuple[bytes, ...]:
        """The cursor keys, signing key first (CURSOR_SECRETS when set, else CURSOR_SECRET)."""
        listed = [part.strip() for part in self.cursor_secrets.get_secret_value().split(",") if part.strip()]
        return tuple(key.encode() for key in (listed or [self.cursor_secret.get_secret_value()]))

    @property
    def docs_on(self) -> bool:
        """Whether /docs and /openapi.json are served."""
        return self.docs_enabled if self.docs_enabled is not None else self.app_env != "production"

    @property
    def preview_on(self) -> bool:
        """Whether the search preview page (/ and /preview) is served."""
        return self.preview_enabled if self.preview_enabled is not None else self.app_env != "production"

    def check_serving(self) -> None:
        """Refuse, in production, what is only safe in development: UnsafeSettings names every such setting
        at once (one restart fixes them all)."""
        if self.app_env != "production":
            return
        unsafe = []
        if self.auth_static_key is not None and self.auth_static_key.get_secret_value():
            unsafe.append("AUTH_STATIC_KEY is for development; use AUTH_JWKS_URL in production")
        name = "CURSOR_SECRETS" if self.cursor_secrets.get_secret_value().strip() else "CURSOR_SECRET"
        for key in self.cursor_keys():
            if key == DEV_CURSOR_SECRET.encode():
                unsafe.append(f"{name} is the public development default; set a secret of your own")
                break
            if len(key) < MIN_PRODUCTION_SECRET_BYTES:
                unsafe.append(f"{name}: every key must be at least {MIN_PRODUCTION_SECRET_BYTES} bytes in production")
                break
        # Without a JWKS URL no token verifies (the admin API refuses every request): nothing to narrow.
        if self.auth_jwks_url and not self.auth_issuer and not self.auth_allow_any_issuer:
            unsafe.append(
                "AUTH_ISSUER is empty: a token of any issuer the JWKS keys verify would pass; set it "
                "(or AUTH_ALLOW_ANY_ISSUER=true)"
            )
        if self.auth_jwks_url and not self.auth_audience and not self.auth_allow_any_audience:
            unsafe.append(
                "AUTH_AUDIENCE is empty: a token the issuer minted for any other API would pass; set it "
                "(or AUTH_ALLOW_ANY_AUDIENCE=true)"
            )
        if not self.metrics_scope and not self.metrics_public:
            unsafe.append(
                "METRICS_SCOPE is empty: /metrics would be open to anyone who reaches the API; set it, or "
                "METRICS_PUBLIC=true when only the scraper can reach the API's port"
            )
        if unsafe:
            raise UnsafeSettings("; ".join(unsafe))

    @property
    def backend_kind(self) -> Literal["elasticsearch", "opensearch", "tantivy"]:
        """Elasticsearch or OpenSearch when its URL is configured; the embedded Tantivy index otherwise."""
        if self.elasticsearch_url:
            return "elasticsearch"
        return "opensearch" if self.opensearch_url else "tantivy"

    @property
    def opensearch_signing_region(self) -> str | None:
        """The AWS region to sign OpenSearch requests for, or None when they are not signed."""
        sign = self.opensearch_sigv4 if self.opensearch_sigv4 is not None else not self.opensearch_username
        if not sign:
            return None
        if not self.aws_region:
            if self.opensearch_sigv4:
                raise ValueError("OPENSEARCH_SIGV4=true needs AWS_REGION")
            return None
        return self.aws_region


def settings_or_exit() -> Settings:
    """`get_settings()` for a process entry point: invalid settings end the process with one line per
    problem, naming the variable, instead of a traceback."""
    try:
        return get_settings()
    except ValidationError as err:
        problems = "; ".join(
            ".".join(str(part) for part in error["loc"]).upper()
            + ": " * bool(error["loc"])
            + error["msg"].removeprefix("Value error, ")
            for error in err.errors()
        )
        raise SystemExit(f"invalid settings: {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process (tests call `get_settings.cache_clear()`)."""
    return Settings()
