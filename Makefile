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

# The suite on moto's server, then the volume tests on ministack (CI runs both).
test: lint typecheck ministack
	$(BIN)/python -m pytest -q -m "not volume"
	NORTHMIGRATE_REQUIRE_MINISTACK=1 $(BIN)/python -m pytest -q -n 2 -m volume \
		tests/integration/test_volume.py tests/integration/test_deploy_ministack.py \
		tests/integration/test_guard_ministack.py tests/integration/test_bench.py

# The emulator for volume tests and benchmarks, in its own environment (it pins botocore).
MINISTACK_VERSION := 1.5.33
MINISTACK_STAMP := .venv-ministack/.installed-$(MINISTACK_VERSION)

$(MINISTACK_STAMP):
	rm -rf .venv-ministack
	$(PYTHON) -m venv .venv-ministack
	.venv-ministack/bin/python -m pip install --quiet 'ministack==$(MINISTACK_VERSION)'
	touch $(MINISTACK_STAMP)

ministack: $(MINISTACK_STAMP)

volume: $(STAMP) ministack
	$(BIN)/python -m pytest -q -m volume

chaos-large: $(STAMP) ministack
	NORTHMIGRATE_CHAOS=large $(BIN)/python -m pytest -q -n 0 -s -m chaos

bench: $(STAMP) ministack
	$(BIN)/python bench/enqueue.py
	$(BIN)/python bench/enqueue_cpu.py
	$(BIN)/python bench/worker.py
	$(BIN)/python bench/redrive.py
	$(BIN)/python bench/guard.py

clean:
	rm -rf $(VENV) .venv-ministack .pytest_cache .mypy_cache .ruff_cache
