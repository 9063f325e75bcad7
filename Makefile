# Two commands: `make dev` and `make test`. Every target honours ML_ASSETS_LANDING_DIR,
# DAGSTER_HOME and MLFLOW_TRACKING_URI from the environment, else uses the embedded defaults.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 3000

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export ML_ASSETS_LANDING_DIR ?= $(CURDIR)/data/landing
export ML_ASSETS_STORAGE_DIR ?= $(CURDIR)/data/warehouse
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/.mlflow/mlflow.db
export ML_ASSETS_MLFLOW_ARTIFACTS ?= $(CURDIR)/.mlflow/artifacts
# Dagster hands its event storage whole batches (a run's plan, a range output's materializations);
# the instance's event log (dagster.yaml, ml_assets/event_log.py) writes each in one transaction.
export DAGSTER_EVENT_BATCH_SIZE ?= 1000
# glibc gives each thread that allocates its own arena and keeps what it frees there: the IO
# manager's threads held 20-55 MB more at a year's backfill peak; two arenas give it back.
export MALLOC_ARENA_MAX ?= 2

.PHONY: dev test bench materialize lint format seed install home clean system-packages lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# constraints.txt pins every package setup.py's ranges resolve to, so a fresh clone, CI, the image
# and a bench run all get the versions the suite and bench/report.json were measured with; and pip
# and setuptools too, which `-c` alone leaves to the newest release: pip builds the project in an
# isolated environment of its own, which only `--build-constraint` pins.
$(VENV)/.installed: setup.py pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt --build-constraint constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed

home: install
	@mkdir -p "$(DAGSTER_HOME)" .mlflow
	@[ -f "$(DAGSTER_HOME)/dagster.yaml" ] || cp dagster.yaml "$(DAGSTER_HOME)/dagster.yaml"

seed: home
	$(BIN)/python -m ml_assets.demo seed --if-empty

dev: seed
	$(BIN)/python -m ml_assets.operations register
	$(BIN)/dagster dev -h $(HOST) -p $(PORT) -w workspace.yaml

materialize: seed
	$(BIN)/python -m ml_assets.operations materialize

# Real servers and a real browser for the integration tests: PostgreSQL and Chromium from Debian.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			postgresql chromium >/dev/null; \
	fi

test: install system-packages
	$(BIN)/python -m pytest

# Not part of `make test`: times the graph against a bare script (README "Performance").
bench: install system-packages
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check ml_assets ml_assets_tests bench
	$(BIN)/ruff format --check ml_assets ml_assets_tests bench

format: install
	$(BIN)/ruff format ml_assets ml_assets_tests bench
	$(BIN)/ruff check --fix ml_assets ml_assets_tests bench

# Re-resolve setup.py's ranges to the newest releases in a scratch venv and pin them all.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip setuptools
	$(LOCK_VENV)/bin/pip install --quiet -e '.[test,bench,production]'
	{ echo "# Written by \`make lock\` on $$(date -u +%F): every package of .[test,bench,production], pinned,"; \
	  echo "# and the pip and setuptools (the build backend) that install and build it."; \
	  $(LOCK_VENV)/bin/pip freeze --all --exclude-editable; } > constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf .dagster_home .mlflow data/warehouse .bench
