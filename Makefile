# Two commands do all the set-up on a fresh machine:
#   make demo   the whole story on the embedded AWS endpoint
#   make test   lint, type-check and the test suite (what CI runs)
PYTHON ?= python3
SHELL := bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck volume chaos-large bench ministack clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/northmigrate demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Lint, then the type check beside one pytest session: the suite on moto's server and the
# volume tests that CI runs on ministack (volume_ci), longest first on every core (see
# tests/conftest.py). Each fails the target; so does a pytest that ran no test (exit 5).
PYTEST_CI := NORTHMIGRATE_REQUIRE_MINISTACK=1 $(BIN)/python -m pytest -q -m 'not volume or volume_ci'

# The two environments are made side by side (-j2): ministack's install, about 16 s, fits
# inside the project's, about 70 s on a fresh machine.
# The package is byte-compiled first: where PYTHONDONTWRITEBYTECODE is set (this CI machine
# sets it) every CLI process the tests start would compile it again, 0.4 s of CPU each.
# For the same reason one collection writes pytest's rewritten test modules first (pytest
# keeps them beside the ordinary bytecode, and only when it may write): each of the nine
# processes of the run then collects in about 3 s of CPU instead of 8.
test:
	@$(MAKE) --no-print-directory -j2 lint ministack
	@$(BIN)/python -m compileall -q -j 0 northmigrate tests bench
	@logs=$$(mktemp -d); \
	$(BIN)/mypy > "$$logs/mypy" 2>&1 & mypy_pid=$$!; \
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest --collect-only -q -n 0 \
		-m 'not volume or volume_ci' > /dev/null 2>&1 || true; \
	echo "$(PYTEST_CI) $(PYTEST_ARGS)"; \
	$(PYTEST_CI) $(PYTEST_ARGS) 2>&1 | tee "$$logs/pytest"; tests=$${PIPESTATUS[0]}; \
	wait $$mypy_pid; typed=$$?; \
	echo "$(BIN)/mypy"; cat "$$logs/mypy"; \
	tail -n 1 "$$logs/pytest"; rm -rf "$$logs"; \
	if [ $$tests -eq 5 ]; then echo "pytest ran no test (exit 5): a failure" >&2; fi; \
	if [ $$tests -ne 0 ] || [ $$typed -ne 0 ]; then \
		echo "make test: pytest exited $$tests, mypy $$typed" >&2; exit 1; \
	fi

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
	$(BIN)/python bench/shards.py

clean:
	rm -rf $(VENV) .venv-ministack .pytest_cache .mypy_cache .ruff_cache
