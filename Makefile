# Two commands on a fresh machine: `make run` (serve the demo data on the embedded index) and
# `make test` (the whole quality gate). Everything else is a building block of those two.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run load test pytest typecheck lint bench es-start es-stop clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || "$$(scripts/find-python.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
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
	$(VENV)/bin/mypy src indexer
	$(VENV)/bin/ruff check src indexer tests scripts bench

typecheck: venv
	$(VENV)/bin/mypy src indexer

lint: venv
	$(VENV)/bin/ruff check src indexer tests scripts bench

bench: venv
	$(PY) bench/search_bench.py

es-start:
	scripts/elasticsearch.sh start

es-stop:
	scripts/elasticsearch.sh stop

clean:
	rm -rf $(VENV) var .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache
