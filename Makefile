# flickr-assets: the two commands a newcomer needs are `make demo` and `make test`.
# Both create the virtual environment (.venv) and install the project on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: demo test test-fast ui lint bench install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s)" % sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the whole pipeline (records -> images -> catalog) on the bundled Flickr simulator.
demo: $(STAMP)
	$(BIN)/python -m flickr_assets.demo

## Run the test suite (installs Chromium for the UI test when it can).
test: $(STAMP)
	@scripts/install-chromium.sh
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not ui"

## The Dagster UI on http://127.0.0.1:3000 against the simulator (started alongside).
ui: $(STAMP)
	$(BIN)/python -m flickr_assets.demo --ui

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf data .simulator-cache artifacts
