# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-pretrained.txt pyproject.toml | sha1sum | cut -c1-12)
DATA ?=
WORKDIR ?= workdir
PROFILE ?= quick
# `make serve HOST=... PREFECT_PORT=... MLFLOW_PORT=... OPTUNA_PORT=...`; unset = the command's
# own defaults.
HOST ?=
PREFECT_PORT ?=
MLFLOW_PORT ?=
OPTUNA_PORT ?=

# Project state (Prefect's SQLite database and results) lives in the repo, not in ~. Other
# process defaults (OMP_WAIT_POLICY, Prefect's start-up timeout, ...) are applied by every entry
# point from flows/runtime/environment.py.
export PREFECT_HOME ?= $(CURDIR)/.state/prefect
# `python` in MLproject commands and Prefect workers is the project's venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install run test lint bench serve clean

$(STAMP): requirements.txt requirements-pretrained.txt pyproject.toml
	@# torch 2.9.1 from PyPI is the CUDA build: the venv takes about 9 GB. Say so in one line
	@# instead of pip's "No space left on device" half-way through.
	@$(PYTHON) -c "import shutil, sys; free = shutil.disk_usage('.').free / 2**30; free >= 6 or sys.exit(f'error: {free:.1f} GB free in $(CURDIR); make install needs about 9 GB (torch and its CUDA libraries)')"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements-pretrained.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)
	@mkdir -p "$(PREFECT_HOME)"  # Prefect creates only the last folder of its home

# musicnn's pretrained weights, converted from its hash-pinned wheel (tasks/audio/musicnn_weights.py);
# the step is idempotent and writes the manifest last, so a partial install is redone.
MUSICNN_WEIGHTS := $(or $(VAEMUSIC_WEIGHTS_DIR),.state/weights/musicnn)
MUSICNN_FILES := $(addprefix $(MUSICNN_WEIGHTS)/,MSD_musicnn.safetensors MTT_musicnn.safetensors musicnn.json)
$(MUSICNN_FILES) &: requirements-musicnn.txt | $(STAMP)
	$(BIN)/python -m tasks.audio.musicnn_weights
	touch $(MUSICNN_FILES)

install: $(MUSICNN_FILES)

# UMAP's numba functions compiled once into the venv's on-disk cache (tasks/evaluation/umap_compiled.py):
# otherwise every evaluation compiles them again (10 - 17 s).
UMAP_COMPILED := $(VENV)/.umap-compiled
$(UMAP_COMPILED): $(STAMP)
	$(BIN)/python -m tasks.evaluation.umap_compiled
	touch $@

install: $(UMAP_COMPILED)

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
	$(BIN)/python bench/pipeline.py --sizes 120

serve: install
	$(BIN)/python -m flows serve $(if $(HOST),--host $(HOST)) \
		$(if $(PREFECT_PORT),--prefect-port $(PREFECT_PORT)) $(if $(MLFLOW_PORT),--mlflow-port $(MLFLOW_PORT)) \
		$(if $(OPTUNA_PORT),--optuna-port $(OPTUNA_PORT))

clean:
	rm -rf $(WORKDIR) .state mlflow.db mlartifacts mlruns
