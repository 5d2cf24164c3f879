# modscope — `make test` and `make demo` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The CPU build of torch must go in first: an unpinned `torch` pulls gigabytes of CUDA wheels.
TORCH  := torch==2.13.0

.PHONY: install test demo lint bench data clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,distributed,community,onnx,keras]'
	touch $(STAMP)

# The report test opens index.html in headless Chromium: installed from Debian when missing.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	    || command -v google-chrome >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "make browser: install Chromium; the report test needs it" >&2; exit 1; fi

test: $(STAMP) browser lint
	$(PY) -m pytest -q -n 2 tests

demo: $(STAMP)
	$(VENV)/bin/modscope demo --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check modscope tests benchmarks experiments notebooks
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) benchmarks/score_vs_sklearn.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/masks_speed.py

data: $(STAMP)
	bash data/make_data.sh

clean:
	rm -rf $(VENV) modscope-report .pytest_cache
