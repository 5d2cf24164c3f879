"""One BLAS / OpenMP thread for a block of code, cheaply.

``threadpoolctl.threadpool_limits`` rescans every loaded library on each call (a few ms);
a controller made once and reused sets the limit in microseconds. Each clustering runs
inside it, so the cost would otherwise be paid per shuffle.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

from threadpoolctl import ThreadpoolController

__all__ = ["blas_threads", "maybe_single_thread", "single_thread"]


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    import numpy  # noqa: F401  (the libraries to control must be loaded first)
    import scipy.linalg  # noqa: F401

    return ThreadpoolController()


def single_thread():
    """Context manager: BLAS and OpenMP pools limited to one thread inside."""
    return _controller().limit(limits=1)


def blas_threads(n: int):
    """Context manager: BLAS and OpenMP pools limited to ``n`` threads inside (e.g. torch's own
    count, so that a scipy call inside a one-thread training loop stays on one thread)."""
    return _controller().limit(limits=max(1, int(n)))


def maybe_single_thread(flag: bool):
    return single_thread() if flag else contextlib.nullcontext()
