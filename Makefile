# modscope — `make test` and `make demo` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# The CPU build of torch must go in first: an unpinned `torch` pulls gigabytes of CUDA wheels.
TORCH  := torch==2.13.0
# Every other library at the exact version CI passed with (`make lock` rewrites it from .venv).
LOCK   := constraints.txt

.PHONY: install test demo lint bench data clean browser docs lock

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) $(TORCH)
	$(PY) -m pip install -q -c $(LOCK) -e '.[dev,distributed,community,onnx,keras,docs,explore]'
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

# The documentation site (mkdocs.yml): --strict fails on any warning (a broken link or anchor, a
# missing snippet under docs/generated/, an unresolved API reference). Output in site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# The report test opens index.html in headless Chromium: installed from Debian when missing.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	    || command -v google-chrome >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	else echo "make browser: install Chromium; the report test needs it" >&2; exit 1; fi

test: $(STAMP) browser lint docs
	$(PY) -m pytest -q -n 2 tests

demo: $(STAMP)
	$(VENV)/bin/modscope demo --quick

lint: $(STAMP)
	$(VENV)/bin/ruff check modscope tests benchmarks experiments notebooks scripts
	$(VENV)/bin/lint-imports

# Every benchmark, one after another, each writing benchmarks/results/<name>.json (run on an idle
# machine; an hour or more on 2 cores). Each script takes --quick, a check that it runs.
BENCHES := startup cli_vs_script score_vs_sklearn community training_steps cluster_reg \
	masks_speed knockout_speed scaling tracing transformer_graphs knockout_any masks_any

bench: $(STAMP)
	@for b in $(BENCHES); do echo "== $$b"; $(PY) benchmarks/$$b.py || exit 1; done

data: $(STAMP)
	bash data/make_data.sh

clean:
	rm -rf $(VENV) modscope-report .pytest_cache
