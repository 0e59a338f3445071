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

# OpenRLHF pins flash-attn (CUDA) and deepspeed, so it cannot be an extra: its agent interface, which imports
# with --no-deps, goes to a directory of its own that only the adapter's tests add to sys.path
# (docs/rl_adapters.md). A failed download leaves those tests skipped with the reason.
OPENRLHF := $(VENV)/openrlhf-agent
$(OPENRLHF)/.installed: | $(VENV)/.installed
	-$(BIN)/pip install -q --no-deps --target $(OPENRLHF) openrlhf aiohttp pylatexenc aiohappyeyeballs aiosignal \
		frozenlist multidict propcache yarl && rm -rf $(OPENRLHF)/tests && touch $@

demo: install
	$(BIN)/agentrm demo --out runs/demo

test: install $(OPENRLHF)/.installed
	AGENTRM_OPENRLHF_PATH=$(OPENRLHF) $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: install
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: install
	$(BIN)/ruff check agentrm_gym tests benchmarks examples

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
