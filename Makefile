# Two commands set everything up on a fresh machine with Python 3.11:
#   make serve   — create .venv with the serving stack (no TensorFlow) and start the API
#   make test    — create .venv with training + dev + vectors extras and run the test suite
#                  (installs Debian's chromium + chromium-driver for the browser tests if missing)
# `make bench*` installs Debian's wrk (the load generator) if missing: scripts/ensure_debian.sh.
# Every install takes its versions from constraints.txt (the lock: what the tests ran on).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
LOCK   := constraints.txt
INSTALL := $(PIP) install --quiet --constraint $(LOCK)
PYTEST_ARGS ?=

.PHONY: help serve test test-ray lint format train bench bench-quick bench-ray containers audit clean lock
.DEFAULT_GOAL := help

help: ## this list
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps: reinstall only when pyproject.toml or the lock changes.
$(VENV)/.serve: pyproject.toml $(LOCK) | $(BIN)/python
	$(INSTALL) -e .
	@touch $@

$(VENV)/.dev: pyproject.toml $(LOCK) | $(BIN)/python
	$(INSTALL) -e ".[train,dev,vectors,teacher]"
	@touch $@ $(VENV)/.serve

# Ray Serve and Ray Data (the `ray` extra, about 570 MB): only for test-ray and bench-ray.
$(VENV)/.ray: pyproject.toml $(LOCK) $(VENV)/.dev
	$(INSTALL) -e ".[train,dev,vectors,teacher,ray]"
	@touch $@

serve: $(VENV)/.serve ## start the API on 127.0.0.1:8000 with the promoted models (SERVE_ARGS="--port 9000")
	$(BIN)/sentiment-serve $(SERVE_ARGS)

test: $(VENV)/.dev ## lint + the whole test suite (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	bash scripts/ensure_debian.sh "chromium chromedriver" chromium chromium-driver
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A real Ray cluster on this machine (a head and a worker node, separate `ray start`
# processes on 127.0.0.2/127.0.0.3, no dashboard): Ray Serve (both nodes answer, replica
# and node killed under load, a model update rolled under load, autoscaling up and down)
# and sentiment-score --ray (Ray Data). About 2 minutes on 2 cores; stopped (SIGTERM, which
# still tears the cluster down) after 10.
test-ray: $(VENV)/.ray ## a local two-node Ray cluster: Ray Serve and Ray Data tests (CI)
	timeout --kill-after=60 600 $(BIN)/python -m pytest tests/ray --ray-cluster $(PYTEST_ARGS)

lint: $(VENV)/.dev ## ruff check + format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.dev ## ruff fix + format
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

# Retrain the committed IMDB specialist's recipe into a new version under
# models/sentiment-lstm/: the defaults plus GloVe vectors, adversarial training and the n-gram
# branch, which won on validation (docs/training.md). Any TRAIN_ARGS replace these flags.
TRAIN_ARGS ?= --vectors glove-6b-50d --adversarial 0.5 --ngram-buckets 2097152
train: $(VENV)/.dev ## train a new version (TRAIN_ARGS="--config configs/general.toml")
	$(BIN)/sentiment-train $(TRAIN_ARGS)

bench: $(VENV)/.dev ## the full benchmark, ~9 min (BENCH_ARGS=...)
	bash scripts/ensure_debian.sh wrk wrk
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-quick: $(VENV)/.dev ## the benchmark in under 3 minutes
	bash scripts/ensure_debian.sh wrk wrk
	$(BIN)/python -m bench.run --quick $(BENCH_ARGS)

bench-ray: $(VENV)/.ray ## one process against Ray Serve, and the Ray hop (needs wrk)
	bash scripts/ensure_debian.sh wrk wrk
	$(BIN)/python -m bench.ray $(BENCH_ARGS)

containers: ## build both images and smoke-test them (podman where no Docker engine)
	bash docker/smoke-test.sh

# Known vulnerabilities in the installed dependencies (needs PyPI's and OSV's APIs, so it
# is not part of `make test`; --strict fails when a package could not be checked at all).
audit: $(VENV)/.dev ## known vulnerabilities in the dependencies (needs PyPI/OSV)
	$(BIN)/pip-audit --skip-editable --progress-spinner off --strict

clean: ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Re-resolve every dependency (base + all extras) to the newest versions pyproject.toml
# allows, in a fresh venv, and write them to constraints.txt. Then run `make test`.
lock: ## re-resolve every dependency into constraints.txt (then make test)
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet ".[train,dev,vectors,teacher,ray]"
	{ echo "# The lock: exact versions of every dependency, used as pip constraints by make,"; \
	  echo "# CI and both images. Regenerate with 'make lock' (then 'make test'); never by hand."; \
	  .lock-venv/bin/python -m pip freeze --exclude sentiment-lstm-service; } > $(LOCK)
	rm -rf .lock-venv
