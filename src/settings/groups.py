"""The concern groups every process reads: which index, which engine, the cache, Redis, the broker, the source
and the indexer's pipeline.

A group is a pydantic-settings model of its own: it reads `.env` and the environment for its variables
alone, under their documented names (a prefix, or a field's own alias where a variable predates its
group). `Group.variables()` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Group(BaseSettings):
    """One concern's settings, read from `.env` and the environment."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_by_name=True)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """{VARIABLE: field} for each field: its alias, else the group's prefix and its name (in capitals)."""
        prefix = cls.model_config.get("env_prefix", "")
        return {
            (field.validation_alias if isinstance(field.validation_alias, str) else prefix + name).upper(): name
            for name, field in cls.model_fields.items()
        }

    @classmethod
    def problems(cls, err: ValidationError) -> list[str]:
        """`err`'s errors as `VARIABLE: message` lines (a check across fields: its message alone)."""
        names = {field: variable for variable, field in cls.variables().items()}
        lines = []
        for error in err.errors():
            where = ".".join(str(part) for part in error["loc"])
            variable = names.get(where, where.upper())
            lines.append(variable + ": " * bool(variable) + error["msg"].removeprefix("Value error, "))
        return lines


def _empty_is_unset(value: object) -> object:
    """An empty variable means "not set" for an optional value (a path, a secret, a tri-state flag)."""
    return None if value == "" else value


class AppSettings(Group):
    """The process as a whole."""

    model_config = SettingsConfigDict(env_prefix="APP_")

    env: Literal["development", "production"] = "development"
    """APP_ENV: production refuses what is only safe in development (see ApiSettings.check_serving)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", validation_alias="LOG_LEVEL")

    @property
    def production(self) -> bool:
        """Whether APP_ENV=production."""
        return self.env == "production"


class IndexSettings(Group):
    """Which index: its alias and its schema (the same for the API and the indexer)."""

    model_config = SettingsConfigDict(env_prefix="INDEX_")

    alias: str = Field(default="packages", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    schema_path: Path = Path("data/debian-packages.schema.json")


class EngineSettings(Group):
    """The search engine the index lives on: Elasticsearch, OpenSearch, or the embedded Tantivy index."""

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
    timeout_seconds: float = Field(default=2.0, gt=0, validation_alias="SEARCH_TIMEOUT_SECONDS")
    tantivy_data_dir: Path = Path("var/tantivy")
    tantivy_reload_interval_seconds: float = Field(default=1.0, ge=0)
    breaker_failures: int = Field(default=5, ge=1, validation_alias="SEARCH_BREAKER_FAILURES")
    breaker_reset_seconds: float = Field(default=5.0, gt=0, validation_alias="SEARCH_BREAKER_RESET_SECONDS")

    _unset = field_validator("opensearch_sigv4", "opensearch_password", mode="before")(_empty_is_unset)

    @model_validator(mode="after")
    def _check_one_engine(self) -> EngineSettings:
        if self.elasticsearch_url and self.opensearch_url:
            raise ValueError(
                "ELASTICSEARCH_URL and OPENSEARCH_URL are both set: set at most one (neither: the embedded index)"
            )
        return self

    @property
    def kind(self) -> Literal["elasticsearch", "opensearch", "tantivy"]:
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


class CacheSettings(Group):
    """The cache-aside layer: TTLs, sizes, locks, and how many engine calls may run at once."""

    model_config = SettingsConfigDict(env_prefix="CACHE_")

    enabled: bool = True
    namespace: str = Field(default="search", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    soft_ttl_seconds: float = Field(default=30.0, gt=0)
    hard_ttl_seconds: float = Field(default=300.0, gt=0)
    ttl_jitter: float = Field(default=0.1, ge=0, lt=1)
    stale_if_error_seconds: float = Field(default=600.0, ge=0)
    negative_ttl_seconds: float = Field(default=5.0, gt=0)
    max_entry_bytes: int = Field(default=512 * 1024, ge=1)
    memory_max_entries: int = Field(default=10_000, ge=1)
    memory_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    lock_lease_seconds: float = Field(default=5.0, gt=0)
    lock_wait_seconds: float = Field(default=2.0, gt=0)
    gzip_min_bytes: int = Field(default=1024, ge=0)
    near_ttl_seconds: float = Field(default=2.0, ge=0)
    near_max_entries: int = Field(default=2_000, ge=1)
    near_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    generation_poll_ms: int = Field(default=250, ge=0)
    max_inflight: int = Field(default=32, ge=1, validation_alias="SEARCH_MAX_INFLIGHT")
    """Engine computations running at once in this process; more are refused with a 503 (admission control)."""

    @model_validator(mode="after")
    def _check_ttls(self) -> CacheSettings:
        if self.hard_ttl_seconds < self.soft_ttl_seconds:
            raise ValueError("CACHE_HARD_TTL_SECONDS must be >= CACHE_SOFT_TTL_SECONDS")
        return self


class RedisSettings(Group):
    """The shared cache (empty URL: each process keeps its own in memory)."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")

    url: str = ""
    timeout_seconds: float = Field(default=0.05, gt=0)
    connect_timeout_seconds: float = Field(default=0.2, gt=0)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_reset_seconds: float = Field(default=2.0, gt=0)
    cluster: bool = False
    max_connections: int = Field(default=256, ge=1)


class BrokerSettings(Group):
    """Events between the processes (src/events.py)."""

    model_config = SettingsConfigDict(env_prefix="BROKER_")

    url: str = ""
    """RabbitMQ (amqp://...) for reindex requests and invalidation events; empty: polling and the schedule."""
    subscribe: bool = True
    """The API subscribes to the invalidation fan-out at start. False (a Lambda function, which cannot
    consume while frozen): no subscription, and the broker connects on the first reindex request only."""


class SourceSettings(Group):
    """The source collection: MongoDB or Amazon DocumentDB."""

    model_config = SettingsConfigDict(env_prefix="MONGODB_")

    url: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    database: str = "catalog"
    collection: str = "packages"
    timeout_seconds: float = Field(default=5.0, gt=0)
    flavor: Literal["mongodb", "documentdb"] = "mongodb"
    """documentdb applies Amazon DocumentDB's rules: no retryable writes, reads from the primary."""
    tls: bool = False
    tls_ca_file: Path | None = None
    """CA bundle that signs the server's certificate (DocumentDB: Amazon's global-bundle.pem)."""
    tls_cert_key_file: Path | None = None
    """Client certificate and key in one PEM file, when the server asks for one."""
    username: str = ""
    password: SecretStr | None = None
    auth_mechanism: Literal["", "SCRAM-SHA-1", "SCRAM-SHA-256"] = ""
    """Empty: the server's default (DocumentDB supports SCRAM-SHA-1)."""

    _unset = field_validator("tls_ca_file", "tls_cert_key_file", "password", mode="before")(_empty_is_unset)


class PipelineSettings(Group):
    """The indexer's pipeline: batches, retries, checkpoints, reindex builds and the stream's health."""

    model_config = SettingsConfigDict(env_prefix="INDEXER_")

    consumer: str = Field(default="search-indexer", pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    checkpoint_collection: str = "search_indexer_checkpoints"
    dead_letter_collection: str = "search_indexer_dead_letters"
    batch_max_events: int = Field(default=2000, ge=1, le=10_000)
    batch_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    batch_max_seconds: float = Field(default=0.25, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    queue_batches: int = Field(default=2, ge=1, le=64)
    retry_attempts: int = Field(default=6, ge=1)
    retry_base_seconds: float = Field(default=0.1, gt=0)
    retry_cap_seconds: float = Field(default=10.0, gt=0)
    token_retention_seconds: float = Field(default=3 * 3600.0, gt=0)
    reindex_batch_size: int = Field(default=1000, ge=1)
    reindex_keep_previous: int = Field(default=1, ge=0)
    build_heartbeat_seconds: float = Field(default=60.0, gt=0)
    """How often a load or reindex refreshes the building heartbeat of the index it builds."""
    orphan_after_seconds: float = Field(default=600.0, ge=0)
    """A build of the alias whose heartbeat is older than this, and which the alias does not point at, was
    left by a dead process: the next load or reindex drops it, `status` lists it."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9108, ge=0, le=65535)
    status_max_lag_seconds: float = Field(default=60.0, gt=0)
    status_stall_seconds: float = Field(default=60.0, gt=0)
    max_document_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    """Documents whose JSON encoding is larger are dead-lettered unsent (stream, reindex, Lambda) or
    reported as errors (load): a safe share of a 512 MB-heap Elasticsearch's indexing pressure (docs/decisions.md)."""
    pressure_alert_seconds: float = Field(default=60.0, gt=0)
    """Writes the engine refuses for its load for longer than this are a stall (logged, alerted)."""
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    """From SIGTERM to the stream's exit: the batch in flight may finish, then closing the clients."""

    @model_validator(mode="after")
    def _check_orphan_bound(self) -> PipelineSettings:
        if self.orphan_after_seconds < 2 * self.build_heartbeat_seconds:
            raise ValueError(
                "INDEXER_ORPHAN_AFTER_SECONDS must be at least twice INDEXER_BUILD_HEARTBEAT_SECONDS "
                "(a live build's heartbeat must never look that old)"
            )
        return self
