# InsightOS — the front door. `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
KERNEL := insightos
PYTEST_ARGS ?=
RUN_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help setup data ingest reproduce run score test test-slow lint format bench lab schedule clean

help: ## list every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-11s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "InsightOS (.venv)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP) ## create .venv/ and install the package editable with its dev extras and Jupyter kernel

data: $(STAMP) ## write the default synthetic company (10,000 users) to data/raw/
	$(BIN)/insightos synth --out data/raw

ingest: $(STAMP) ## validate and type data/raw/ into data/processed/
	$(BIN)/insightos ingest --raw data/raw --out data/processed

reproduce: $(STAMP) ## the main job from scratch: synthetic data, then `insightos run` (reports/latest/)
	$(BIN)/insightos synth --out data/raw
	$(BIN)/insightos run --raw data/raw $(RUN_ARGS)

run: $(STAMP) ## `insightos run` on the configured data (insightos.toml), no regeneration
	$(BIN)/insightos run $(RUN_ARGS)

score: $(STAMP) ## score the open leads with the latest champion, no retraining
	$(BIN)/insightos run --score-only $(RUN_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check and the type checker (mypy on src/)
	$(BIN)/ruff check src tests benchmarks notebooks
	$(BIN)/ruff format --check src tests benchmarks notebooks
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks notebooks
	$(BIN)/ruff format src tests benchmarks notebooks

test: lint ## lint, then the whole test suite (notebooks executed headlessly included)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(STAMP) ## the extended checks the default suite leaves out (Spark engine cases)
	$(BIN)/python -m pytest -m extended $(PYTEST_ARGS)

bench: $(STAMP) ## speed and memory benchmarks; figures go to reports/benchmarks.json
	@set -e; for script in benchmarks/bench_*.py; do \
	  echo "== $$script"; $(BIN)/python $$script; done
	@echo "figures in reports/benchmarks.json"

lab: $(STAMP) ## JupyterLab on the repository, with the project's kernel
	$(BIN)/jupyter lab --notebook-dir=.

schedule: $(STAMP) ## print crontab lines for scoring and retraining (INSTALL=1 installs them)
	$(BIN)/python -m insightos_utils.schedule $(if $(INSTALL),--install,)

clean: ## remove generated data, models and reports (keeps .venv/)
	rm -rf data/processed/* data/raw/*.csv data/raw/*.parquet models reports/runs reports/latest reports/index.html
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
