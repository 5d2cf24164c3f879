"""The spectral embedding (spec §2): eigenvectors of the normalised Laplacian with the smallest
eigenvalues, rows scaled by ``D^-1/2``.

A layered network's graph is bipartite (even layers against odd layers), so
``D^-1/2 A D^-1/2 = [[0, B], [B^T, 0]]`` with ``B = D_e^-1/2 A_eo D_o^-1/2``: its top
eigenvectors are ``[u; v] / sqrt 2`` for the top singular triplets ``(u, sigma, v)`` of
``B`` (eigenvalue ``1 - sigma`` of ``L``). The fast path solves that small singular
problem (a dense Gram matrix of the smaller side, or Lanczos on an operator made of the
weight matrices for large sides) instead of a shift-inverted eigenproblem of the whole
graph; ``eigen_solver="dense"`` keeps the plain definition for comparison (tests check both
agree).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from ..runtime.seeds import SeedLike, as_seed_sequence

__all__ = [
    "DENSE_BLOCK_LIMIT",
    "ITERATIVE_SIDE",
    "EigenSolver",
    "components",
    "embed_rows",
    "gram_side",
    "spectral_embedding",
]

EigenSolver = Literal["auto", "bipartite", "iterative", "dense", "arpack"]

# Above this many entries of the even x odd block, "bipartite" never forms a dense Gram matrix.
DENSE_BLOCK_LIMIT = 25_000_000
# Above this many nodes on the smaller bipartite side, "auto" finds the top singular vectors by
# Lanczos on an operator made of the weight matrices: a dense Gram matrix's eigh costs O(m^3)
# (14 s at m = 4106 on one core) where Lanczos needs a few hundred O(edges) products (3 s).
ITERATIVE_SIDE = 2000


def _sign_flip(vectors: np.ndarray) -> np.ndarray:
    """Make each column's largest-magnitude entry positive (eigenvector signs are arbitrary)."""
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def _dense_ok(graph: WeightGraph) -> bool:
    """Whether the even x odd block is small enough to treat densely."""
    w = np.asarray(graph.layer_widths)
    return int(w[::2].sum()) * int(w[1::2].sum()) <= DENSE_BLOCK_LIMIT


def gram_side(graph: WeightGraph) -> np.ndarray:
    """Layer ids of the smaller bipartite side (odd layers on a tie), whose Gram matrix is solved."""
    layers = np.arange(graph.n_layers)
    widths = graph.layer_widths
    even_size = sum(widths[l] for l in layers[::2])
    return layers[1::2] if sum(widths[l] for l in layers[1::2]) <= even_size else layers[::2]


def components(graph: WeightGraph) -> tuple[int, np.ndarray]:
    """``(n, labels)``: connected components of the active nodes; -1 for degree-0 nodes.

    A weight matrix without zeros joins all its neurons, so it contributes a star of
    ``n_l + n_{l+1}`` edges instead of all ``n_l n_{l+1}``: dense networks cost one scan.
    """
    from scipy.sparse.csgraph import connected_components

    off, rows, cols = graph.offsets, [], []
    for l, w in enumerate(graph.abs_weights):
        if np.all(w > 0):
            j, i = np.arange(w.shape[1]), np.arange(w.shape[0])
            rows += [np.full(j.size, off[l + 1]), off[l + 1] + i]
            cols += [off[l] + j, np.full(i.size, off[l])]
        else:
            i, j = np.nonzero(w)
            rows.append(off[l + 1] + i)
            cols.append(off[l] + j)
    r, c = np.concatenate(rows), np.concatenate(cols)
    pattern = sp.csr_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(graph.n_nodes,) * 2)
    _, lab = connected_components(pattern, directed=False)
    lab = np.where(graph.active, lab, -1)
    kept, lab[graph.active] = np.unique(lab[graph.active], return_inverse=True)
    return int(kept.size), lab


def _operator_singular(graph: WeightGraph, k: int, ss: np.random.SeedSequence):
    """Top-``k`` singular triplets of the normalised even x odd block without forming it.

    Returns ``(vecs, s)`` as `_layered_singular` does, or ``None`` when the smaller side has
    fewer than ``k`` active nodes. Lanczos (ARPACK) runs on ``G = B^T B`` of the smaller side,
    applied as ``D^-1/2 |W| D^-1 |W|^T D^-1/2`` products with the weight matrices themselves:
    memory stays at a few vectors, time at O(edges) per product. Each connected component
    gives singular value 1 with the known vector ``sqrt(degree)`` on the component (Perron);
    those are put in exactly and projected out, so that Lanczos, which finds a repeated
    eigenvalue only once, never has to.
    """
    widths, off, L = graph.layer_widths, graph.offsets, graph.n_layers
    dinv = np.zeros(graph.n_nodes)
    np.divide(1.0, np.sqrt(graph.degree), out=dinv, where=graph.active)
    side = gram_side(graph)
    on_side = np.isin(np.arange(L), side)
    side_nodes = np.concatenate([np.arange(off[l], off[l + 1]) for l in side])
    keep = graph.active[side_nodes]
    m = int(keep.sum())
    if m < k:
        return None
    W = graph.abs_weights
    n_comp, comp = components(graph)
    # Perron vectors of the components on the Gram side, largest component first
    comp_side = comp[side_nodes[keep]]
    sizes = np.bincount(comp[comp >= 0], minlength=n_comp)
    order = np.lexsort((np.arange(n_comp), -sizes))[: min(n_comp, k)]
    Q = np.zeros((m, order.size))
    root = np.sqrt(graph.degree[side_nodes[keep]])
    for c_i, c in enumerate(order):
        on = comp_side == c
        Q[on, c_i] = root[on] / np.linalg.norm(root[on])

    def gram(x: np.ndarray) -> np.ndarray:  # (m, b) -> (m, b)
        x = x.reshape(m, -1)
        full = np.zeros((graph.n_nodes, x.shape[1]))
        full[side_nodes[keep]] = x
        full *= dinv[:, None]
        out = np.zeros_like(full)
        for t in np.flatnonzero(~on_side):
            u = np.zeros((widths[t], x.shape[1]))
            if t > 0:
                u += W[t - 1] @ full[off[t - 1] : off[t]]
            if t + 1 < L:
                u += W[t].T @ full[off[t + 1] : off[t + 2]]
            u *= (dinv[off[t] : off[t + 1]] ** 2)[:, None]
            if t > 0:
                out[off[t - 1] : off[t]] += W[t - 1].T @ u
            if t + 1 < L:
                out[off[t + 1] : off[t + 2]] += W[t] @ u
        out *= dinv[:, None]
        y = out[side_nodes[keep]]
        if Q.shape[1]:  # P G P with P = I - Q Q^T: the components' eigenvalue 1 removed
            y -= Q @ (Q.T @ y)
        return y

    rest = k - Q.shape[1]
    if rest > 0:

        def matvec(x):
            x = x.reshape(m, -1)
            if Q.shape[1]:
                x = x - Q @ (Q.T @ x)
            return gram(x)

        op = spla.LinearOperator((m, m), matvec=matvec, matmat=matvec, dtype=np.float64)
        v0 = np.random.default_rng(ss).uniform(-1, 1, m)
        s2, V = spla.eigsh(op, k=rest, which="LA", v0=v0, ncv=min(m, max(2 * rest + 1, 20)))
        top = np.argsort(-s2)
        s2, V = np.concatenate([np.ones(Q.shape[1]), s2[top]]), np.hstack([Q, V[:, top]])
    else:
        s2, V = np.ones(k), Q[:, :k]
    s = np.sqrt(np.clip(s2, 0.0, None))
    vecs = np.zeros((graph.n_nodes, k))
    vecs[side_nodes[keep]] = V
    scale = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)
    for t in np.flatnonzero(~on_side):  # u = B v / sigma on the other side, layer by layer
        u = np.zeros((widths[t], k))
        if t > 0:
            u += W[t - 1] @ (vecs[off[t - 1] : off[t]] * dinv[off[t - 1] : off[t], None])
        if t + 1 < L:
            u += W[t].T @ (vecs[off[t + 1] : off[t + 2]] * dinv[off[t + 1] : off[t + 2], None])
        vecs[off[t] : off[t + 1]] = u * dinv[off[t] : off[t + 1], None] * scale
    return vecs, s


def _layered_singular(graph: WeightGraph, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Top-``k`` singular triplets of the normalised even x odd block, layer by layer.

    Returns ``(vecs, s)``: ``vecs`` ``(n_nodes, k)`` holds ``u`` on one side's nodes and ``v``
    on the other's (zero rows for degree-0 nodes), ``s`` descending. The Gram matrix of the
    smaller side is assembled from the weight matrices themselves: it is block tridiagonal
    (only layers two apart share neighbours), so the zero blocks of ``B`` cost nothing.
    ``None`` when the smaller side has fewer than ``k`` active nodes.
    """
    widths, off = graph.layer_widths, graph.offsets
    dinv = np.zeros(graph.n_nodes)
    np.divide(1.0, np.sqrt(graph.degree), out=dinv, where=graph.active)
    layers = np.arange(graph.n_layers)
    side = gram_side(graph)
    on_side = np.isin(layers, side)
    # B's entries are d_s^-1/2 |w| d_o^-1/2 (s on the Gram side, o on the other), so
    # G = B^T B = D_s^-1/2 (sum |W| D_o^-1 |W|^T) D_s^-1/2: the products need each |W| scaled
    # on its other-side axis only (one pass), and D_s^-1/2 scales the small G afterwards.
    # M[l]: (n_{l+1}, n_l), the other side's layer on the rows or the columns.
    M = [
        w * dinv[off[l + 1] : off[l + 2], None] if on_side[l] else w * dinv[None, off[l] : off[l + 1]]
        for l, w in enumerate(graph.abs_weights)
    ]
    pos = {int(l): p for l, p in zip(side, np.cumsum([0] + [widths[l] for l in side]), strict=False)}
    n_s = sum(widths[l] for l in side)
    # Fortran order throughout: LAPACK's and BLAS's layout, so neither the syrk results nor
    # eigh's input are copied or added across the grain
    G = np.zeros((n_s, n_s), order="F")
    syrk = sla.blas.dsyrk  # fills the upper triangle; given a transposed (Fortran) view, no copy
    for t in np.flatnonzero(~on_side):  # only the other side's layers connect side layers
        lo, hi = (t - 1 if t > 0 else None), (t + 1 if t + 1 < graph.n_layers else None)
        # blocks from layer t to its neighbours: M[t-1] (n_t, n_{t-1}) and M[t].T (n_t, n_{t+1})
        if lo is not None:
            a = slice(pos[lo], pos[lo] + widths[lo])
            G[a, a] += syrk(1.0, M[t - 1].T, trans=0)  # M[t-1]^T M[t-1]
        if hi is not None:
            b = slice(pos[hi], pos[hi] + widths[hi])
            G[b, b] += syrk(1.0, M[t].T, trans=1)  # M[t] M[t]^T
        if lo is not None and hi is not None:
            G[a, b] += (M[t] @ M[t - 1]).T  # M[t-1]^T M[t]^T, computed in Fortran order
    side_nodes = np.concatenate([np.arange(off[l], off[l + 1]) for l in side])
    d_side = dinv[side_nodes]
    G *= d_side[:, None]
    G *= d_side[None, :]
    keep = graph.active[side_nodes]
    if keep.sum() < k:
        return None
    if not keep.all():
        G = G[np.ix_(keep, keep)]
    m = G.shape[0]
    s2, V = sla.eigh(G, lower=False, subset_by_index=[m - k, m - 1], overwrite_a=True, check_finite=False)
    s = np.sqrt(np.clip(s2[::-1], 0.0, None))
    V = V[:, ::-1]
    vecs = np.zeros((graph.n_nodes, k))
    vecs[side_nodes[keep]] = V
    scale = np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)
    # u = B v / sigma on the other side, layer by layer: B v = D_o^-1/2 |W| (D_s^-1/2 v), and
    # M already carries one D_o^-1/2
    sv = vecs * dinv[:, None]
    for t in np.flatnonzero(~on_side):
        u = np.zeros((widths[t], k))
        if t > 0:
            u += M[t - 1] @ sv[off[t - 1] : off[t]]
        if t + 1 < graph.n_layers:
            u += M[t].T @ sv[off[t + 1] : off[t + 2]]
        vecs[off[t] : off[t + 1]] = u * scale
    return vecs, s


def spectral_embedding(
    graph: WeightGraph, n_components: int, eigen_solver: EigenSolver = "auto", seed: SeedLike = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(embedding, eigenvalues, nodes)`` for the graph's active (degree > 0) nodes.

    ``embedding`` is ``(len(nodes), n_components)``: the eigenvectors of the normalised
    Laplacian with the smallest ``eigenvalues`` (ascending), rows scaled by ``D^-1/2``,
    signs fixed deterministically. ``nodes`` are graph node ids in ascending order.
    """
    ss = as_seed_sequence(seed)
    active = graph.active
    nodes = np.flatnonzero(active)
    k = n_components
    if k >= nodes.size:
        raise ModscopeError(f"cannot split {nodes.size} connected nodes into {k} clusters")
    solver = eigen_solver
    if solver == "auto":
        side = gram_side(graph)
        solver = "bipartite" if sum(graph.layer_widths[l] for l in side) <= ITERATIVE_SIDE else "iterative"
    if solver == "bipartite" and not _dense_ok(graph):
        solver = "iterative"  # no dense Gram matrix for a block this large
    if solver in ("bipartite", "iterative"):
        found = _layered_singular(graph, k) if solver == "bipartite" else _operator_singular(graph, k, ss)
        if found is None:  # the rest of the spectrum is the null space: use the plain path
            solver = "dense" if nodes.size <= 6000 else "arpack"
        else:
            vecs, s = found
            vecs = vecs[nodes] / np.sqrt(2.0)
            eigenvalues = 1.0 - s
    if solver in ("dense", "arpack"):
        A = graph.adjacency[nodes][:, nodes]
        d = np.asarray(A.sum(axis=1)).ravel()
        inv = sp.diags(1.0 / np.sqrt(d))
        N = inv @ A @ inv
        if solver == "dense":
            mu, vecs = sla.eigh(N.toarray(), subset_by_index=[nodes.size - k, nodes.size - 1])
        else:
            v0 = np.random.default_rng(ss).uniform(-1, 1, nodes.size)
            mu, vecs = spla.eigsh(N, k=k, which="LA", v0=v0)
        order = np.argsort(-mu)
        vecs, eigenvalues = vecs[:, order], 1.0 - mu[order]
    elif solver not in ("bipartite", "iterative"):
        raise ModscopeError(f"unknown eigen solver {eigen_solver!r}")
    return embed_rows(graph, vecs, nodes), eigenvalues, nodes


def embed_rows(graph: WeightGraph, vecs: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Eigenvectors ``(len(nodes), k)`` of ``D^-1/2 A D^-1/2`` -> the embedding: signs fixed
    (largest-magnitude entry positive), rows scaled by ``D^-1/2``."""
    return _sign_flip(vecs) / np.sqrt(graph.degree[nodes])[:, None]
