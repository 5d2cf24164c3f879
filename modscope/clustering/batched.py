"""Spectral embeddings on a torch device (a GPU): many same-architecture graphs from one batched
eigensolve over a stack of Gram matrices (``torch.linalg.eigh``, or Chebyshev-filtered subspace
iteration for large sides), and any one graph's embedding from its sparse normalised adjacency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..errors import ModscopeError
from .embedding import _dinv, embed_rows, gram_side
from .subspace import topk_eigh

__all__ = ["EXACT_SIDE", "EXACT_SIDE_GPU", "DeviceSolver", "batched_singular", "device_embedding"]

DeviceSolver = Literal["auto", "eigh", "subspace"]

# Up to this many nodes on the Gram side "auto" solves the stack with a full ``eigh``; above it by
# subspace iteration, whose block products run at full speed where a large ``eigh`` does not. On a
# GPU a stack of ``eigh`` runs one matrix after another, so subspace iteration takes over sooner.
EXACT_SIDE = 1024
EXACT_SIDE_GPU = 256


def batched_singular(graphs: Sequence, k: int, device, solver: DeviceSolver = "auto", seed: int = 0) -> list:
    """Spectral embeddings of same-architecture graphs from one batched Gram eigensolve.

    Returns, per graph, ``(embedding, eigenvalues, nodes)`` as `spectral_embedding` gives, or
    ``None`` where the top ``k`` singular values are not all positive (the unbatched path
    then decides). The smaller bipartite side's Gram matrix ``N^T N`` is block tridiagonal in
    the normalised weights ``N_l = D^-1/2 |W_l| D^-1/2``; degree-0 nodes are zero rows, which
    add only zero eigenvalues. ``solver``: a full ``eigh`` of the stack, subspace iteration
    (`modscope.clustering.subspace`, seeded by ``seed``), or ``"auto"``: ``eigh`` up to
    `EXACT_SIDE` nodes on the Gram side (`EXACT_SIDE_GPU` on a GPU); graphs whose iteration does
    not converge are ``None``.
    """
    import torch

    if solver not in ("auto", "eigh", "subspace"):
        raise ModscopeError(f"unknown device eigensolver {solver!r}; use 'auto', 'eigh' or 'subspace'")
    g0 = graphs[0]
    if not g0.is_chain:  # the batched Gram assembly is written for layered graphs
        return [None] * len(graphs)
    widths = g0.layer_widths
    side = [int(l) for l in gram_side(g0)]
    pos = dict(zip(side, np.cumsum([0] + [widths[l] for l in side]).tolist(), strict=False))
    m = sum(widths[l] for l in side)
    if m < k:
        return [None] * len(graphs)
    N = _normalised_weights(graphs, device)
    G = _side_gram(N, widths, pos, m)
    converged = np.ones(len(graphs), dtype=bool)
    exact_side = EXACT_SIDE if torch.device(device).type == "cpu" else EXACT_SIDE_GPU
    if solver == "subspace" or (solver == "auto" and m > exact_side):
        s2, V, converged = topk_eigh(
            lambda X: G @ X, (len(graphs), m), k, lo=0.0, hi=1.0, device=device, seed=seed
        )
    else:
        s2, V = torch.linalg.eigh(G)
        s2, V = s2[:, -k:].flip(-1), V[:, :, -k:].flip(-1)
    G = None  # the stack is freed before the other side's vectors are built
    s = torch.sqrt(torch.clamp(s2, min=0.0))
    vecs = _both_sides(N, V, s, g0, pos, side)
    vecs_np, s_np, s2_np = vecs.cpu().numpy(), s.cpu().numpy(), s2.cpu().numpy()
    out = []
    for i, g in enumerate(graphs):
        nodes = np.flatnonzero(g.active)
        if not converged[i] or s2_np[i, -1] <= 1e-12 * max(s2_np[i, 0], 1.0) or k >= nodes.size:
            out.append(None)
            continue
        out.append((embed_rows(g, vecs_np[i][nodes] / np.sqrt(2.0), nodes), 1.0 - s_np[i], nodes))
    return out


def _normalised_weights(graphs: Sequence, device) -> list:
    """Per layer ``l``, the stack ``N_l = D^-1/2 |W_l| D^-1/2`` over the graphs, ``(n_graphs,
    out, in)`` on ``device`` (degree-0 nodes: zero rows and columns)."""
    import torch

    off = graphs[0].offsets
    dv = torch.as_tensor(np.stack([_dinv(g) for g in graphs]), device=device)
    N = []
    for l in range(graphs[0].n_layers - 1):
        w = torch.as_tensor(np.stack([g.abs_weights[l] for g in graphs]), device=device)
        N.append(w * dv[:, off[l + 1] : off[l + 2], None] * dv[:, None, off[l] : off[l + 1]])
    return N


def _side_gram(N: list, widths: Sequence[int], pos: dict[int, int], m: int):
    """The ``(n_graphs, m, m)`` Gram stack ``N^T N`` of the Gram side (layers ``pos``, each at
    its offset): block tridiagonal, each other-side layer adding its two neighbours' products."""
    import torch

    L = len(widths)
    G = torch.zeros((N[0].shape[0], m, m), dtype=torch.float64, device=N[0].device)
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
    return G


def _both_sides(N: list, V, s, g0, pos: dict[int, int], side: list[int]):
    """``(n_graphs, n_nodes, k)`` singular vectors on both sides: the Gram side's ``V`` in place,
    the other side's ``u = N v / sigma`` layer by layer (0 where ``sigma`` is 0)."""
    import torch

    widths, off, L = g0.layer_widths, g0.offsets, g0.n_layers
    n, k = V.shape[0], V.shape[-1]
    vecs = torch.zeros((n, g0.n_nodes, k), dtype=torch.float64, device=V.device)
    side_idx = torch.as_tensor(np.concatenate([np.arange(off[l], off[l + 1]) for l in side]), device=V.device)
    vecs[:, side_idx] = V
    scale = torch.where(s > 0, 1.0 / torch.where(s > 0, s, 1.0), 0.0)
    for t in range(L):
        if t in pos:
            continue
        u = torch.zeros((n, widths[t], k), dtype=torch.float64, device=V.device)
        if t > 0:
            u += N[t - 1] @ vecs[:, off[t - 1] : off[t]]
        if t + 1 < L:
            u += N[t].mT @ vecs[:, off[t + 1] : off[t + 2]]
        vecs[:, off[t] : off[t + 1]] = u * scale[:, None, :]
    return vecs


def device_embedding(graph, k: int, device, seed: int = 0):
    """``(embedding, eigenvalues, nodes)`` of any graph (bipartite or not) as `spectral_embedding`
    gives, or ``None`` if the iteration does not converge: subspace iteration on ``D^-1/2 A D^-1/2``
    applied block by block on ``device``: each weight matrix ``|W|`` once, scaled by the degrees on
    both sides, times a block of vectors in both directions (``A = sum_b P_dst^T |W_b| P_src`` plus
    its transpose), so nothing the size of the adjacency is built (a whole transformer's
    merged-stream graph: 70.8M edges in 0.6 GB)."""
    import torch

    nodes = np.flatnonzero(graph.active)
    if k >= nodes.size:
        raise ModscopeError(f"cannot split {nodes.size} connected nodes into {k} clusters")
    off = graph.offsets
    dinv = torch.as_tensor(_dinv(graph), device=device)
    blocks = []
    for (src, dst), w in zip(graph.links, graph.abs_weights, strict=True):
        a, b = slice(off[src], off[src + 1]), slice(off[dst], off[dst + 1])
        # out of place: on the CPU as_tensor shares the graph's own |W|
        scaled = torch.as_tensor(w, device=device, dtype=torch.float64) * dinv[b, None] * dinv[None, a]
        blocks.append((a, b, scaled))

    def apply(X):  # (1, n_nodes, p)
        Y = torch.zeros_like(X)
        for a, b, M in blocks:
            Y[:, b] += M @ X[:, a]
            Y[:, a] += M.mT @ X[:, b]
        return Y

    # degree-0 nodes are zero rows: eigenvalue 0, inside the damped part of [-1, 1]
    mu, vecs, converged = topk_eigh(apply, (1, graph.n_nodes), k, lo=-1.0, hi=1.0, device=device, seed=seed)
    if not converged[0]:  # never a half-converged embedding: the caller solves it the plain way
        return None
    return embed_rows(graph, vecs[0].cpu().numpy()[nodes], nodes), 1.0 - mu[0].cpu().numpy(), nodes
