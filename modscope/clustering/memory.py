"""How much memory scoring a network takes, checked before anything large is allocated."""

from __future__ import annotations

import numpy as np

from ..errors import ModscopeError
from ..runtime.memory import available_memory
from .embedding import ITERATIVE_SIDE

__all__ = ["check_memory", "memory_estimate"]


def memory_estimate(layer_widths, jobs: int = 1) -> int:
    """Peak bytes to cluster a network of these widths and run ``jobs`` shuffles at once.

    Counted in float64 words of ``E`` weights (``n_l n_{l+1}`` summed), ``n`` nodes and ``m``
    nodes on the smaller bipartite side: the graph's weights and |weights| (2E), the loaded
    source (E); per clustering the normalised weights and a Gram matrix with its eigensolver
    copy (E + 2 m^2) where the dense path is taken, a few vectors otherwise; per concurrent
    shuffle a shuffled copy, its |weights| and the permutation's temporary (3E).
    """
    w = np.asarray(layer_widths, dtype=np.int64)
    edges = int((w[:-1] * w[1:]).sum())
    m = int(min(w[::2].sum(), w[1::2].sum()))
    cluster = edges + 2 * m * m if m <= ITERATIVE_SIDE else 64 * int(w.sum())
    return 8 * (3 * edges + cluster + max(jobs, 1) * (3 * edges + cluster))


def check_memory(layer_widths, jobs: int = 1) -> None:
    """Raise `ModscopeError` when `memory_estimate` exceeds the memory available now."""
    need, have = memory_estimate(layer_widths, jobs), available_memory()
    if need > have:
        widths = "-".join(str(int(x)) for x in layer_widths)
        raise ModscopeError(
            f"a {widths} network needs about {need / 2**30:.1f} GiB to score with {max(jobs, 1)} "
            f"concurrent shuffle(s), but only {have / 2**30:.1f} GiB of memory is available"
        )
