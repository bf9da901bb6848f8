# The two commands of the README: `make run` and `make test`.
# Everything else here is a step they depend on.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= var

.PHONY: run test lint typecheck check bench-store clean

run: $(VENV)/.installed
	$(BIN)/mailwarden --data-dir $(DATA_DIR) serve

test: $(VENV)/.installed-dev
	scripts/install-test-deps
	PYTEST_NO_SKIPS=1 $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: lint test

bench-store: $(VENV)/.installed-dev
	$(BIN)/python bench/store.py

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python requirements.lock pyproject.toml
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(BIN)/pip install -q -r requirements-dev.lock
	touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info
