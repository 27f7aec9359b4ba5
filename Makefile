# The two entry points a newcomer needs: `make demo` and `make test`.
# Each creates its own virtual environment (.venv) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit clean \
	bench-store bench-domains bench-saml bench-audit bench-scim bench-scim-floor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/nulabpass demo

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts

typecheck: $(VENV)/.installed
	$(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest -n 2 -q

test: lint typecheck unit

# Benchmarks (never part of `make test`); the anchors live in the `bench` extra.
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $@

bench-store: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_store.py

bench-domains: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_domains.py

bench-saml: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_saml.py

bench-audit: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_audit.py

bench-scim: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_scim.py

bench-scim-floor: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_scim_floor.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
