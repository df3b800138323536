# The two commands a newcomer needs:  make demo   and   make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup lint migration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Run the whole pipeline on the local defaults (SQLite, Maildir, an SMTP sink under ./var).
demo: $(STAMP)
	$(BIN)/pcse demo

## Run the test suite against real Dovecot, PostgreSQL, SMTP and Chromium.
test: $(STAMP)
	./scripts/system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Write the next migration after changing the models: make migration MSG="what changed"
migration: $(STAMP)
	$(BIN)/python scripts/new_migration.py "$(MSG)"
	$(BIN)/ruff format -q service/migrations/versions
	$(BIN)/ruff check -q --fix service/migrations/versions

clean:
	rm -rf var .pytest_cache
