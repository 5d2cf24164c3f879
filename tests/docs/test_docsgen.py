"""The docs renderer as a package (issue 23): one template per fragment under docs/templates/,
every template used, the prose there and not in Python, and a missing receipt named with the
command the Makefile's python runs its script with."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from docsgen import filters  # noqa: E402
from docsgen.fragments import FRAGMENTS, makefile_python  # noqa: E402
from docsgen.render import TEMPLATES, render_one  # noqa: E402


def test_every_fragment_has_its_template_and_every_template_is_used():
    used = {f.template for f in FRAGMENTS} | {"footer.md.j2", "missing.md.j2"}
    on_disk = {p.name for p in TEMPLATES.glob("*.j2")}
    assert used == on_disk


def test_a_missing_receipt_names_the_script_run_by_the_makefiles_python(tmp_path):
    assert makefile_python() == ".venv/bin/python"  # PY := $(VENV)/bin/python, VENV := .venv
    frag = next(f for f in FRAGMENTS if f.name == "bench_tracing")
    text = render_one(frag, tmp_path)
    assert text == (
        "_No receipt committed yet: `benchmarks/results/tracing.json`. It is made by "
        "`.venv/bin/python benchmarks/tracing.py`._\n"
    )


def test_the_row_filter_escapes_pipes_and_newlines_and_dashes_what_is_missing():
    assert filters.header(["a|b", "c"]) == "| a\\|b | c |\n|---|---|"
    assert filters.row([1, "x\ny"]) == "| 1 | x y |"
    assert filters.spread({"median": 0.5, "min": 0.25, "max": 1.0, "runs": [1, 2]}, 1, 1e3) == (
        "500.0 (250.0 to 1000.0, 2 runs)"
    )
    assert filters.spread({"median": None, "runs": []}, 2) == filters.DASH
    assert filters.sec(7200) == "7,200 s (2.0 h)"
    assert filters.dash(0) == 0 and filters.dash(None) == filters.DASH
