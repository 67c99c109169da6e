# cryopick: one command to try it, one to test it (see README).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEVSTAMP = $(VENV)/.installed-dev

.PHONY: demo test install install-dev clean bench

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

test: $(DEVSTAMP)  ## the test suite (CPU, a few minutes)
	$(BIN)/python -m pytest -p no:cacheprovider

clean:
	rm -rf $(VENV) demo_out .pytest_cache .hypothesis
