"""The indexer's settings: the shared groups, and the CDN purge and loading groups only it reads."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from src.settings.groups import Group
from src.settings.process import ProcessSettings


class CdnSettings(Group):
    """Purges by surrogate key after each acknowledged batch (Varnish xkey, Fastly or CloudFront)."""

    model_config = SettingsConfigDict(env_prefix="CDN_")

    purger: Literal["none", "xkey", "fastly", "cloudfront"] = "none"
    purge_url: str = ""
    """xkey: where PURGE requests go (the Varnish in front of the API)."""
    fastly_service_id: str = Field(default="", validation_alias="FASTLY_SERVICE_ID")
    fastly_api_token: SecretStr | None = Field(default=None, validation_alias="FASTLY_API_TOKEN")
    fastly_api_url: str = Field(default="https://api.fastly.com", validation_alias="FASTLY_API_URL")
    fastly_soft_purge: bool = Field(default=False, validation_alias="FASTLY_SOFT_PURGE")
    cloudfront_distribution_id: str = Field(default="", validation_alias="CLOUDFRONT_DISTRIBUTION_ID")
    purge_max_pending: int = Field(default=100_000, ge=1)
    purge_repeat_seconds: float = Field(default=3.0, ge=0)
    """Each key is purged again this much later (after the API's in-process tier and index reload caught
    up: a CDN refetching in between cached the old value again); 0: once only."""

    @model_validator(mode="after")
    def _check_purger(self) -> CdnSettings:
        needed = {
            "xkey": ("purge_url",),
            "fastly": ("fastly_service_id", "fastly_api_token"),
            "cloudfront": ("cloudfront_distribution_id",),
        }.get(self.purger, ())
        variables = {field: variable for variable, field in self.variables().items()}
        missing = [variables[name] for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"CDN_PURGER={self.purger} needs {' and '.join(missing)}")
        return self


class LoadSettings(Group):
    """`python -m indexer load` and `seed`: the file and the batch size."""

    model_config = SettingsConfigDict(env_prefix="LOAD_")

    demo_data_path: Path = Field(default=Path("data/debian-packages.jsonl.gz"), validation_alias="DEMO_DATA_PATH")
    batch_size: int = Field(default=500, ge=1, le=10_000)


class IndexerSettings(ProcessSettings):
    """The indexer's process (`python -m indexer`, the indexer's Lambda function)."""

    cdn: CdnSettings = Field(default_factory=CdnSettings)
    load: LoadSettings = Field(default_factory=LoadSettings)


@lru_cache(maxsize=1)
def get_indexer_settings() -> IndexerSettings:
    """The indexer's settings, built once per process (tests call `get_indexer_settings.cache_clear()`)."""
    return IndexerSettings()
