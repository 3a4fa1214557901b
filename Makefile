# Two commands set everything up on a fresh machine with Python 3.11:
#   make serve   — create .venv with the serving stack (no TensorFlow) and start the API
#   make test    — create .venv with training + dev extras and run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: serve test lint format train bench bench-quick containers audit clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps: reinstall only when pyproject.toml changes.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[train,dev]"
	@touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	$(BIN)/sentiment-serve $(SERVE_ARGS)

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Retrain the default configuration into a new version under models/sentiment-lstm/.
train: $(VENV)/.dev
	$(BIN)/sentiment-train $(TRAIN_ARGS)

bench: $(VENV)/.dev
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: $(VENV)/.dev
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

containers:
	bash docker/smoke-test.sh

# Known vulnerabilities in the installed dependencies (needs PyPI's and OSV's APIs, so it
# is not part of `make test`; --strict fails when a package could not be checked at all).
audit: $(VENV)/.dev
	$(BIN)/pip-audit --skip-editable --progress-spinner off --strict

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
