# agentrm-gym: `make demo` runs the main job, `make test` runs the tests. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so that pip takes the CPU wheel on this machine instead of a multi-GB CUDA build.
TORCH := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: all install demo test test-fast bench lint clean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

# Re-install only when the project metadata changes (the stamp is newer than pyproject.toml otherwise).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/agentrm demo --out runs/demo

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: install
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: install
	$(BIN)/ruff check agentrm_gym tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
