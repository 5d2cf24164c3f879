"""Render every table of results in the docs from the committed receipts: ``--check`` writes nothing
and exits 1 listing each fragment that differs (the code is the ``docsgen`` package beside this)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docsgen.filters import num, pct, table, times, widths_label, z_  # noqa: E402, F401
from docsgen.fragments import FRAGMENTS  # noqa: E402, F401
from docsgen.render import BEGIN, END, main, readme_region, render_all  # noqa: E402, F401

if __name__ == "__main__":
    sys.exit(main())
