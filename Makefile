# Two commands a newcomer needs: `make run` (the service, embedded profile) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: run test bench install install-dev clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt constraints.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt -c constraints.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Run the service on its embedded default (SQLite shards, in-process worker; data in var/).
run: $(VENV)/.installed
	$(PY) manage.py serve

## Run the test suite on local PostgreSQL (global + 2 shard databases) and Redis.
test: $(VENV)/.installed-dev
	./scripts/ensure_services.sh
	$(PY) -m pytest

## Benchmarks (services profile on local PostgreSQL and Redis); writes bench/results/*.json.
bench: $(VENV)/.installed-dev
	./scripts/ensure_services.sh
	$(PY) -m bench.api_accept

clean:
	rm -rf $(VENV) var .pytest_cache
