# Two commands a newcomer needs: `make run` (the service, embedded profile) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Where the embedded profile keeps its data (the same default as config/settings.py).
VAR_DIR ?= var

.PHONY: run run-services reset test bench install install-dev clean

$(VENV)/bin/python:
	@echo "Creating the virtual environment in $(VENV)/ ..."
	$(PYTHON) -m venv $(VENV)

# pip prints each package as it fetches it. --no-compile: byte-compiling every installed module
# up front took 46 of the 79 s of a first install, silently; Python compiles (and caches) the
# modules actually imported on first use instead.
$(VENV)/.installed: requirements.txt constraints.txt | $(VENV)/bin/python
	@echo "Installing the pinned dependencies into $(VENV)/ (first run only; under a minute)..."
	$(PIP) install --no-compile -r requirements.txt -c constraints.txt
	@touch $@
	@echo "Dependencies installed."

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	@echo "Installing the test tools (pytest, ruff, ...) into $(VENV)/ ..."
	$(PIP) install -q --no-compile -r requirements-dev.txt -c constraints.txt
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Run the service on its embedded default (SQLite shards, in-process worker; data in var/).
## The first start (an empty database) seeds the demo data; later starts keep your changes.
run: $(VENV)/.installed
	$(PY) manage.py serve

## Run the services profile on this machine: local PostgreSQL shards and Redis, every Procfile
## process under supervisord (a crashed process is restarted). Settings in var/services.env.
run-services: $(VENV)/.installed
	./scripts/ensure_services.sh
	./scripts/run_services.sh

## Delete the embedded profile's data (stop `make run` first); the next `make run` seeds again.
reset:
	rm -f $(VAR_DIR)/global.sqlite3* $(VAR_DIR)/shard_*.sqlite3* $(VAR_DIR)/celerybeat-schedule*
	@echo "Embedded data in $(VAR_DIR)/ deleted; the next \`make run\` starts with fresh demo data."

## Run the test suite on local PostgreSQL (global + 2 shard databases) and Redis, in two
## pytest-xdist processes (whole files each: most tests wait on the processes they start, so
## two run side by side on two cores; each has its own test databases and Redis database).
## TEST_PROCESSES=0 runs them in one process.
TEST_PROCESSES ?= 2
test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	./scripts/ensure_services.sh
	./scripts/ensure_chromium.sh
	$(PY) -m pytest $(if $(filter 0,$(TEST_PROCESSES)),,-n $(TEST_PROCESSES) --dist loadfile)

## Benchmarks (services profile on local PostgreSQL and Redis); writes bench/results/*.json.
bench: $(VENV)/.installed-dev
	./scripts/ensure_services.sh
	$(PY) -m bench.api_accept

clean:
	rm -rf $(VENV) var .pytest_cache
