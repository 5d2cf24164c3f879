"""Normalised spectral clustering and the n-cut (spec §2).

The embedding is the ``k`` eigenvectors of ``L = I - D^-1/2 A D^-1/2`` with the smallest
eigenvalues, rows scaled by ``D^-1/2``; k-means (or cluster-QR) assigns the labels.

A layered network's graph is bipartite (even layers against odd layers), so
``D^-1/2 A D^-1/2 = [[0, B], [B^T, 0]]`` with ``B = D_e^-1/2 A_eo D_o^-1/2``: its top
eigenvectors are ``[u; v] / sqrt 2`` for the top singular triplets ``(u, sigma, v)`` of
``B`` (eigenvalue ``1 - sigma`` of ``L``). The fast path solves that small singular
problem instead of a shift-inverted eigenproblem of the whole graph; ``eigen_solver=
"dense"`` keeps the plain definition for comparison (tests check both agree).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._threads import maybe_single_thread
from .errors import ModscopeError
from .graph import WeightGraph
from .kmeans import kmeans_restarts

SeedLike = int | np.random.SeedSequence | None
AssignLabels = Literal["kmeans", "cluster_qr"]
EigenSolver = Literal["auto", "bipartite", "iterative", "dense", "arpack"]

# Up to this many active nodes a clustering runs on one thread: BLAS / thread start-up costs
# more than the parallel work gains, and much more when the cores are busy.
SMALL_GRAPH = 5000
# Above this many entries of the even x odd block, "bipartite" never forms a dense Gram matrix.
DENSE_BLOCK_LIMIT = 25_000_000
# Above this many nodes on the smaller bipartite side, "auto" finds the top singular vectors by
# Lanczos on an operator made of the weight matrices: a dense Gram matrix's eigh costs O(m^3)
# (14 s at m = 4106 on one core) where Lanczos needs a few hundred O(edges) products (3 s).
ITERATIVE_SIDE = 2000


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (``MemAvailable``, else physical RAM)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


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


def _seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(seed)


def child_seed(seed: SeedLike, i: int) -> np.random.SeedSequence:
    """The ``i``-th child of ``seed``, the same however often ``spawn`` was called before."""
    ss = _seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, i), pool_size=ss.pool_size)


# -- n-cut -------------------------------------------------------------------------------
def _edge_list(graph: WeightGraph | sp.spmatrix):
    """``(u, v, w, degree, n)``: undirected edges once each, and the weighted degrees."""
    if isinstance(graph, WeightGraph):
        u, v, w = graph.edges
        return u, v, w, graph.degree, graph.n_nodes
    coo = sp.triu(graph, k=1).tocoo()
    deg = np.asarray(graph.sum(axis=1)).ravel()
    return coo.row, coo.col, coo.data, deg, graph.shape[0]


def ncut_terms(graph: WeightGraph | sp.spmatrix, labels: np.ndarray) -> np.ndarray:
    """``cut(c) / vol(c)`` per cluster id ``0 .. max(labels)`` (0 for empty clusters).

    ``labels`` has one entry per node; nodes labelled -1 (removed, degree 0) are ignored.
    """
    return ncut_batch(graph, np.asarray(labels)[None, :])[1][0]


def ncut(graph: WeightGraph | sp.spmatrix, labels: np.ndarray) -> float:
    """``sum_c cut(c) / vol(c)``: ``cut(c)`` the weight of edges leaving cluster ``c``,
    ``vol(c)`` its summed degree. Range ``[0, k]``, lower is more modular.

    ``graph`` is a `WeightGraph` or a symmetric sparse adjacency matrix.
    """
    return float(ncut_batch(graph, np.asarray(labels)[None, :])[0][0])


def ncut_batch(graph: WeightGraph | sp.spmatrix, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """n-cuts of ``R`` labelings at once.

    ``labels`` ``(R, n_nodes)`` -> ``(ncut (R,), terms (R, k))``; ``terms[r, c] = cut(c)/vol(c)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    R = labels.shape[0]
    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    lab = np.where(labels >= 0, labels, k)  # removed nodes fall in a bin that is dropped
    base = (np.arange(R) * (k + 1))[:, None]
    if isinstance(graph, WeightGraph):
        deg = graph.degree
        within = _within_layered(graph, lab, k)
    else:
        u, v, w, deg, _ = _edge_list(graph)
        lu, lv = lab[:, u], lab[:, v]
        same = lu == lv
        within = np.bincount(
            (base + lu)[same], weights=np.broadcast_to(w, lu.shape)[same], minlength=R * (k + 1)
        ).reshape(R, k + 1)[:, :k]
    flat_deg = np.broadcast_to(deg, lab.shape).ravel()
    vol = np.bincount((base + lab).ravel(), weights=flat_deg, minlength=R * (k + 1))
    vol = vol.reshape(R, k + 1)[:, :k]
    terms = np.zeros((R, k))
    # vol counts every inside edge from both of its ends
    np.divide(np.maximum(vol - 2.0 * within, 0.0), vol, out=terms, where=vol > 0)
    return terms.sum(axis=1), terms


def _within_layered(graph: WeightGraph, lab: np.ndarray, k: int) -> np.ndarray:
    """``(R, k)`` summed |w| of the edges inside each cluster, one GEMM per weight matrix.

    ``|W_l| @ onehot(labels of layer l)`` gives, for every neuron of layer ``l+1`` and every
    restart, its weight into each cluster; keep the entry of the neuron's own cluster.
    """
    R = lab.shape[0]
    within = np.zeros((R, k + 1))
    rows = np.arange(R)[None, :]
    for l, w in enumerate(graph.abs_weights):
        src = lab[:, graph.offsets[l] : graph.offsets[l + 1]]  # (R, n_l)
        dst = lab[:, graph.offsets[l + 1] : graph.offsets[l + 2]]  # (R, n_{l+1})
        onehot = np.zeros((src.shape[1], R, k + 1))
        onehot[np.arange(src.shape[1])[:, None], rows, src.T] = 1.0
        to_cluster = (w @ onehot.reshape(src.shape[1], -1)).reshape(-1, R, k + 1)  # (n_{l+1}, R, k+1)
        own = to_cluster[np.arange(dst.shape[1])[:, None], rows, dst.T]  # (n_{l+1}, R)
        np.add.at(within, (np.broadcast_to(rows, dst.T.shape), dst.T), own)
    return within[:, :k]


# -- embeddings ------------------------------------------------------------------------------
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


def _gram_side(graph: WeightGraph) -> np.ndarray:
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
    side = _gram_side(graph)
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
    side = _gram_side(graph)
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
    ss = _seed_sequence(seed)
    active = graph.active
    nodes = np.flatnonzero(active)
    k = n_components
    if k >= nodes.size:
        raise ModscopeError(f"cannot split {nodes.size} connected nodes into {k} clusters")
    solver = eigen_solver
    if solver == "auto":
        side = _gram_side(graph)
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


# -- label assignment ------------------------------------------------------------------------
def cluster_qr(embedding: np.ndarray) -> np.ndarray:
    """Labels by column-pivoted QR (Damle, Minden & Ying 2019): deterministic, no restarts."""
    k = embedding.shape[1]
    _, _, piv = sla.qr(embedding.T, pivoting=True, mode="economic")
    ut, _, vt = np.linalg.svd(embedding[piv[:k], :].T)
    return np.abs(embedding @ (ut @ vt.conj())).argmax(axis=1)


@dataclass
class Partition:
    """A clustering of a weight graph.

    ``labels``: ``(n_nodes,)`` int cluster per node in graph order, -1 for degree-0 nodes.
    ``eigenvalues``: the ``k`` smallest normalised-Laplacian eigenvalues used.
    """

    labels: np.ndarray
    ncut: float
    n_clusters: int
    eigenvalues: np.ndarray

    def sizes(self, graph: WeightGraph) -> np.ndarray:
        """``(n_layers, n_clusters)`` neurons of each cluster in each layer."""
        return graph.cluster_sizes(self.labels, self.n_clusters)

    def to_dict(self) -> dict:
        return {
            "ncut": float(self.ncut),
            "n_clusters": int(self.n_clusters),
            "labels": self.labels.astype(int).tolist(),
            "eigenvalues": [float(x) for x in self.eigenvalues],
        }

    def to_frame(self, graph: WeightGraph) -> pd.DataFrame:
        """One row per node: ``layer``, ``index``, ``cluster``."""
        return pd.DataFrame({"layer": graph.node_layer, "index": graph.node_index, "cluster": self.labels})


class SpectralClusterer:
    """Normalised spectral clustering with the bipartite fast path.

    ``n_init`` k-means restarts (default 10, scikit-learn's default; the reference ran 25,
    or 100 above 2000 nodes, chosen by inertia — ``n_init=25, select="inertia"``);
    ``threads`` run the restarts in parallel without changing the result; by default one
    thread (BLAS included) up to ``SMALL_GRAPH`` active nodes, where threads cost more than
    they give, and the machine's cores (at most 8) above. ``select="ncut"`` keeps the
    restart with the lowest n-cut — the quantity reported — while ``select="inertia"``
    keeps the lowest k-means inertia as scikit-learn and the reference do.
    ``assign_labels="cluster_qr"`` needs no restarts.
    """

    def __init__(
        self,
        n_clusters: int = 12,
        assign_labels: AssignLabels = "kmeans",
        n_init: int | None = None,
        select: Literal["ncut", "inertia"] = "ncut",
        eigen_solver: EigenSolver = "auto",
        threads: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.assign_labels = assign_labels
        self.n_init = n_init
        self.select = select
        self.eigen_solver = eigen_solver
        self.threads = threads

    def with_threads(self, threads: int) -> SpectralClusterer:
        """The same clusterer running its k-means restarts on ``threads`` threads."""
        clone = copy.copy(self)
        clone.threads = threads
        return clone

    def partition(self, graph: WeightGraph, seed: SeedLike = None) -> Partition:
        k = self.n_clusters
        if not isinstance(k, int | np.integer) or k < 2:
            raise ModscopeError(f"the number of clusters must be an integer >= 2, got {k}")
        if k >= graph.n_nodes:
            raise ModscopeError(
                f"the number of clusters ({k}) must be below the node count ({graph.n_nodes})"
            )
        if self.select not in ("ncut", "inertia"):
            raise ModscopeError(f"unknown restart selection {self.select!r}; use 'ncut' or 'inertia'")
        if self.assign_labels not in ("kmeans", "cluster_qr"):
            raise ModscopeError(f"unknown label assignment {self.assign_labels!r}; use kmeans or cluster_qr")
        ss_eig, ss_km = child_seed(seed, 0), child_seed(seed, 1)
        small = int(graph.active.sum()) <= SMALL_GRAPH and self.threads in (None, 1)
        with maybe_single_thread(small):
            return self._partition(graph, k, ss_eig, ss_km)

    def _partition(self, graph: WeightGraph, k: int, ss_eig, ss_km) -> Partition:
        emb, eigenvalues, nodes = spectral_embedding(graph, k, self.eigen_solver, ss_eig)
        return self._assign(graph, k, emb, eigenvalues, nodes, ss_km)

    def partition_embedded(
        self,
        graph: WeightGraph,
        embedding: np.ndarray,
        eigenvalues: np.ndarray,
        nodes: np.ndarray,
        seed: SeedLike = None,
    ) -> Partition:
        """`partition` from an embedding computed elsewhere (e.g. batched on a GPU).

        ``embedding``, ``eigenvalues``, ``nodes`` as `spectral_embedding` returns them; the
        labels are then exactly those `partition` gives for the same embedding and seed.
        """
        k = self.n_clusters
        small = nodes.size <= SMALL_GRAPH and self.threads in (None, 1)
        with maybe_single_thread(small):
            return self._assign(graph, k, embedding, eigenvalues, nodes, child_seed(seed, 1))

    def _assign(self, graph: WeightGraph, k: int, emb, eigenvalues, nodes, ss_km) -> Partition:
        if self.assign_labels == "cluster_qr":
            candidates = cluster_qr(emb)[None, :]
            inertia = np.zeros(1)
        else:
            n_init = self.n_init or 10
            threads = self.threads or (1 if nodes.size <= SMALL_GRAPH else min(os.cpu_count() or 1, 8))
            candidates, inertia = kmeans_restarts(
                emb, k, n_init, np.random.default_rng(ss_km), threads=threads
            )
        labels = np.full((candidates.shape[0], graph.n_nodes), -1, dtype=np.int64)
        labels[:, nodes] = candidates
        cuts, _ = ncut_batch(graph, labels)
        best = int(np.argmin(cuts) if self.select == "ncut" else np.argmin(inertia))
        return Partition(labels[best], float(cuts[best]), int(k), eigenvalues)


class SklearnClusterer:
    """scikit-learn's ``SpectralClustering(affinity="precomputed")`` on the same graph.

    The plain pipeline, kept as a reference and benchmark baseline.
    """

    def __init__(self, n_clusters: int = 12, **kwargs) -> None:
        self.n_clusters = n_clusters
        self.kwargs = kwargs

    def partition(self, graph: WeightGraph, seed: SeedLike = None) -> Partition:
        from sklearn.cluster import SpectralClustering

        nodes = np.flatnonzero(graph.active)
        adjacency = graph.adjacency[nodes][:, nodes]
        state = int(_seed_sequence(seed).generate_state(1)[0] % (2**31))
        sc = SpectralClustering(self.n_clusters, affinity="precomputed", random_state=state, **self.kwargs)
        labels = np.full(graph.n_nodes, -1, dtype=np.int64)
        labels[nodes] = sc.fit(adjacency).labels_
        return Partition(labels, ncut(graph, labels), int(self.n_clusters), np.array([]))


CLUSTERERS = {"spectral": SpectralClusterer, "sklearn": SklearnClusterer}


def cluster(
    graph: WeightGraph,
    n_clusters: int = 12,
    seed: SeedLike = 0,
    assign_labels: AssignLabels = "kmeans",
    **kwargs,
) -> Partition:
    """Partition ``graph`` into ``n_clusters`` by normalised spectral clustering."""
    return SpectralClusterer(n_clusters, assign_labels=assign_labels, **kwargs).partition(graph, seed)
