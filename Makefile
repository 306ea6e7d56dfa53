# Two commands for a fresh machine: `make demo` and `make test` (each builds .venv itself).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml devtools/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -e ./devtools
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/thred-dev demo $(if $(PORT),--port $(PORT))

test: $(STAMP)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check thred_pipeline devtools/thred_devtools thred_pipeline_tests benchmarks
	$(BIN)/ruff format --check thred_pipeline devtools/thred_devtools thred_pipeline_tests benchmarks
	$(BIN)/mypy thred_pipeline devtools/thred_devtools

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .thred .pytest_cache .mypy_cache .ruff_cache
