"""Receipts: every number modscope publishes sits in a JSON that says how it was made.

A receipt holds the ``command`` that wrote it, its ``settings``, modscope's ``version``, the UTC
``date``, a ``machine`` note (CPU, cores, memory, load, library versions, thread settings) and the
``results``. Experiments and benchmarks write their JSON through `write_receipt`; the docs render
their tables from these files.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from .._version import __version__
from .atomic import write_json
from .jsonable import to_jsonable

__all__ = ["machine_note", "receipt", "write_receipt"]

_LIBRARIES = ("numpy", "scipy", "torch", "sklearn", "networkx", "igraph", "leidenalg")


def _cpu_model() -> str:
    with suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_note() -> dict[str, Any]:
    """What a number measured here depends on: the CPU, the cores, memory, load, versions."""
    note: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "threads_env": {
            k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
        },
    }
    with suppress(OSError):
        note["load_average"] = [round(x, 2) for x in os.getloadavg()]
    with suppress(ValueError, OSError):
        note["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    # only the libraries the run used: importing others would change its timing
    loaded = {lib: sys.modules[lib] for lib in _LIBRARIES if lib in sys.modules}
    note["libraries"] = {lib: str(getattr(m, "__version__", "?")).split("+")[0] for lib, m in loaded.items()}
    return note


def receipt(
    results: Any, *, settings: dict[str, Any], command: str | Sequence[str] | None = None, note: str = ""
) -> dict[str, Any]:
    """The receipt dict: ``command`` (default: this process's), ``settings``, ``version``, ``date``,
    ``machine``, ``note`` (free text, e.g. "machine shared with a test run") and ``results``."""
    if command is None:
        command = [Path(sys.executable).name, *sys.argv]
    if not isinstance(command, str):
        command = " ".join(shlex.quote(str(c)) for c in command)
    return to_jsonable(
        {
            "command": command,
            "settings": settings,
            "version": __version__,
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d"),
            "machine": machine_note(),
            "note": note,
            "results": results,
        }
    )


def write_receipt(path: str | os.PathLike, results: Any, **kwargs: Any) -> Path:
    """Write `receipt` ``(results, **kwargs)`` to ``path`` atomically."""
    return write_json(path, receipt(results, **kwargs))
