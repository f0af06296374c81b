# Two commands do all the set-up on a fresh machine:
#   make demo   the whole story on the embedded AWS endpoint
#   make test   lint, type-check and the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck volume chaos-large bench ministack clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/northmigrate demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q

# The emulator for volume tests and benchmarks, in its own environment (it pins botocore).
.venv-ministack/.installed:
	$(PYTHON) -m venv .venv-ministack
	.venv-ministack/bin/python -m pip install --quiet ministack
	touch .venv-ministack/.installed

ministack: .venv-ministack/.installed

volume: $(STAMP) ministack
	$(BIN)/python -m pytest -q -m volume

chaos-large: $(STAMP) ministack
	NORTHMIGRATE_CHAOS=large $(BIN)/python -m pytest -q -n 0 -s -m chaos

bench: $(STAMP) ministack
	$(BIN)/python bench/enqueue.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/redrive.py

clean:
	rm -rf $(VENV) .venv-ministack .pytest_cache .mypy_cache .ruff_cache
