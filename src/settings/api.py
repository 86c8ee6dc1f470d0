"""The read API's settings: the shared groups, and the query, HTTP, edge and auth groups only it reads."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from src.settings.groups import Group
from src.settings.process import ProcessSettings

DEV_CURSOR_SECRET = "dev-only-cursor-secret-change-me"  # noqa: S105 - a documented development default
MIN_PRODUCTION_SECRET_BYTES = 32


class UnsafeSettings(ValueError):
    """A setting that is fine for development is refused in production; the message names it."""


class QuerySettings(Group):
    """What a search may ask for, typo tolerance, highlights and the paging cursors' keys."""

    model_config = SettingsConfigDict(env_prefix="SEARCH_")

    fuzzy_one_edit_min_chars: int = Field(default=4, ge=1, validation_alias="FUZZY_ONE_EDIT_MIN_CHARS")
    fuzzy_two_edits_min_chars: int = Field(default=8, ge=1, validation_alias="FUZZY_TWO_EDITS_MIN_CHARS")
    max_query_chars: int = Field(default=512, ge=1, le=4096)
    max_query_terms: int = Field(default=16, ge=1, le=64)
    max_filters: int = Field(default=20, ge=1)
    default_size: int = Field(default=10, ge=1, le=100)
    facet_size: int = Field(default=20, ge=1, le=1000)
    track_total_hits_up_to: int = Field(default=10_000, ge=1)
    highlight_fragment_chars: int = Field(default=160, ge=20, validation_alias="HIGHLIGHT_FRAGMENT_CHARS")
    highlight_max_fragments: int = Field(default=3, ge=1, validation_alias="HIGHLIGHT_MAX_FRAGMENTS")
    cursor_secret: SecretStr = Field(default=SecretStr(DEV_CURSOR_SECRET), validation_alias="CURSOR_SECRET")
    cursor_secrets: SecretStr = Field(default=SecretStr(""), validation_alias="CURSOR_SECRETS")
    """Comma-separated keys for rotation: the first signs new cursors, every one verifies. Overrides
    CURSOR_SECRET when set."""

    @model_validator(mode="after")
    def _check_fuzzy_thresholds(self) -> QuerySettings:
        if self.fuzzy_two_edits_min_chars < self.fuzzy_one_edit_min_chars:
            raise ValueError("FUZZY_TWO_EDITS_MIN_CHARS must be >= FUZZY_ONE_EDIT_MIN_CHARS")
        return self

    def cursor_keys(self) -> tuple[bytes, ...]:
        """The cursor keys, signing key first (CURSOR_SECRETS when set, else CURSOR_SECRET)."""
        listed = [part.strip() for part in self.cursor_secrets.get_secret_value().split(",") if part.strip()]
        return tuple(key.encode() for key in (listed or [self.cursor_secret.get_secret_value()]))


class HttpSettings(Group):
    """The HTTP server (`python -m src`) and the request limits the app enforces itself."""

    model_config = SettingsConfigDict(env_prefix="HTTP_")

    host: str = Field(default="127.0.0.1", validation_alias="APP_HOST")
    port: int = Field(default=8000, ge=1, le=65535, validation_alias="APP_PORT")
    access_log: bool = Field(default=True, validation_alias="ACCESS_LOG")
    """One JSON access-log line per request (ACCESS_LOG=false turns it off)."""
    max_target_bytes: int = Field(default=8192, ge=256)
    max_header_bytes: int = Field(default=16384, ge=1024)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """A request body over this is a 413: at once when Content-Length says so, else as soon as the bytes
    received pass it (twice the largest purge: 1000 ids of 512 ASCII characters)."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection whose request head (request line and headers) is not complete this long after its first
    byte gets a 408 and is closed (`python -m src`; src/serving.py)."""


class HttpCacheSettings(Group):
    """Cache-Control of the responses (browsers, CDNs)."""

    model_config = SettingsConfigDict(env_prefix="HTTP_")

    max_age_seconds: int = Field(default=30, ge=0)
    s_maxage_seconds: int = Field(default=60, ge=0)
    stale_while_revalidate_seconds: int = Field(default=30, ge=0)
    stale_if_error_seconds: int = Field(default=300, ge=0)


class EdgeSettings(Group):
    """Who may call what, from where and how often: proxies, rate limits, CORS, HSTS, the pages, /metrics."""

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

    @model_validator(mode="after")
    def _check_metrics_access(self) -> EdgeSettings:
        if self.metrics_public and self.metrics_scope:
            raise ValueError("METRICS_PUBLIC=true and METRICS_SCOPE are both set: /metrics is either open or scoped")
        return self


class AuthSettings(Group):
    """Bearer tokens of the admin API (and of /metrics with METRICS_SCOPE)."""

    model_config = SettingsConfigDict(env_prefix="AUTH_")

    jwks_url: str = ""
    static_key: SecretStr | None = None
    """A PEM public key (or an HMAC secret for HS* algorithms) for development; refused in production."""
    issuer: str = ""
    audience: str = ""
    allow_any_issuer: bool = False
    """With APP_ENV=production and AUTH_JWKS_URL, an empty AUTH_ISSUER is refused at start unless this says
    any issuer the JWKS keys verify is meant."""
    allow_any_audience: bool = False
    """The same for an empty AUTH_AUDIENCE: a token the issuer minted for any other API of yours would pass."""
    algorithms: str = "RS256,ES256"
    leeway_seconds: float = Field(default=30.0, ge=0)
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)


class ApiSettings(ProcessSettings):
    """The read API's process (`python -m src`, the API's Lambda function)."""

    query: QuerySettings = Field(default_factory=QuerySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    http_cache: HttpCacheSettings = Field(default_factory=HttpCacheSettings)
    edge: EdgeSettings = Field(default_factory=EdgeSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @property
    def rate_limits_on(self) -> bool:
        """Whether the per-client rate limits apply (RATE_LIMIT_ENABLED, else APP_ENV=production)."""
        enabled = self.edge.rate_limit_enabled
        return enabled if enabled is not None else self.app.production

    @property
    def docs_on(self) -> bool:
        """Whether /docs and /openapi.json are served."""
        return self.edge.docs_enabled if self.edge.docs_enabled is not None else not self.app.production

    @property
    def preview_on(self) -> bool:
        """Whether the search preview page (/ and /preview) is served."""
        return self.edge.preview_enabled if self.edge.preview_enabled is not None else not self.app.production

    def check_serving(self) -> None:
        """Refuse, in production, what is only safe in development: UnsafeSettings names every such setting
        at once (one restart fixes them all)."""
        if not self.app.production:
            return
        auth, query, edge = self.auth, self.query, self.edge
        unsafe = []
        if auth.static_key is not None and auth.static_key.get_secret_value():
            unsafe.append("AUTH_STATIC_KEY is for development; use AUTH_JWKS_URL in production")
        name = "CURSOR_SECRETS" if query.cursor_secrets.get_secret_value().strip() else "CURSOR_SECRET"
        for key in query.cursor_keys():
            if key == DEV_CURSOR_SECRET.encode():
                unsafe.append(f"{name} is the public development default; set a secret of your own")
                break
            if len(key) < MIN_PRODUCTION_SECRET_BYTES:
                unsafe.append(f"{name}: every key must be at least {MIN_PRODUCTION_SECRET_BYTES} bytes in production")
                break
        # Without a JWKS URL no token verifies (the admin API refuses every request): nothing to narrow.
        if auth.jwks_url and not auth.issuer and not auth.allow_any_issuer:
            unsafe.append(
                "AUTH_ISSUER is empty: a token of any issuer the JWKS keys verify would pass; set it "
                "(or AUTH_ALLOW_ANY_ISSUER=true)"
            )
        if auth.jwks_url and not auth.audience and not auth.allow_any_audience:
            unsafe.append(
                "AUTH_AUDIENCE is empty: a token the issuer minted for any other API would pass; set it "
                "(or AUTH_ALLOW_ANY_AUDIENCE=true)"
            )
        if not edge.metrics_scope and not edge.metrics_public:
            unsafe.append(
                "METRICS_SCOPE is empty: /metrics would be open to anyone who reaches the API; set it, or "
                "METRICS_PUBLIC=true when only the scraper can reach the API's port"
            )
        if unsafe:
            raise UnsafeSettings("; ".join(unsafe))


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    """The API's settings, built once per process (tests call `get_api_settings.cache_clear()`)."""
    return ApiSettings()
