# Two commands do all the set-up on a fresh machine with only Python 3.11+:
#   make run   - the whole stack (embedded broker + PostgreSQL, decider, projector, colony, root API)
#   make test  - unit, integration and end-to-end tests against a real broker and PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests run in this many pytest-xdist workers, each with its own broker, PostgreSQL and
# stacks; an idle worker takes tests queued on a busy one (worksteal), so the long
# schemathesis runs do not leave one worker finishing alone.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(TEST_WORKERS) --dist worksteal

.PHONY: install tools run test test-unit test-integration test-e2e lint bench bench-console bench-metrics bench-soak drills clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests drive: Chromium (the console, through Playwright; no browser
# download), Prometheus (promtool, and a real Prometheus scraping the stack) and
# Alertmanager (amtool checks the alert routes of ownership.toml).
TOOLS := chromium:chromium promtool:prometheus amtool:prometheus-alertmanager
tools:
	@for pair in $(TOOLS); do command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian's$$missing for the tests (apt-get, needs root)"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

run: $(STAMP)
	$(BIN)/velocity stack run

test: $(STAMP) tools
	$(PYTEST)

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-integration: $(STAMP) tools
	$(PYTEST) tests/integration

test-e2e: $(STAMP) tools
	$(PYTEST) tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	rm -f .velocity/bench.json
	$(BIN)/python -m bench.ledger
	$(BIN)/python -m bench.projections
	$(BIN)/python -m bench.colony
	$(BIN)/python -m bench.metrics
	$(BIN)/python -m bench.results

bench-soak: $(STAMP)
	$(BIN)/python -m bench.soak
	$(BIN)/python -m bench.colony_soak

bench-metrics: $(STAMP)
	$(BIN)/python -m bench.metrics

bench-console: $(STAMP)
	$(BIN)/python -m bench.console

drills: $(STAMP)
	$(BIN)/python -m bench.drills

clean:
	rm -rf $(VENV) .velocity .pytest_cache .mypy_cache .ruff_cache
