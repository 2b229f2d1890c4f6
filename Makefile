# Two commands do all the set-up on a fresh machine with only Python 3.11+:
#   make run   - the whole stack (embedded broker + PostgreSQL, decider, projector, colony, root API)
#   make test  - unit, integration and end-to-end tests against a real broker and PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit test-integration test-e2e lint bench drills clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/velocity stack run

test: $(STAMP)
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test-e2e: $(STAMP)
	$(BIN)/pytest -q tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.ledger
	$(BIN)/python -m bench.projections
	$(BIN)/python -m bench.colony

drills: $(STAMP)
	$(BIN)/python -m bench.drills

clean:
	rm -rf $(VENV) .velocity .pytest_cache .mypy_cache .ruff_cache
