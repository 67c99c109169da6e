# cryopick: one command to try it, one to test it (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEVSTAMP = $(VENV)/.installed-dev

.PHONY: demo test test-fast install install-dev clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(DEVSTAMP): $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(STAMP)
install-dev: $(DEVSTAMP)

demo: $(STAMP)  ## simulate, train, self-train, pick, evaluate, compare, report (CPU, a few minutes)
	$(BIN)/cryopick demo --out demo_out

# extra pytest arguments, e.g. a tier: PYTEST_ARGS='-m "not slow"' or PYTEST_ARGS='-m slow'
PYTEST_ARGS ?=

test: $(DEVSTAMP)  ## the whole test suite, slow tests included (CPU, a few minutes)
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(DEVSTAMP)  ## the suite without the tests marked slow (end-to-end training runs)
	$(MAKE) --no-print-directory test PYTEST_ARGS='-m "not slow"'

clean:
	rm -rf $(VENV) demo_out .pytest_cache .hypothesis
