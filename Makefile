# Two commands on a fresh machine: `make demo` (the main job on the embedded default) and `make test`.
# Both create the virtual environment on first use, pinned by requirements.lock.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TRADING_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(TRADING_DATA_DIR)/dagster_home

.PHONY: demo test dev lint bench lock clean walkthrough services services-down soak loadtest

# uv installs the same pinned set in seconds where pip takes minutes; pip is the fallback where uv cannot run.
$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock uv \
		&& $(BIN)/uv pip install -q --python $(BIN)/python -c requirements.lock -e ".[dev]" \
		|| $(BIN)/python -m pip install -q --disable-pip-version-check -c requirements.lock -e ".[dev]"
	@touch $@

# The embedded default's Dagster instance: SQLite storage under DAGSTER_HOME (Dagster's default), and the
# step pools: the only one, `gpu`, lets one fold train at a time; the run queue is read every second (Dagster's
# default is 5 s), so a run a sensor asks for starts within a second or two; sensors tick in threads, so one
# slow evaluation does not hold back the others.
$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p $(DAGSTER_HOME)
	@printf '%s\n' "# Embedded default: SQLite storage in this folder. Production uses the repo's dagster.yaml." \
		"concurrency:" "  runs:" "    tag_concurrency_limits:" "      - key: dagster/partition" \
		"        value: { applyLimitPerUniqueValue: true }" "        limit: 1" \
		"  pools:" "    granularity: op" "    default_limit: 1" \
		"run_coordinator:" "  module: dagster._core.run_coordinator" "  class: QueuedRunCoordinator" \
		"  config:" "    dequeue_interval_seconds: 1" "sensors:" "  use_threads: true" "  num_workers: 4" \
		"telemetry:" "  enabled: false" > $@

demo: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/trading-assets demo

# Postgres, Redis and QuestDB on loopback, installed and started if missing (reused when they answer).
services:
	scripts/services.sh up

services-down:
	scripts/services.sh down

# The tests bring the services up themselves and require them (a server that does not answer fails).
# Test files run side by side on three workers, each file on one worker (its module fixtures are built once):
# many tests spend their time waiting on services, subprocesses, a browser or a replay clock, so a third
# worker keeps the two cores of the project's machines busy. Files are handed out in the order tests/conftest.py
# gives them (the slowest first, so that none is left to run alone at the end), not by number of tests.
# OMP_NUM_THREADS=1: XGBoost (OpenMP) otherwise starts a thread per core in each of the three workers and the
# processes they spawn, and on two cores those threads spin waiting on each other: three processes training
# small models side by side ran many times slower than with one thread each. Its results do not depend on it.
test: $(VENV)/.installed services
	$(BIN)/ruff check .
	set -a && eval "$$(scripts/services.sh env)" && set +a && OMP_NUM_THREADS=1 \
		$(BIN)/pytest -n 3 --dist loadfile --no-loadscope-reorder --durations=20

# The Dagster UI on :3000 and the HTTP API on :8000 (trading-assets serve; docs/api.md), stopped together.
dev: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	@test -f $(TRADING_DATA_DIR)/timeseries.duckdb || $(MAKE) demo
	$(BIN)/trading-assets serve & api=$$!; trap 'kill $$api 2>/dev/null' EXIT INT TERM; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Screenshots of the UI on the demo's state (docs/qa/walkthrough.md), through Debian's headless Chromium.
walkthrough: $(VENV)/.installed
	@test -f $(TRADING_DATA_DIR)/timeseries.duckdb || $(MAKE) demo
	$(BIN)/python scripts/walkthrough.py --out docs/img

# A faulted week of live trading on an accelerated clock (docs/live/soak.md): the services under the
# supervisor, a Postgres and a QuestDB of the soak's own, a seeded schedule of faults; prints the invariants.
# `make soak SOAK_ARGS="--days 1 --seed 3"` for another length or schedule.
SOAK_ARGS ?=
soak: $(VENV)/.installed services
	$(BIN)/python -m trading_assets.live.soak --days 7 $(SOAK_ARGS)

# Load tests with locust on loopback (docs/operations/loadtest.md): each scenario of loadtests/limits.yaml for
# its time against the production profile on the local servers; prints a table per scenario and exits 1 when
# one misses its p95 or error limit. `make loadtest LOADTEST_ARGS="--seconds 5 --only catalog_reads"`.
LOADTEST_ARGS ?=
loadtest: $(VENV)/.installed services
	set -a && eval "$$(scripts/services.sh env)" && set +a && $(BIN)/python -m loadtests.run $(LOADTEST_ARGS)

bench: $(VENV)/.installed services
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/indicators.py
	$(BIN)/python benchmarks/walkforward.py
	$(BIN)/python benchmarks/walkforward.py --daemon
	$(BIN)/python benchmarks/simulate.py
	$(BIN)/python benchmarks/questdb_store.py
	$(BIN)/python benchmarks/export.py --store questdb
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/live.py

# Refresh the pins after changing dependencies in pyproject.toml (commit the result).
lock: $(VENV)/.installed
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^trading-assets' > requirements.lock

clean:
	scripts/services.sh down questdb
	rm -rf $(VENV) $(TRADING_DATA_DIR)
