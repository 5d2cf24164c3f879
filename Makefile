# modscope — `make test` and `make demo` work on a fresh machine with only Python 3.11+ (3.11.0 or
# newer: `make lock-check` proves every pin below has a wheel for it).
PYTHON ?= python3
# The oldest Python the README states; `make lock-check` resolves the lock for it.
MIN_PYTHON := 3.11.0
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The CPU build of torch must go in first: an unpinned `torch` pulls gigabytes of CUDA wheels.
TORCH  := torch==2.13.0
# Every other library at the exact version CI passed with (`make lock` rewrites it from .venv).
LOCK   := constraints.txt

.PHONY: install test test-fast demo lint bench data clean browser docs lock lock-check

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) $(TORCH)
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev,distributed,community,onnx,keras,docs]'
	touch $(STAMP)

# The pinned versions of the current .venv, less modscope (editable), torch (TORCH above) and any
# NVIDIA / CUDA wheel, sorted; run after upgrading a library and passing `make test`, then commit.
lock:
	@test -x $(PY) || { echo "make lock: no $(VENV) to read; run make install first" >&2; exit 1; }
	@{ echo "# Exact versions of every library 'make install' installs besides torch (pinned in the"; \
	   echo "# Makefile) and modscope, as the test suite passed with them on Python 3.11."; \
	   echo "# Written by 'make lock' (pip freeze of .venv); do not edit by hand."; \
	   $(PY) -m pip freeze --exclude-editable \
	     | grep -v -i -E '^(torch|triton|nvidia-[a-z0-9_.-]*|cuda-[a-z0-9_.-]*)==' | grep -v ' @ ' \
	     | LC_ALL=C sort -f; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	@echo "wrote $(LOCK): $$(grep -c '==' $(LOCK)) pinned packages"

# Resolves the lock (torch, constraints.txt and every extra) for MIN_PYTHON on x86-64 Linux, without
# installing anything: fails when a pin needs a newer Python than the README states (e.g. a
# `Requires-Python >=3.11.5` wheel against Debian 12's 3.11.2). Needs PyPI, ~1 minute; .ci/run runs it.
# Uses .venv's pip, or (before `make install`) that of a throwaway venv of $(PYTHON).
LOCK_PLATFORMS := --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	--platform manylinux2014_x86_64 --platform linux_x86_64
lock-check:
	@TARGET=$$(mktemp -d); trap 'rm -rf "$$TARGET"' EXIT; \
	if test -x $(PY); then PIP="$(PY) -m pip"; \
	else $(PYTHON) -m venv "$$TARGET/venv" && PIP="$$TARGET/venv/bin/python -m pip" || exit 1; fi; \
	if $$PIP install --dry-run --ignore-installed --only-binary=:all: --implementation cp \
	  --python-version $(MIN_PYTHON) $(LOCK_PLATFORMS) --target "$$TARGET/site" \
	  -c $(LOCK) $(TORCH) '.[dev,distributed,community,onnx,keras,docs]' > "$$TARGET/log" 2>&1; \
	then echo "lock-check: $(TORCH) and $(LOCK) resolve for Python $(MIN_PYTHON)"; \
	else grep -E '^ERROR' "$$TARGET/log" >&2; \
	  echo "lock-check: $(LOCK) does not resolve for Python $(MIN_PYTHON) (see above)" >&2; exit 1; fi

# The documentation site (mkdocs.yml): --strict fails on any warning (a broken link or anchor, a
# missing snippet under docs/generated/, an unresolved API reference). Output in site/. Not --quiet:
# mkdocs-autorefs checks cross-references only while warnings are logged, so --quiet would let an
# unresolved [title][identifier] through as literal text.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The report test opens index.html in headless Chromium: installed from Debian when missing.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	    || command -v google-chrome >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "make browser: install Chromium; the report test needs it" >&2; exit 1; fi

# MODSCOPE_STRICT_EXTRAS=1: a test whose optional extra (igraph, Dask, ONNX, Chromium, ...) is
# missing fails instead of skipping (tests/conftest.py), so `make test` runs every test.
test: $(STAMP) browser lint docs
	MODSCOPE_STRICT_EXTRAS=1 $(PY) -m pytest -q -n 2 tests

# The tests less those marked `slow` (training runs, notebooks, the browser, a Dask cluster, the fuzz
# suite, real-network traces): a quick check while working. `make test` runs every test.
test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow" tests

demo: $(STAMP)
	$(VENV)/bin/modscope demo --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check modscope tests benchmarks experiments notebooks scripts
	$(VENV)/bin/lint-imports

# Every benchmark, one after another, each writing benchmarks/results/<name>.json (run on an idle
# machine; an hour or more on 2 cores). Each script takes --quick, a check that it runs.
BENCHES := startup cli_vs_script score_vs_sklearn community training_steps cluster_reg \
	masks_speed knockout_speed scaling tracing transformer_graphs knockout_any masks_any bimt_any plot_network \
	code_lines

bench: $(STAMP)
	@for b in $(BENCHES); do echo "== $$b"; $(PY) benchmarks/$$b.py || exit 1; done

data: $(STAMP)
	bash data/make_data.sh

clean:
	rm -rf $(VENV) modscope-report .pytest_cache
