# Loyalty feature store. `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
REPO := feature_repo

.DEFAULT_GOAL := help

help: ## List every target with one line each
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-22s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python ## Create .venv and install the project (editable, with dev extras)
	$(BIN)/pip install --quiet -e '.[dev,ray]'

# Test files spread over TEST_WORKERS processes (pytest-xdist; one file stays in one process, so a
# module's fixtures are set up once). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 3

test: ## Run the whole test suite (needs Redis and PostgreSQL on 127.0.0.1)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

# The unit tier (tests/conftest.py): every test using no service fixture. Run with the services
# pointed at dead ports, so a test wrongly in it fails here rather than passing by luck.
DEAD_SERVICES := TEST_REDIS_URL=redis://127.0.0.1:1/0 TEST_PG_URL=postgresql+psycopg://root@127.0.0.1:1/test

test-unit: ## Run the unit tier (tests with no service fixture), services pointed at dead ports
	$(DEAD_SERVICES) $(BIN)/pytest -q -m unit

lint: ## Run ruff, mypy and the import contracts (.importlinter)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy xiva_source segmentation feature_repo tests

format: ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: help install test test-unit lint format

apply: ## Register the feature repository (feast -c feature_repo apply)
	$(BIN)/feast -c $(REPO) apply

materialize: ## Cron-safe incremental materialization into the online store (docs/operations.md)
	$(BIN)/python -m xiva_source materialize --repo $(REPO)

demo: ## End-to-end demo: simulator + SQLite DWH + embedded online store, nothing to run first
	$(BIN)/python -m xiva_source demo --repo $(REPO)

bench-materialize: ## Benchmark the job against stock Feast (needs PostgreSQL and Redis)
	$(BIN)/python bench/materialize.py --rows 100000,1000000 --xiva-customers 0

bench-segmentation: ## Benchmark segmentation against stock Feast + json-logic-qubit (needs Redis)
	$(BIN)/python bench/segmentation.py --customers 1000000 --segments 10 --sample 20000

bench-dwh-read: ## DWH to Arrow: the current path vs psycopg binary COPY vs ADBC (needs PostgreSQL)
	$(BIN)/python bench/dwh_read.py

bench-ray: ## The Ray engine beside the in-process engine (needs PostgreSQL and Redis)
	$(BIN)/python bench/ray_engine.py --rows 100000

bench-startup: ## Start-up of status / validate / sizes beside `import feast` (needs Redis)
	$(BIN)/python bench/startup.py --runs 7

bench-xiva-pull: ## Peak memory of a streamed Xiva pull, 20,000 vs 2,000 simulator customers
	$(BIN)/python bench/xiva_pull.py

bench-serving: ## Online reads p50/p99: ml_features beside plain views, raw HGETALL, feast serve (needs Redis)
	$(BIN)/python bench/serving.py --customers 10000 --single 2000 --batches 300

bench-sync: ## The sync worker beside a 5-minute cron path: latencies, Xiva calls per change, RSS (needs Redis)
	$(BIN)/python bench/sync.py --customers 10000 --minutes 5

bench: bench-materialize bench-segmentation bench-dwh-read bench-ray bench-xiva-pull bench-serving bench-startup bench-sync ## Run every benchmark (prints ratios)

.PHONY: apply materialize demo bench bench-materialize bench-segmentation bench-dwh-read bench-ray \
	bench-xiva-pull bench-serving bench-startup bench-sync
