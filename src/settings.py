"""Process settings: one grouped pydantic-settings model, read from `.env` and the environment.

Nothing reads settings at import time: call `get_settings()` where a value is needed (it is cached),
and pass plain values into pure code.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_CURSOR_SECRET = "dev-only-cursor-secret-change-me"  # noqa: S105 - a documented development default


class Settings(BaseSettings):
    """Every setting of the read API and the indexer; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # --- search backend -------------------------------------------------------------------------
    elasticsearch_url: str = ""
    elasticsearch_api_key: SecretStr | None = None
    elasticsearch_username: str = ""
    elasticsearch_password: SecretStr | None = None
    elasticsearch_replicas: int = Field(default=0, ge=0)
    elasticsearch_refresh_interval: str = "1s"
    search_timeout_seconds: float = Field(default=2.0, gt=0)
    tantivy_data_dir: Path = Path("var/tantivy")
    tantivy_reload_interval_seconds: float = Field(default=1.0, ge=0)
    index_alias: str = Field(default="packages", pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    index_schema_path: Path = Path("data/debian-packages.schema.json")

    # --- query behaviour --------------------------------------------------------------------------
    fuzzy_one_edit_min_chars: int = Field(default=4, ge=1)
    fuzzy_two_edits_min_chars: int = Field(default=8, ge=1)
    search_max_query_chars: int = Field(default=256, ge=1, le=4096)
    search_max_query_terms: int = Field(default=16, ge=1, le=64)
    search_max_filters: int = Field(default=20, ge=1)
    search_default_size: int = Field(default=10, ge=1, le=100)
    search_facet_size: int = Field(default=20, ge=1, le=1000)
    search_track_total_hits_up_to: int = Field(default=10_000, ge=1)
    highlight_fragment_chars: int = Field(default=160, ge=20)
    highlight_max_fragments: int = Field(default=3, ge=1)
    cursor_secret: SecretStr = SecretStr(DEV_CURSOR_SECRET)

    # --- server -----------------------------------------------------------------------------------
    app_host: str = "127.0.0.1"
    app_port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- loading ----------------------------------------------------------------------------------
    demo_data_path: Path = Path("data/debian-packages.jsonl.gz")
    load_batch_size: int = Field(default=500, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check_fuzzy_thresholds(self) -> Settings:
        if self.fuzzy_two_edits_min_chars < self.fuzzy_one_edit_min_chars:
            raise ValueError("fuzzy_two_edits_min_chars must be >= fuzzy_one_edit_min_chars")
        return self

    @property
    def backend_kind(self) -> Literal["elasticsearch", "tantivy"]:
        """Elasticsearch when a URL is configured; the embedded Tantivy index otherwise."""
        return "elasticsearch" if self.elasticsearch_url else "tantivy"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process (tests call `get_settings.cache_clear()`)."""
    return Settings()
