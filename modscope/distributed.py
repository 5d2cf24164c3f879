"""Where independent units of work run: here, in local worker processes, on a Dask cluster,
or — for shuffle baselines — with their eigenproblems batched on a torch device.

A unit (one shuffle, one sweep row) draws all its randomness from its own
``SeedSequence`` and runs on one BLAS / OpenMP thread, so its result is the same bits on
whichever executor, worker or machine it runs. Executors are interchangeable objects with
one interface:

- ``map(fn, items, *shared)``: ``fn(*shared, item)`` for every item, results in item order
  (a generator: the caller can show progress and persist as results arrive);
- ``as_completed(fn, items, *shared)``: ``(index, result)`` pairs in completion order.

``shared`` arguments (a graph, a clusterer) are sent to each worker once, not once per unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from .errors import ModscopeError


class Executor(Protocol):
    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator: ...

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]: ...


def _indexed(fn: Callable, shared: tuple, i: int, item) -> tuple[int, Any]:
    return i, fn(*shared, item)


class LocalExecutor:
    """``jobs`` worker processes on this machine (joblib/loky); ``jobs=1`` runs in this process."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def _check(self) -> None:
        if not isinstance(self.jobs, int | np.integer) or self.jobs == 0 or self.jobs < -1:
            raise ModscopeError(f"jobs must be >= 1 or -1, got {self.jobs}")

    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator:
        self._check()
        if self.jobs == 1:
            return (fn(*shared, item) for item in items)
        from joblib import Parallel, delayed

        return Parallel(n_jobs=self.jobs, return_as="generator")(delayed(fn)(*shared, x) for x in items)

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]:
        self._check()
        if self.jobs == 1:
            return ((i, fn(*shared, item)) for i, item in enumerate(items))
        from joblib import Parallel, delayed

        units = (delayed(_indexed)(fn, shared, i, x) for i, x in enumerate(items))
        return Parallel(n_jobs=self.jobs, return_as="generator_unordered")(units)


class DaskExecutor:
    """Units as tasks on a running Dask cluster (``pip install 'modscope[distributed]'``).

    ``scheduler`` is the scheduler's address, e.g. ``tcp://10.0.0.5:8786`` (start one with
    ``dask scheduler`` and workers with ``dask worker ADDRESS --nthreads 1``; workers need
    modscope installed). ``timeout`` bounds the connection, in seconds. Use as a context
    manager, or call `close`.
    """

    def __init__(self, scheduler: str, timeout: float = 30.0) -> None:
        self.scheduler = scheduler
        self.timeout = timeout
        self._client = None

    def client(self):
        """The connected ``distributed.Client`` (connects on first use)."""
        if self._client is None:
            try:
                from distributed import Client
            except ImportError:
                raise ModscopeError(
                    "--scheduler needs Dask: pip install 'modscope[distributed]'"
                ) from None
            try:
                self._client = Client(self.scheduler, timeout=self.timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ModscopeError(f"cannot reach the Dask scheduler at {self.scheduler}: {first}") from None
        return self._client

    def _submit(self, fn: Callable, items: Sequence, shared: tuple):
        client = self.client()
        # every worker gets the shared arguments once; tasks then refer to them by key
        handles = [client.scatter(obj, broadcast=True, hash=False) for obj in shared]
        return client.map(_call, list(items), fn=fn, shared=handles, pure=False)

    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator:
        futures = self._submit(fn, items, shared)
        return (f.result() for f in futures)

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        futures = self._submit(fn, items, shared)
        index = {f.key: i for i, f in enumerate(futures)}
        with self.client().as_current():  # as_completed looks for a current client
            done = as_completed(futures)
        return ((index[f.key], f.result()) for f in done)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> DaskExecutor:
        self.client()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _call(item, fn: Callable, shared: list):
    return fn(*shared, item)


def torch_device(device: str):
    """``torch.device(device)``; a clear `ModscopeError` when CUDA is asked for but absent."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModscopeError(f"unknown device {device!r}; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModscopeError(
            f"--device {device}: CUDA is not available (torch {torch.__version__}, "
            f"{'a CPU-only build' if torch.version.cuda is None else 'no GPU found'})"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ModscopeError(f"unsupported device {device!r}; use cpu or cuda")
    return dev


class TorchBatchExecutor:
    """Shuffle baselines with the eigenproblems of ``batch_size`` shuffled graphs solved at once.

    Each shuffled graph is made on the CPU exactly as in the unbatched path; the Gram
    matrices ``B^T B`` of their normalised bipartite blocks are built and eigen-decomposed
    as one ``(batch, m, m)`` stack with ``torch.linalg.eigh`` on ``device`` (float64); the
    k-means restarts then run per graph with the same seeds. Eigenvalues agree with the
    unbatched path to rounding and eigenvector signs are fixed the same way, so the labels
    and n-cuts are the same (tested bit for bit on small graphs; where a top singular value
    repeats, e.g. a shuffled graph in pieces, any basis of its eigenspace is right and the
    two paths may pick different ones). On a CPU this is slower than the unbatched path (a
    full ``eigh`` against LAPACK's top-k subset); it is meant for GPUs. A graph the batched
    solve cannot take (fewer than ``k`` non-zero singular values, or a clusterer other than
    `SpectralClusterer`) falls back to the unbatched unit. Other units (`map`) run here.
    """

    def __init__(self, device: str = "cpu", batch_size: int = 16) -> None:
        self.device = device
        self.batch_size = batch_size

    def map(self, fn: Callable, items: Sequence, *shared) -> Iterator:
        return LocalExecutor(1).map(fn, items, *shared)

    def as_completed(self, fn: Callable, items: Sequence, *shared) -> Iterator[tuple[int, Any]]:
        return LocalExecutor(1).as_completed(fn, items, *shared)

    def shuffle_ncuts(self, graph, shuffler, clusterer, seeds: Sequence) -> Iterator[float]:
        """n-cuts of the shuffles seeded by ``seeds``, in order (see `baselines.shuffle_ncuts`)."""
        from ._threads import single_thread
        from .baselines import _one_shuffle, shuffle_graph
        from .spectral import SpectralClusterer, child_seed

        if not isinstance(self.batch_size, int | np.integer) or self.batch_size < 1:
            raise ModscopeError(f"the batch size must be an integer >= 1, got {self.batch_size}")
        device = torch_device(self.device)
        batchable = isinstance(clusterer, SpectralClusterer) and clusterer.eigen_solver in (
            "auto", "bipartite", "iterative")
        if not batchable:
            yield from self.map(_one_shuffle, seeds, graph, shuffler, clusterer)
            return
        one = clusterer.with_threads(1)
        for start in range(0, len(seeds), self.batch_size):
            chunk = seeds[start : start + self.batch_size]
            with single_thread():
                graphs = [shuffle_graph(graph, shuffler, child_seed(ss, 0)) for ss in chunk]
                solved = batched_singular(graphs, clusterer.n_clusters, device)
                for ss, g, found in zip(chunk, graphs, solved, strict=True):
                    if found is None:
                        yield _one_shuffle(graph, shuffler, clusterer, ss)
                        continue
                    emb, eigenvalues, nodes = found
                    yield one.partition_embedded(g, emb, eigenvalues, nodes, child_seed(ss, 1)).ncut


def batched_singular(graphs: Sequence, k: int, device) -> list:
    """Spectral embeddings of same-architecture graphs from one batched Gram eigensolve.

    Returns, per graph, ``(embedding, eigenvalues, nodes)`` as `spectral_embedding` gives, or
    ``None`` where the top ``k`` singular values are not all positive (the unbatched path
    then decides). The smaller bipartite side's Gram matrix ``N^T N`` is block tridiagonal in
    the normalised weights ``N_l = D^-1/2 |W_l| D^-1/2``; degree-0 nodes are zero rows, which
    add only zero eigenvalues.
    """
    import torch

    from .spectral import _gram_side, embed_rows

    g0 = graphs[0]
    widths, off, L = g0.layer_widths, g0.offsets, g0.n_layers
    side = [int(l) for l in _gram_side(g0)]
    pos = dict(zip(side, np.cumsum([0] + [widths[l] for l in side]).tolist(), strict=False))
    m = sum(widths[l] for l in side)
    if m < k:
        return [None] * len(graphs)
    nodes = [np.flatnonzero(g.active) for g in graphs]
    dinv = np.zeros((len(graphs), g0.n_nodes))
    for i, g in enumerate(graphs):
        np.divide(1.0, np.sqrt(g.degree), out=dinv[i], where=g.active)
    dv = torch.as_tensor(dinv, device=device)
    N = []
    for l in range(L - 1):
        w = torch.as_tensor(np.stack([g.abs_weights[l] for g in graphs]), device=device)
        N.append(w * dv[:, off[l + 1] : off[l + 2], None] * dv[:, None, off[l] : off[l + 1]])
    G = torch.zeros((len(graphs), m, m), dtype=torch.float64, device=device)
    for t in range(L):
        if t in pos:
            continue
        lo, hi = (t - 1 if t > 0 else None), (t + 1 if t + 1 < L else None)
        if lo is not None:
            a = slice(pos[lo], pos[lo] + widths[lo])
            G[:, a, a] += N[t - 1].mT @ N[t - 1]
        if hi is not None:
            b = slice(pos[hi], pos[hi] + widths[hi])
            G[:, b, b] += N[t] @ N[t].mT
        if lo is not None and hi is not None:
            cross = N[t - 1].mT @ N[t].mT
            G[:, a, b] += cross
            G[:, b, a] += cross.mT
    s2, V = torch.linalg.eigh(G)
    s2, V = s2[:, -k:].flip(-1), V[:, :, -k:].flip(-1)
    s = torch.sqrt(torch.clamp(s2, min=0.0))
    vecs = torch.zeros((len(graphs), g0.n_nodes, k), dtype=torch.float64, device=device)
    side_idx = torch.as_tensor(np.concatenate([np.arange(off[l], off[l + 1]) for l in side]), device=device)
    vecs[:, side_idx] = V
    scale = torch.where(s > 0, 1.0 / torch.where(s > 0, s, 1.0), 0.0)
    for t in range(L):
        if t in pos:
            continue
        u = torch.zeros((len(graphs), widths[t], k), dtype=torch.float64, device=device)
        if t > 0:
            u += N[t - 1] @ vecs[:, off[t - 1] : off[t]]
        if t + 1 < L:
            u += N[t].mT @ vecs[:, off[t + 1] : off[t + 2]]
        vecs[:, off[t] : off[t + 1]] = u * scale[:, None, :]
    vecs_np, s_np, s2_np = vecs.cpu().numpy(), s.cpu().numpy(), s2.cpu().numpy()
    out = []
    for i, g in enumerate(graphs):
        if s2_np[i, -1] <= 1e-12 * max(s2_np[i, 0], 1.0) or k >= nodes[i].size:
            out.append(None)
            continue
        v = vecs_np[i][nodes[i]] / np.sqrt(2.0)
        out.append((embed_rows(g, v, nodes[i]), 1.0 - s_np[i], nodes[i]))
    return out
