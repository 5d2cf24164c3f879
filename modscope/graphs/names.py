"""How tensor names are read: natural order and which tensors are lookup tables, not layers."""

from __future__ import annotations

import re

__all__ = ["EMBEDDING", "natural_key"]

# Learned lookup tables are not layers of the unit graph.
EMBEDDING = re.compile(r"(^|[._])(embed|embedding|embeddings|emb|wte|wpe)([._]|$)", re.IGNORECASE)


def natural_key(name: str) -> list:
    """Sort key that orders ``layers.2`` before ``layers.10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
