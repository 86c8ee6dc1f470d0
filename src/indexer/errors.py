"""Errors of the indexer pipeline."""

from __future__ import annotations


class IndexerError(Exception):
    """Base class of the indexer's errors."""


class SourceUnavailable(IndexerError):
    """The source database cannot be reached or failed transiently; the stream retries."""


class HistoryLost(IndexerError):
    """The resume point is gone from the change stream history: only a full reindex recovers."""


class CollectionGone(IndexerError):
    """The watched collection was dropped or renamed: the stream stops with this message."""


class ReindexFailed(IndexerError):
    """A reindex could not verify its new index; the alias was left on the old one."""


class ChangeStreamsDisabled(SourceUnavailable):
    """The collection has no change stream (DocumentDB: not enabled with `modifyChangeStreams`)."""


class SourceAuthFailed(SourceUnavailable):
    """The source refused the credentials."""
