# Two commands do all the set-up on a fresh machine with only Python 3.11+:
#   make run   - the whole stack (embedded broker + PostgreSQL, decider, projector, colony, root API)
#   make test  - unit, integration and end-to-end tests against a real broker and PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser run test test-unit test-integration test-e2e lint bench bench-console drills clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The console's browser tests drive Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the console's browser tests (apt-get, needs root)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

run: $(STAMP)
	$(BIN)/velocity stack run

test: $(STAMP) browser
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test-e2e: $(STAMP) browser
	$(BIN)/pytest -q tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.ledger
	$(BIN)/python -m bench.projections
	$(BIN)/python -m bench.colony

bench-console: $(STAMP)
	$(BIN)/python -m bench.console

drills: $(STAMP)
	$(BIN)/python -m bench.drills

clean:
	rm -rf $(VENV) .velocity .pytest_cache .mypy_cache .ruff_cache
