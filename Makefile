# modscope — `make test` and `make demo` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The CPU build of torch must go in first: an unpinned `torch` pulls gigabytes of CUDA wheels.
TORCH  := torch==2.13.0

.PHONY: install test demo lint bench data clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

demo: $(STAMP)
	$(VENV)/bin/modscope demo --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check modscope tests benchmarks experiments

bench: $(STAMP)
	$(PY) benchmarks/score_vs_sklearn.py

data: $(STAMP)
	bash data/make_data.sh

clean:
	rm -rf $(VENV) modscope-report .pytest_cache
