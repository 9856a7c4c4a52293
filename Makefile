# Feature platform on Feast. Every target bootstraps its own environment:
# a private uv (from PyPI) in .tools/, then `uv sync --frozen` of uv.lock into .venv/.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
FP := $(VENV)/bin/feature-platform
PROFILE ?= local

# No telemetry from Feast or Great Expectations (and no network to send it to).
export FEAST_USAGE := False
export GX_ANALYTICS_ENABLED := false
export SCARF_NO_ANALYTICS := true
export DO_NOT_TRACK := 1

.PHONY: help setup demo serve feast ui chromium wrk bqemulator test-production bench-bigquery-costs test test-unit test-integration lint check schema-lock format typecheck bench bench-full bench-spark clean pipeline-compile pipeline-run-local

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 not found)"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled at install time: these machines set PYTHONDONTWRITEBYTECODE=1,
# which would otherwise make every process recompile feast (11 s instead of 6 s).
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python "$(PYTHON)"
	@touch $@

setup: $(VENV)/.synced ## Create .venv from uv.lock (installs uv from PyPI first)

demo: setup ## Run the whole job on the embedded profile (no services needed)
	$(FP) --profile $(PROFILE) demo

feast: setup ## Plain feast CLI on PROFILE, e.g. make feast PROFILE=services ARGS="plan"
	scripts/feast $(PROFILE) $(ARGS)

UI_HOST ?= 127.0.0.1
UI_PORT ?= 8888
ui: setup ## Feast's bundled UI on PROFILE's registry (UI_HOST, UI_PORT), e.g. make ui PROFILE=services
	scripts/feast $(PROFILE) ui --host $(UI_HOST) --port $(UI_PORT)

test: setup chromium bqemulator ## Run all tests (integration tests need PostgreSQL + Redis on 127.0.0.1)
	$(PY) -m pytest

# The BigQuery emulator of tests/production, in its own environment (it pins
# DuckDB 1.5.5 + the spatial extension's wheel; the project runs DuckDB 2),
# built with the private uv from tests/production/emulator/requirements.txt.
BQEMU := $(TOOLS)/bqemulator
BQEMU_REQ := tests/production/emulator/requirements.txt
$(BQEMU)/.synced: $(BQEMU_REQ) | $(UV)
	$(UV) venv --quiet --allow-existing --python "$(PYTHON)" $(BQEMU)
	VIRTUAL_ENV=$(BQEMU) $(UV) pip sync --quiet --require-hashes $(BQEMU_REQ)
	@touch $@

bqemulator: $(BQEMU)/.synced ## BigQuery emulator env for tests/production (.tools/bqemulator)

test-production: setup bqemulator ## Production-profile tests (BigQuery emulator + PostgreSQL + Redis)
	$(PY) -m pytest -m production

bench-bigquery-costs: setup bqemulator ## BigQuery jobs per run on the production profile -> benchmarks/results/bigquery_costs.json
	FP_BIGQUERY_COSTS_OUT=benchmarks/results/bigquery_costs.json $(PY) -m pytest -m production -q

chromium: ## Install headless Chromium for the Feast UI test when missing (apt-get, as root)
	scripts/ensure-chromium

test-unit: setup ## Unit tests only
	$(PY) -m pytest tests/unit

test-integration: setup chromium ## Integration tests against PostgreSQL + Redis only
	$(PY) -m pytest -m integration

lint: setup ## ruff check + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check: setup ## Governance: ttl rule, breaking changes vs schema.lock.json, pii tags
	$(FP) --profile $(PROFILE) check

schema-lock: setup ## Accept the current definitions: rewrite feature_repo/schema.lock.json
	$(FP) --profile $(PROFILE) check --update-lock

format: setup ## ruff format + autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: setup ## mypy on the package
	$(VENV)/bin/mypy

# The feature server on the services profile (PostgreSQL registry + Redis; see
# feature_repo/profiles/services.env). Apply and materialize first.
SERVE_PROFILE ?= services
HOST ?= 127.0.0.1
PORT ?= 6566
serve: setup ## HTTP feature server on the services profile (HOST, PORT, SERVE_PROFILE)
	$(FP) --profile $(SERVE_PROFILE) serve --host $(HOST) --port $(PORT)

# docker-compose.yml's services as local processes (no docker): Airflow api-server,
# dag-processor and scheduler (LocalExecutor, PostgreSQL), feature server, MLflow.
# Ports and settings: docker/stack.env; logs: .stack/logs/ (docs/running/airflow.md).
.PHONY: stack stack-down
stack: setup ## Start the stack as processes (Airflow, feature server, MLflow)
	scripts/stack up

stack-down: ## Stop every process `make stack` started
	scripts/stack down

pipeline-compile: setup ## Compile the KFP pipeline to pipelines/compiled/ (commit the YAML)
	$(PY) pipelines/churn_training_pipeline.py

pipeline-run-local: setup ## Run the KFP training pipeline locally (kfp.local, embedded profile), print metrics
	$(PY) -m pipelines.run_local

wrk: ## Install wrk (Debian) when missing: the http benchmark checks its load generator with it
	scripts/ensure-wrk

bench: setup wrk ## Benchmarks, quick mode (~1 min; own redis-server + PostgreSQL database)
	$(PY) -m benchmarks --quick --out benchmarks/results/quick

bench-full: setup wrk ## Benchmarks, full mode (minutes): writes benchmarks/results/*.json + summary.md
	$(PY) -m benchmarks --out benchmarks/results

bench-spark: setup ## Spark rows: scale profile vs DuckDB, PIT join + materialization at 1M rows (~12 min)
	$(PY) benchmarks/spark_bench.py --rows 1000000

.PHONY: bench-docs
bench-docs: setup ## Render docs/benchmarks.md and the figures of every page from benchmarks/results/
	$(PY) -m benchmarks.report

clean: ## Remove generated data, artifacts and environments
	rm -rf $(VENV) $(TOOLS) feature_repo/data artifacts .pytest_cache .ruff_cache .mypy_cache
