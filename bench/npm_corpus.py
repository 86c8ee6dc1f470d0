"""The npm benchmark corpus: the registry's package list (a TSV on this machine only) as JSON Lines.

Reads a tab-separated file with a header line and the columns name, version, downloads_a_month and
summary (the tool library's `env/packages/npm.tsv`: about 227k packages) and writes one JSON object per
package, `{id, name, version, summary, downloads}`, for `bench/npm.schema.json`:

- `id` is the name with its scope's `/` turned into `:` (`@babel/core` -> `@babel:core`). A `/` is a
  possible id (`src/search/documents.id_problem` refuses only control characters and dot segments), but
  `GET /v1/documents/{id}` could never reach it: the path parameter stops at a `/`, encoded or not. npm
  names never hold a `:` (a name must survive `encodeURIComponent` unchanged, scope aside), so the
  mapping is one to one; the script checks that anyway and stops on a clash.
- `summary` loses a leading `[tested here: ...]` note: the machine's own probe wrote those, not the
  package's authors, and they would be words no user searches for.
- `downloads` (monthly) is omitted when the list has no number for the package (unknown is not zero).

The data is never committed: the output goes under `var/` (git-ignored).

    .venv/bin/python bench/npm_corpus.py                      # -> var/npm-packages.jsonl
    .venv/bin/python bench/npm_corpus.py /path/npm.tsv --output var/npm.jsonl
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TSV = Path("/work/.library/env/packages/npm.tsv")
DEFAULT_OUTPUT = ROOT / "var" / "npm-packages.jsonl"
_PROBE_NOTE = re.compile(r"^\s*\[tested here:[^\]]*\]\s*")

type Document = dict[str, Any]


def document_id(name: str) -> str:
    """The document id of a package: its name, with the scope's `/` as `:` (see the module docstring)."""
    return name.replace("/", ":", 1) if name.startswith("@") else name


def clean_summary(summary: str) -> str:
    """The authors' summary: without a leading `[tested here: ...]` note, spaces trimmed."""
    return _PROBE_NOTE.sub("", summary, count=1).strip()


def to_document(row: list[str]) -> Document | None:
    """One TSV row (name, version, downloads, summary) as a document; None for a row without a name."""
    name, version, downloads, summary = [*row, "", "", "", ""][:4]
    name = name.strip()
    if not name:
        return None
    document: Document = {"id": document_id(name), "name": name, "version": version.strip()}
    if summary := clean_summary(summary):
        document["summary"] = summary
    if downloads.strip().isdigit():
        document["downloads"] = int(downloads)
    return document


def documents(rows: Iterable[list[str]]) -> Iterator[Document]:
    """Every row's document (the header excluded by the caller); ValueError on two rows with one id."""
    seen: set[str] = set()
    for row in rows:
        document = to_document(row)
        if document is None:
            continue
        if document["id"] in seen:
            raise ValueError(f"two packages map to the id {document['id']!r}")
        seen.add(document["id"])
        yield document


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tsv", type=Path, nargs="?", default=DEFAULT_TSV, help="the npm package list (TSV)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON Lines file to write")
    args = parser.parse_args(argv)
    if not args.tsv.is_file():
        sys.exit(f"{args.tsv}: no such file (the npm list is on the development machine only)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with args.tsv.open(encoding="utf-8", newline="") as source, args.output.open("wb") as out:
        rows = csv.reader(source, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows, None)  # the header
        for document in documents(rows):
            out.write(orjson.dumps(document) + b"\n")
            count += 1
    print(f"{count} documents -> {args.output}")


if __name__ == "__main__":
    main()
