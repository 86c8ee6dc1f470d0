"""The PyPI package list (TSV, on the development machine only) as JSON Lines for bench/pypi.schema.json.

    .venv/bin/python bench/pypi_corpus.py [TSV] [OUT]

Reads `name, version, month, rank_among_15000_most_downloaded, summary` rows (the tool library's
`env/packages/pypi.tsv`, 886k names) and writes `{"id", "name", "summary", "rank"}` (rank only for the 15,000
most downloaded: the schema's custom ranking, ascending, so unranked packages come last) to
`var/pypi-packages.jsonl.gz`. A name seen twice keeps its first row. Never committed: it is the catalogue
the project's held-out checks resemble (relevance is judged on data the project does not tune on).
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TSV = ROOT.parent / ".library" / "env" / "packages" / "pypi.tsv"
DEFAULT_OUT = ROOT / "var" / "pypi-packages.jsonl.gz"


def convert(source: Path, target: Path) -> int:
    """Write the documents; returns how many."""
    target.parent.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with (
        source.open(encoding="utf-8", errors="replace", newline="") as rows,
        gzip.open(target, "wt", encoding="utf-8") as out,
    ):
        reader = csv.reader(rows, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader, None)
        for row in reader:
            if len(row) < 5 or not row[0] or row[0] in seen:
                continue
            name, _, _, rank, summary = row[:5]
            seen.add(name)
            document: dict[str, object] = {"id": name, "name": name, "summary": summary.strip()}
            if rank.strip().isdigit():
                document["rank"] = int(rank)
            out.write(json.dumps(document) + "\n")
    return len(seen)


if __name__ == "__main__":
    tsv = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TSV
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    print(f"wrote {convert(tsv, out)} documents to {out}")
