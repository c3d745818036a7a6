# The two commands of the Quickstart: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check lint typecheck unit install install-all clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Light install: embedded engines only.
install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

# Everything the test suite exercises: PostgreSQL, MySQL, Kafka, Spark drivers and dev tools.
install-all: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all]'

demo: install
	$(BIN)/c360 demo $(ARGS)

test: install-all
	$(MAKE) check

check: lint typecheck unit

# ruff (style, and drivers only in their adapter: TID251), then the import contracts: layers
# import one way and each driver stays in its one module (pyproject's [tool.importlinter]).
lint:
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck:
	$(BIN)/mypy

unit:
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info .pytest_cache .mypy_cache .ruff_cache
