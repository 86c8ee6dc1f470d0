"""Deployable entrypoints of the indexer: `python -m indexer load|...`."""
