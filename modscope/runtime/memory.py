"""How much memory a new allocation can have now."""

from __future__ import annotations

import os
from contextlib import suppress

__all__ = ["available_memory"]


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (``MemAvailable``, else physical RAM)."""
    with suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
