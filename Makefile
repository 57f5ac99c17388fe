# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
DATA ?=
WORKDIR ?= workdir
PROFILE ?= quick
HOST ?= 127.0.0.1
PREFECT_PORT ?= 4200
MLFLOW_PORT ?= 5000

# Project state (Prefect's SQLite database and results) lives in the repo, not in ~.
export PREFECT_HOME ?= $(CURDIR)/.state/prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PYTHONPATH := $(CURDIR)
export OMP_WAIT_POLICY ?= PASSIVE
# `python` in MLproject commands and Prefect workers is the project's venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test lint bench serve clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip check
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)
	@mkdir -p "$(PREFECT_HOME)"  # Prefect creates only the last folder of its home

run: install
	$(BIN)/python -m flows run $(DATA) --workdir $(WORKDIR) --profile $(PROFILE)

test: install
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

lint: install
	$(BIN)/python -m ruff check . && $(BIN)/python -m ruff format --check .

bench: install
	$(BIN)/python bench/features.py
	$(BIN)/python bench/train.py

serve: install
	$(BIN)/python -m flows serve --host $(HOST) --prefect-port $(PREFECT_PORT) --mlflow-port $(MLFLOW_PORT)

clean:
	rm -rf $(WORKDIR) .state mlflow.db mlartifacts mlruns
