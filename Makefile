# Two commands on a fresh machine: `make run` (serve the demo data on the embedded index) and
# `make test` (the whole quality gate). Everything else is a building block of those two.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run load test pytest typecheck lint docs bench bench-search bench-cache bench-indexer bench-load bench-relevance bench-relevance-npm bench-cold-start es-start es-stop os-start os-stop clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || "$$(scripts/find-python.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench,deploy,docs]'
	@touch $(STAMP)

# Loads the demo data (DEMO_DATA_PATH) into the configured backend unless the alias already exists.
load: venv
	$(PY) -m indexer load --if-empty

run: load
	$(PY) -m src

# The README's test command: tests with coverage (fail_under in setup.cfg), then types and lint.
test: venv
	$(VENV)/bin/coverage erase
	$(VENV)/bin/coverage run -m pytest
	$(VENV)/bin/coverage report -m
	$(VENV)/bin/mypy src indexer tests infra
	$(VENV)/bin/ruff check src indexer tests scripts bench infra
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy src indexer tests infra

lint: venv
	$(VENV)/bin/ruff check src indexer tests scripts bench infra

# The documentation site (mkdocs.yml, docs/) into site/; `make test` checks the same build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# Benchmarks (figures in the issues' closing notes). bench-search: API vs the engines' own clients
# (Elasticsearch too when ELASTICSEARCH_URL is set). bench-cache needs REDIS_URL and `wrk`.
bench: bench-search bench-cache bench-indexer

bench-search: venv
	$(PY) bench/search_bench.py

# fastapi-cache2 0.2.2 (its last release) pins redis<5, which would downgrade our redis client:
# installed without its dependencies, into the venv, for the comparison only.
bench-cache: venv
	$(PY) -m pip install --quiet --no-deps 'fastapi-cache2==0.2.2' && $(PY) -m pip install --quiet pendulum jinja2
	PATH=$(VENV)/bin:$$PATH $(PY) bench/cache_bench.py

# Indexer throughput (vs a plain bulk load), freshness and RSS, on SecantusDB (started by the script).
# Load and dependency failures: wrk at 64 and 256 connections, Redis and Elasticsearch paused (needs ELASTICSEARCH_URL).
bench-load: venv
	PATH=$(VENV)/bin:$$PATH $(PY) bench/load_bench.py

# Relevance on typo, separator, known-item and prefix probes (plus Elasticsearch and a fuzziness:AUTO
# baseline when ELASTICSEARCH_URL is set).
bench-relevance: venv
	$(PY) bench/relevance.py

# The same on the npm registry's package list (227k names with monthly downloads as popularity; the TSV is
# on the development machine only, NPM_TSV=path for another copy): typo, collision, prefix, separator and
# known-item probes, plus a tuned Elasticsearch baseline. The corpus is written to var/, never committed.
bench-relevance-npm: venv
	$(PY) bench/npm_corpus.py $(NPM_TSV)
	$(PY) bench/relevance.py --corpus npm --json var/relevance-npm.json

bench-indexer: venv
	$(PY) bench/indexer_bench.py

# Lambda cold start of the API handler vs a bare FastAPI + Mangum app (needs ELASTICSEARCH_URL).
bench-cold-start: venv
	$(PY) bench/cold_start.py

es-start:
	scripts/elasticsearch.sh start

es-stop:
	scripts/elasticsearch.sh stop

# OpenSearch on 9201, so it can run beside a development Elasticsearch on 9200.
os-start:
	OS_PORT=$${OS_PORT:-9201} scripts/opensearch.sh start

os-stop:
	OS_PORT=$${OS_PORT:-9201} scripts/opensearch.sh stop

clean:
	rm -rf $(VENV) var .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
