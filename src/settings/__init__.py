"""Process settings, grouped by concern, read from `.env` and the environment.

Each concern (the engine, the cache, Redis, the source, the CDN purge...) is a group that reads its own
variables, under the names `.env.example` documents; each process composes the groups it needs
(`ApiSettings`, `IndexerSettings`) and reads no other. Nothing reads settings at import time: call
`get_api_settings()` / `get_indexer_settings()` (cached) or `settings_or_exit(...)` at an entry point,
and pass plain values into pure code.
"""

from src.settings.api import (
    DEV_CURSOR_SECRET,
    MIN_PRODUCTION_SECRET_BYTES,
    ApiSettings,
    AuthSettings,
    EdgeSettings,
    HttpCacheSettings,
    HttpSettings,
    QuerySettings,
    UnsafeSettings,
    get_api_settings,
)
from src.settings.groups import (
    AppSettings,
    BrokerSettings,
    CacheSettings,
    EngineSettings,
    Group,
    IndexSettings,
    PipelineSettings,
    RedisSettings,
    SourceSettings,
)
from src.settings.indexer import CdnSettings, IndexerSettings, LoadSettings, get_indexer_settings
from src.settings.process import ProcessSettings, settings_or_exit

__all__ = [
    "DEV_CURSOR_SECRET",
    "MIN_PRODUCTION_SECRET_BYTES",
    "ApiSettings",
    "AppSettings",
    "AuthSettings",
    "BrokerSettings",
    "CacheSettings",
    "CdnSettings",
    "EdgeSettings",
    "EngineSettings",
    "Group",
    "HttpCacheSettings",
    "HttpSettings",
    "IndexSettings",
    "IndexerSettings",
    "LoadSettings",
    "PipelineSettings",
    "ProcessSettings",
    "QuerySettings",
    "RedisSettings",
    "SourceSettings",
    "UnsafeSettings",
    "get_api_settings",
    "get_indexer_settings",
    "settings_or_exit",
]
