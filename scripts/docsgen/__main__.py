"""``python -m docsgen [--check]`` from ``scripts/``: see ``docsgen.render.main``."""

import sys

from .render import main

sys.exit(main())
