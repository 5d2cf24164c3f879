"""Null samples whose eigenproblems are solved in batches on a torch device (a GPU).

`TorchBatchExecutor` is an executor for the scoring engine: for the n-cut of a spectral
clusterer against weight shuffles it builds ``batch_size`` shuffled graphs on the CPU exactly as
the plain path does, solves their Gram eigenproblems as one stack with ``torch.linalg.eigh`` on
``device`` (`modscope.clustering.batched`), then runs the k-means restarts per graph with the
same seeds. Eigenvalues agree with the plain path to rounding and eigenvector signs are fixed the
same way, so labels and n-cuts are the same (tested bit for bit on small graphs; where a top
singular value repeats, e.g. a shuffled graph in pieces, any basis of its eigenspace is right and
the two paths may pick different ones). On a CPU it is slower than the plain path (a full
``eigh`` against LAPACK's top-k subset): it is meant for GPUs. Anything it cannot batch (another
measure or null, a graph with fewer than ``k`` non-zero singular values) runs the plain way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..clustering.batched import batched_singular
from ..clustering.spectral import SpectralClusterer
from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from ..nulls import Null, WeightShuffleNull
from ..runtime.executors import LocalExecutor
from ..runtime.modules import resolve_device
from ..runtime.seeds import child_seed
from ..runtime.threads import single_thread
from .engine import null_value
from .measures import Measure, NcutMeasure

__all__ = ["TorchBatchExecutor"]


class TorchBatchExecutor:
    """Batched eigensolves of null samples on ``device``, ``batch_size`` graphs at a time."""

    def __init__(self, device: str = "cpu", batch_size: int = 16) -> None:
        self.device = device
        self.batch_size = batch_size

    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator:
        return LocalExecutor(1).map(fn, items, *shared)

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]:
        return LocalExecutor(1).as_completed(fn, items, *shared)

    def null_values(
        self, graph: WeightGraph, null: Null, measure: Measure, seeds: Sequence[np.random.SeedSequence]
    ) -> Iterator[float]:
        """The measure on the samples seeded by ``seeds``, in order (see `null_values`)."""
        if (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int | np.integer)
            or self.batch_size < 1
        ):
            raise ModscopeError(f"the batch size must be an integer >= 1, got {self.batch_size!r}")
        device = resolve_device(self.device)
        clusterer = measure.clusterer if isinstance(measure, NcutMeasure) else None
        batchable = (
            isinstance(null, WeightShuffleNull)
            and isinstance(clusterer, SpectralClusterer)
            and clusterer.eigen_solver in ("auto", "bipartite", "iterative")
        )
        if not batchable:
            yield from self.map(null_value, seeds, graph, null, measure)
            return
        one = clusterer.with_threads(1)
        for start in range(0, len(seeds), self.batch_size):
            chunk = seeds[start : start + self.batch_size]
            with single_thread():
                graphs = [null.sample(graph, child_seed(ss, 0)) for ss in chunk]
                solved = batched_singular(graphs, clusterer.n_clusters, device)
                for ss, g, found in zip(chunk, graphs, solved, strict=True):
                    if found is None:
                        yield null_value(graph, null, measure, ss)
                        continue
                    emb, eigenvalues, nodes = found
                    yield one.partition_embedded(g, emb, eigenvalues, nodes, child_seed(ss, 1)).ncut
