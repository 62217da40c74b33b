# switchboard: every target carries a ## comment; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SB := $(BIN)/switchboard
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.DEFAULT_GOAL := help
.PHONY: help install run serve test test-fast check lint format typecheck bench screenshots clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed ## Create .venv and install switchboard into it

run: $(VENV)/.installed ## Set up everything, seed the demo tenant and admin, start the server
	$(SB) init
	$(SB) demo
	$(SB) serve

serve: $(VENV)/.installed ## Start the server on the existing data (no seeding)
	$(SB) serve

test: $(VENV)/.installed-test check ## Install the test extras and run the whole suite (lint, types, layering, tests)
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-test ## Run the tests only, stopping at the first failure
	$(BIN)/python -m pytest -x -q

check: lint typecheck ## Lint, type-check and check the layering
	$(BIN)/lint-imports --no-cache

lint: $(VENV)/.installed-test ## ruff: lint and check formatting of what is formatted
	$(BIN)/ruff check core tui sshd presets tests

format: $(VENV)/.installed-test ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix core tui sshd presets tests
	$(BIN)/ruff format core tui sshd presets tests

typecheck: $(VENV)/.installed-test ## mypy --strict on core/
	$(BIN)/mypy

bench: $(VENV)/.installed-test ## Run the benchmarks and print their tables
	$(BIN)/python -m tests.bench

screenshots: $(VENV)/.installed-test ## Write SVG screenshots of the admin app (demo data) into docs/screenshots/
	$(BIN)/python -m tests.tui.screenshots docs/screenshots

clean: ## Remove the virtualenv and caches (not your data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
