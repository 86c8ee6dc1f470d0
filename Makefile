# Two commands on a fresh machine: `make run` (serve the demo data on the embedded index) and
# `make test` (the whole quality gate). Everything else is a building block of those two.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: venv run load test pytest typecheck lint docs bench bench-search bench-cache bench-indexer bench-load bench-relevance bench-relevance-npm bench-cold-start es-start es-stop os-start os-stop clean

# One stamp per extra set, so each target installs only what it needs and none installs twice:
# `make run` the serving dependencies alone (no test, benchmark, docs or AWS CDK packages: about half the
# download and install time), `make test` adds the dev, deploy (mypy checks infra/ against the CDK's types)
# and docs extras (the test run builds the site), the benchmarks the bench extra. A stamp is redone when
# setup.cfg or pyproject.toml change.
SERVE_STAMP := $(VENV)/.stamp-serve
extra_stamp = $(foreach extra,$(1),$(VENV)/.stamp-$(extra))

# The development environment: what `make test` uses.
venv: $(call extra_stamp,dev deploy docs)

$(SERVE_STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || "$$(scripts/find-python.sh)" -m venv $(VENV)
	@# The pip a venv starts with can be old (23.x with some Pythons), and its resolver gives up on
	@# the OpenTelemetry contrib betas' exact pins.
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.stamp-%: $(SERVE_STAMP)
	$(PIP) install --quiet -e '.[$*]'
	@touch $@

# Loads the demo data (DEMO_DATA_PATH) into the configured backend unless the alias already exists.
load: $(SERVE_STAMP)
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

bench-search: $(call extra_stamp,dev bench)
	$(PY) bench/search_bench.py

# fastapi-cache2 0.2.2 (its last release) pins redis<5, which would downgrade our redis client:
# installed without its dependencies, into the venv, for the comparison only.
bench-cache: $(call extra_stamp,dev bench)
	$(PY) -m pip install --quiet --no-deps 'fastapi-cache2==0.2.2' && $(PY) -m pip install --quiet pendulum jinja2
	PATH=$(VENV)/bin:$$PATH $(PY) bench/cache_bench.py

# Indexer throughput (vs a plain bulk load), freshness and RSS, on SecantusDB (started by the script).
# Load and dependency failures: wrk at 64 and 256 connections, Redis and Elasticsearch paused (needs ELASTICSEARCH_URL).
bench-load: $(call extra_stamp,dev bench)
	PATH=$(VENV)/bin:$$PATH $(PY) bench/load_bench.py

# Relevance on typo, separator, known-item and prefix probes (plus Elasticsearch and a fuzziness:AUTO
# baseline when ELASTICSEARCH_URL is set).
bench-relevance: $(call extra_stamp,dev bench)
	$(PY) bench/relevance.py

# The same on the npm registry's package list (227k names with monthly downloads as popularity; the TSV is
# on the development machine only, NPM_TSV=path for another copy): typo, collision, prefix, separator and
# known-item probes, plus a tuned Elasticsearch baseline. The corpus is written to var/, never committed.
bench-relevance-npm: $(call extra_stamp,dev bench)
	$(PY) bench/npm_corpus.py $(NPM_TSV)
	$(PY) bench/relevance.py --corpus npm --json var/relevance-npm.json

bench-indexer: $(call extra_stamp,dev bench)
	$(PY) bench/indexer_bench.py

# Lambda cold start of the API handler vs a bare FastAPI + Mangum app (needs ELASTICSEARCH_URL).
bench-cold-start: $(call extra_stamp,dev bench)
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
