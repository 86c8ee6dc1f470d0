"""Embedded Tantivy backend: an on-disk index, the default when no Elasticsearch URL is set.

Layout under the data directory: one folder per versioned index (`<alias>-<timestamp>`) and an alias
file `<alias>.alias` naming the current one, replaced atomically (`os.replace`) to swap. Readers check
the alias file at most every `reload_interval_seconds` and reopen when it moved. An index being built
holds a marker file, `search-api-build.json` (`{"state": "building", "heartbeat": <epoch>}`), from its
creation until its alias moves onto it (Tantivy leaves files it did not create alone).

Tantivy's calls are synchronous: every one runs in a worker thread with a timeout. Tantivy has no
multi-key sort nor search_after, so pages are computed by fetching a window of the engine's order,
re-sorting it by `(sort key, id)` in Python and growing the window until the page is certain; deep
pages cost time proportional to their depth (see README).

The modules, as the cluster engines split theirs (querydsl.py translates, cluster.py holds the backend):

- `schema`: the Tantivy fields derived from the index schema, the analyzer, a document's indexed form.
- `query`: the query plan (src/search/plan.py) translated into a Tantivy query.
- `expansion`: typo expansion from the index's own terms (over `src.search.backends.vocabulary`).
- `sorting`: the page order of hits and cursor positions, in Python (pure).
- `paging`: one page of hits and the facet counts, read from a searcher.
- `store`: the open index (reader, writer, typo vocabularies), build markers, a batch of writes.
- `backend`: `TantivyBackend`, the `SearchBackend`: threads, timeouts, the alias, errors at one choke point.
"""

from src.search.backends.tantivy.backend import TantivyBackend

__all__ = ["TantivyBackend"]
