"""The spectral path of a score on a torch device (a GPU), whole and in batches.

`TorchBatchExecutor` is an executor for the scoring engine. For the n-cut of a spectral clusterer
against a null (weight shuffles, unit permutations, ...) it draws ``batch_size`` null graphs at a
time (on host threads, from the same seeds and generators as the plain path, so the samples are
the same graphs), solves their
Gram eigenproblems as one stack on ``device`` (`modscope.clustering.batched`), and runs every
k-means restart of every graph of the batch at once as tensor ops
(`modscope.clustering.kmeans_torch`), with the random numbers the plain path draws. The network's
own clustering (`evaluate`) runs the same way; a graph that is not a layered chain (a whole
transformer's merged stream) is embedded by subspace iteration on its sparse normalised
adjacency on the device. Eigenvalues agree with the plain path to rounding and eigenvector signs
are fixed the same way, so labels and n-cuts are the same (tested on the CPU through the same
code; where a top singular value repeats, e.g. a shuffled graph in pieces, any basis of its
eigenspace is right and the two paths may pick different ones). Anything it cannot batch (another
measure or null, a graph with fewer than ``k`` non-zero singular values) runs the plain way.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..clustering.batched import batched_singular, device_embedding
from ..clustering.kmeans_torch import kmeans_restarts_torch
from ..clustering.spectral import SpectralClusterer
from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from ..nulls import Null
from ..runtime.executors import LocalExecutor
from ..runtime.modules import resolve_device
from ..runtime.seeds import child_seed, int_seed
from ..runtime.threads import single_thread
from .measures import Measure, NcutMeasure
from .sample import null_value

__all__ = ["HOST_BATCH", "TorchBatchExecutor"]

# Host memory a batch of shuffled graphs may take (bytes); the batch drawn ahead takes as much again.
HOST_BATCH = 5 * 2**30


class TorchBatchExecutor(LocalExecutor):
    """The spectral path on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``), ``batch_size`` null
    graphs at a time (default: 16, fewer where 16 shuffled graphs would not fit in `HOST_BATCH`
    bytes of host memory); ``threads`` host threads draw the shuffles (default: every core);
    ``solver`` the device eigensolver (`modscope.clustering.batched.batched_singular`). After a run,
    ``timings_`` holds the seconds spent waiting for shuffles, in eigensolves, in k-means and n-cuts
    and in samples that ran the plain way (``n_fallbacks`` of them), summed over its runs. Any other
    unit of work (``map``, ``as_completed``) runs here, in this process, as ``LocalExecutor(1)`` runs it."""

    def __init__(
        self, device: str = "cpu", batch_size: int | None = None, threads: int | None = None,
        solver: str = "auto",
    ) -> None:
        super().__init__(1)
        self.device, self.batch_size, self.threads, self.solver = device, batch_size, threads, solver

    def _setup(self, measure: Measure) -> tuple[Any, SpectralClusterer | None]:
        """``(device, clusterer)``: the device (the batch size checked first), and the spectral
        clusterer this executor runs there, or ``None`` (the plain path)."""
        n = self.batch_size
        if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
            raise ModscopeError(f"the batch size must be an integer >= 1, got {n!r}")
        device = resolve_device(self.device)
        clusterer = measure.clusterer if isinstance(measure, NcutMeasure) else None
        solvers = ("auto", "bipartite", "iterative")
        batched = isinstance(clusterer, SpectralClusterer) and clusterer.eigen_solver in solvers
        return device, clusterer if batched else None

    def _batch(self, graph: WeightGraph) -> int:
        """Null graphs per batch: ``batch_size``, or by default 16, fewer for graphs so large that
        a batch (their weights, |W| and the stack sent to the device: 24 bytes an edge) and the
        one drawn ahead would pass `HOST_BATCH` bytes (a LLaMA-7B MLP block: 2 at a time)."""
        if self.batch_size is not None:
            return int(self.batch_size)
        return int(min(16, max(1, HOST_BATCH // (24 * max(graph.n_edges, 1)))))

    def _partitions(
        self, clusterer: SpectralClusterer, graphs: list, found: list, seeds: list, device: Any, pool=None
    ) -> list:
        """Partitions of ``graphs`` from their embeddings ``found``: every k-means restart of every
        graph as one batch per embedding shape on ``device``, each graph's generator from its seed in
        ``seeds``."""
        k = clusterer.n_clusters
        if clusterer.assign_labels == "cluster_qr":
            one = clusterer.with_threads(1)
            return [
                one.partition_embedded(g, emb, ev, nodes, ss)
                for g, (emb, ev, nodes), ss in zip(graphs, found, seeds, strict=True)
            ]
        out: list = [None] * len(graphs)
        shapes: dict[tuple, list[int]] = {}
        for i, (emb, _, _) in enumerate(found):
            shapes.setdefault(emb.shape, []).append(i)
        for (n, _), same_shape in shapes.items():
            restarts = clusterer.settings(n)["restarts"]
            labels, inertia = _with_oom_message(
                lambda same_shape=same_shape, restarts=restarts: kmeans_restarts_torch(
                    [found[i][0] for i in same_shape], k, restarts,
                    [np.random.default_rng(seeds[i]) for i in same_shape], device=device,
                ),
                f"{len(same_shape)} graphs x {restarts} restarts x {k} clusters x {n} nodes",
            )
            def choose(j, same_shape=same_shape, labels=labels, inertia=inertia):
                _, ev, nodes = found[same_shape[j]]
                return clusterer.choose(graphs[same_shape[j]], labels[j], inertia[j], ev, nodes)

            # each kept restart's n-cut on the host, on the pool's threads where there is one
            chosen = (pool.map if pool is not None else map)(choose, range(len(same_shape)))
            for i, part in zip(same_shape, chosen, strict=True):
                out[i] = part
        return out

    def evaluate(
        self, graph: WeightGraph, measure: Measure, seed: np.random.SeedSequence
    ) -> tuple[float, Any]:
        """The measure on the network itself (seeded as `score` seeds it), its spectral clustering
        on the device: the embedding (batched Gram solve, or subspace iteration for a graph that
        is not a chain) and the k-means restarts."""
        device, clusterer = self._setup(measure)
        k = None if clusterer is None else clusterer.n_clusters
        if not isinstance(k, int | np.integer) or k < 2 or k >= graph.n_nodes:
            return measure.evaluate(graph, seed)  # the plain path (for a bad k: its own one-line refusal)
        with single_thread():
            found = None
            if graph.is_chain:
                found = _with_oom_message(
                    lambda: batched_singular([graph], k, device, self.solver)[0],
                    f"a graph of {graph.n_nodes} nodes",
                )
            if found is None:
                found = _with_oom_message(
                    lambda: device_embedding(graph, k, device, int_seed(child_seed(seed, 0))),
                    f"a graph of {graph.n_nodes} nodes and {graph.n_edges} edges",
                )
            if found is None:  # no convergence on the device: the plain path decides
                return measure.evaluate(graph, seed)
            part = self._partitions(clusterer, [graph], [found], [child_seed(seed, 1)], device)[0]
        return part.ncut, part

    def null_values(
        self, graph: WeightGraph, null: Null, measure: Measure, seeds: Sequence[np.random.SeedSequence]
    ) -> Iterator[float]:
        """The measure on the samples seeded by ``seeds``, in order (see `null_values`)."""
        device, clusterer = self._setup(measure)
        if clusterer is None:
            yield from self.map(null_value, seeds, graph, null, measure)
            return
        size = self._batch(graph)
        workers = max(1, min(self.threads or os.cpu_count() or 1, size))  # host threads drawing shuffles
        # where the time went (seconds, summed over calls), and how many samples ran the plain way
        spent = self.timings_ = getattr(self, "timings_", None) or dict.fromkeys(
            ("waiting_for_shuffles", "eigensolves", "kmeans_and_ncut", "plain_fallbacks", "n_fallbacks"), 0.0
        )
        with single_thread(), ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as ahead:
            draw = None
            for start in range(0, len(seeds), size):
                chunk = seeds[start : start + size]
                # the next batch's shuffles are drawn on host threads while this one is solved
                t = time.perf_counter()
                graphs = draw.result() if draw is not None else _draw(pool, graph, null, chunk)
                after = seeds[start + size : start + 2 * size]
                draw = ahead.submit(_draw, pool, graph, null, after) if after else None
                t = _add(spent, "waiting_for_shuffles", t)
                solved = _with_oom_message(
                    lambda graphs=graphs: batched_singular(graphs, clusterer.n_clusters, device, self.solver),
                    f"{len(graphs)} graphs of {graph.n_nodes} nodes at once (lower the batch size)",
                )
                t = _add(spent, "eigensolves", t)
                ok = [i for i, f in enumerate(solved) if f is not None]
                parts = self._partitions(
                    clusterer, [graphs[i] for i in ok], [solved[i] for i in ok],
                    [child_seed(child_seed(chunk[i], 1), 1) for i in ok], device, pool,
                )
                values = dict(zip(ok, (p.ncut for p in parts), strict=True))
                _add(spent, "kmeans_and_ncut", t)
                for i, ss in enumerate(chunk):
                    if i not in values:  # not batched: this sample runs the plain way
                        t = time.perf_counter()
                        values[i] = null_value(graph, null, measure, ss)
                        _add(spent, "plain_fallbacks", t)
                        spent["n_fallbacks"] += 1
                    yield values[i]


def _add(spent: dict, key: str, since: float) -> float:
    """Add the seconds since ``since`` to ``spent[key]``; the time now."""
    now = time.perf_counter()
    spent[key] += now - since
    return now


def _draw(pool: ThreadPoolExecutor, graph: WeightGraph, null: Null, seeds: Sequence) -> list[WeightGraph]:
    """The null graphs of ``seeds`` drawn on the pool's threads (numpy's shuffles release the GIL),
    each from its own generator: the plain path's graphs exactly."""
    def one(ss):
        g = null.sample(graph, child_seed(ss, 0))
        g.abs_weights, g.degree, g.active  # noqa: B018  (cached here, on this thread, not later)
        return g

    return [f.result() for f in [pool.submit(one, ss) for ss in seeds]]


def _with_oom_message(fn: Callable, what: str):
    """``fn()``, with a device out-of-memory error turned into one line saying what needed it."""
    import torch

    try:
        return fn()
    except torch.OutOfMemoryError:
        raise ModscopeError(
            f"the device ran out of memory for {what}; lower --batch-size or --clusters, or use --device cpu"
        ) from None
