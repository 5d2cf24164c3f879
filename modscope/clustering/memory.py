"""How much memory scoring a network takes, checked before anything large is allocated."""

from __future__ import annotations

import numpy as np

from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from ..runtime.memory import available_memory
from .embedding import ITERATIVE_SIDE, gram_side

__all__ = ["check_memory", "memory_estimate"]


def _shape(source) -> tuple[int, int, int | None, str]:
    """``(E weights, n nodes, m Gram-side nodes or None, description)`` of widths or a graph."""
    if isinstance(source, WeightGraph):
        side = gram_side(source)
        m = None if side is None else int(sum(source.sizes[g] for g in side))
        what = "-".join(map(str, source.sizes)) if source.is_chain else f"{source.n_nodes}-unit"
        return sum(int(w.size) for w in source.weights), source.n_nodes, m, what
    w = np.asarray(source, dtype=np.int64)
    what = "-".join(str(int(x)) for x in w)
    return int((w[:-1] * w[1:]).sum()), int(w.sum()), int(min(w[::2].sum(), w[1::2].sum())), what


def memory_estimate(source, jobs: int = 1) -> int:
    """Peak bytes to cluster a network (a chain's widths, or a `WeightGraph`) and run ``jobs``
    null samples at once.

    Counted in float64 words of ``E`` weights, ``n`` nodes and ``m`` nodes on the smaller
    bipartite side: the graph's weights and |weights| (2E), the loaded source (E); per
    clustering one scaled copy of the weights and a Gram matrix with its eigensolver copy
    (E + 2 m^2) where the Gram path is taken, a few vectors on the Lanczos path; a graph that is
    not bipartite is solved on its sparse adjacency (3 E for the symmetric CSR) or densely
    (2 n^2) when small; per concurrent sample a shuffled copy, its |weights| and the
    permutation's temporary (3E).
    """
    edges, n, m, _ = _shape(source)
    if m is None:
        cluster = 2 * n * n if n <= 6000 else 3 * edges + 64 * n
    else:
        cluster = edges + 2 * m * m if m <= ITERATIVE_SIDE else 64 * n
    return 8 * (3 * edges + cluster + max(jobs, 1) * (3 * edges + cluster))


def check_memory(source, jobs: int = 1) -> None:
    """Raise `ModscopeError` when `memory_estimate` exceeds the memory available now."""
    need, have = memory_estimate(source, jobs), available_memory()
    if need > have:
        raise ModscopeError(
            f"a {_shape(source)[3]} network needs about {need / 2**30:.1f} GiB to score with {max(jobs, 1)} "
            f"concurrent shuffle(s), but only {have / 2**30:.1f} GiB of memory is available"
        )
