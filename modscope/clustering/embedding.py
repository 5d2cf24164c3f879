"""The spectral embedding ([spec §2][spec-2]): eigenvectors of the normalised Laplacian with the smallest
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
    "ITERATIVE_SIDE",
    "EigenSolver",
    "components",
    "embed_rows",
    "gram_side",
    "spectral_embedding",
]

EigenSolver = Literal["auto", "bipartite", "iterative", "dense", "arpack"]

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


def _dinv(graph: WeightGraph) -> np.ndarray:
    """``(n_nodes,)`` ``1 / sqrt(degree)``, 0 for degree-0 nodes."""
    dinv = np.zeros(graph.n_nodes)
    np.divide(1.0, np.sqrt(graph.degree), out=dinv, where=graph.active)
    return dinv


def gram_side(graph: WeightGraph) -> np.ndarray | None:
    """Group ids of the smaller side of a bipartite graph (colour 1 on a tie: a chain's odd
    layers), whose Gram matrix is solved; ``None`` when the graph is not bipartite."""
    colours = graph.colours
    if colours is None:
        return None
    sizes = np.asarray(graph.sizes)
    one = np.flatnonzero(colours == 1)
    zero = np.flatnonzero(colours == 0)
    return one if sizes[one].sum() <= sizes[zero].sum() else zero


def _sides(graph: WeightGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(side, other, side_nodes, keep)`` of a bipartite graph: the Gram side's groups (`gram_side`), the
    other side's, the Gram side's node ids group by group and which of those nodes are active."""
    side = gram_side(graph)
    side_nodes = np.concatenate([np.arange(graph.offsets[g], graph.offsets[g + 1]) for g in side])
    return side, np.setdiff1d(np.arange(graph.n_layers), side), side_nodes, graph.active[side_nodes]


def _blocks_at(graph: WeightGraph, t: int, dinv: np.ndarray | None):
    """``[(side group, t_is_dst, M)]`` for other-side group ``t``: each incident block's |W| in
    its stored ``(n_dst, n_src)`` orientation, scaled by ``dinv`` on ``t``'s axis when given."""
    out = []
    nodes = graph.group_nodes(t)
    for b, t_is_dst in graph.incident(t):
        src, dst = graph.links[b]
        w = graph.abs_weights[b]
        if dinv is not None:
            w = w * dinv[nodes, None] if t_is_dst else w * dinv[None, nodes]
        out.append((src if t_is_dst else dst, t_is_dst, w))
    return out


def _gather(blocks: list, x: np.ndarray, off: np.ndarray, n: int) -> np.ndarray:
    """``(n, b)``: ``sum R x_s`` over an other-side group's ``blocks`` (`_blocks_at`; ``n`` its units),
    ``R`` each block oriented with the group's units on the rows and ``x_s`` the rows of ``x``
    ``(n_nodes, b)`` at the block's side group."""
    u = np.zeros((n, x.shape[1]))
    for s, t_is_dst, M in blocks:
        x_s = x[off[s] : off[s + 1]]
        u += M @ x_s if t_is_dst else M.T @ x_s
    return u


def components(graph: WeightGraph) -> tuple[int, np.ndarray]:
    """``(n, labels)``: connected components of the active nodes; -1 for degree-0 nodes.

    A weight matrix without zeros joins all its units, so it contributes a star of
    ``n_src + n_dst`` edges instead of all ``n_src n_dst``: dense networks cost one scan.
    """
    from scipy.sparse.csgraph import connected_components

    off, rows, cols = graph.offsets, [], []
    for (s, d), w in zip(graph.links, graph.abs_weights, strict=True):
        if np.all(w > 0):
            j, i = np.arange(w.shape[1]), np.arange(w.shape[0])
            rows += [np.full(j.size, off[d]), off[d] + i]
            cols += [off[s] + j, np.full(i.size, off[s])]
        else:
            i, j = np.nonzero(w)
            rows.append(off[d] + i)
            cols.append(off[s] + j)
    r, c = np.concatenate(rows), np.concatenate(cols)
    pattern = sp.csr_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(graph.n_nodes,) * 2)
    _, lab = connected_components(pattern, directed=False)
    lab = np.where(graph.active, lab, -1)
    kept, lab[graph.active] = np.unique(lab[graph.active], return_inverse=True)
    return int(kept.size), lab


def _operator_singular(graph: WeightGraph, k: int, ss: np.random.SeedSequence):
    """Top-``k`` singular triplets of the normalised bipartite block without forming it.

    Returns ``(vecs, s)`` as `_gram_singular` does, or ``None`` when the smaller side has
    fewer than ``k`` active nodes. Lanczos (ARPACK) runs on ``G = B^T B`` of the smaller side,
    applied as ``D^-1/2 |W| D^-1 |W|^T D^-1/2`` products with the weight matrices themselves:
    memory stays at a few vectors, time at O(edges) per product. Each connected component
    gives singular value 1 with the known vector ``sqrt(degree)`` on the component (Perron);
    those are put in exactly and projected out, so that Lanczos, which finds a repeated
    eigenvalue only once, never has to.
    """
    off = graph.offsets
    dinv = _dinv(graph)
    side, other, side_nodes, keep = _sides(graph)
    m = int(keep.sum())
    if m < k:
        return None
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
    incident = {int(t): _blocks_at(graph, int(t), None) for t in other}

    # every active node is in a component, so Q has a column (unless k = 0: then P = I)
    def gram(x: np.ndarray) -> np.ndarray:  # (m, b) -> (m, b): P G P with P = I - Q Q^T
        x = x.reshape(m, -1)
        x = x - Q @ (Q.T @ x)  # the components' eigenvalue 1 removed, from the input and the output
        full = np.zeros((graph.n_nodes, x.shape[1]))
        full[side_nodes[keep]] = x
        full *= dinv[:, None]
        out = np.zeros_like(full)
        for t, blocks in incident.items():
            u = _gather(blocks, full, off, graph.sizes[t])
            u *= (dinv[off[t] : off[t + 1]] ** 2)[:, None]
            for s, t_is_dst, M in blocks:
                out[off[s] : off[s + 1]] += M.T @ u if t_is_dst else M @ u  # R^T u: back to the side group
        out *= dinv[:, None]
        y = out[side_nodes[keep]]
        return y - Q @ (Q.T @ y)

    rest = k - Q.shape[1]
    if rest > 0:
        op = spla.LinearOperator((m, m), matvec=gram, matmat=gram, dtype=np.float64)
        v0 = np.random.default_rng(ss).uniform(-1, 1, m)
        s2, V = spla.eigsh(op, k=rest, which="LA", v0=v0, ncv=min(m, max(2 * rest + 1, 20)))
        top = np.argsort(-s2)
        s2, V = np.concatenate([np.ones(Q.shape[1]), s2[top]]), np.hstack([Q, V[:, top]])
    else:
        s2, V = np.ones(k), Q[:, :k]
    vecs, s, scale = _placed(graph.n_nodes, side_nodes[keep], V, s2)
    sv = vecs * dinv[:, None]
    for t, blocks in incident.items():  # u = B v / sigma on the other side, group by group
        u = _gather(blocks, sv, off, graph.sizes[t])
        vecs[off[t] : off[t + 1]] = u * dinv[off[t] : off[t + 1], None] * scale
    return vecs, s


def _placed(n_nodes: int, rows: np.ndarray, V: np.ndarray, s2: np.ndarray):
    """``(vecs, s, 1 / s)``: the Gram side's eigenvectors ``V`` ``(len(rows), k)`` at node ids ``rows`` of
    ``(n_nodes, k)`` zeros, the singular values ``s = sqrt(s2)`` ``(k,)`` and their inverses (0 where
    ``s`` is 0), which turn ``B v`` into the other side's ``u``."""
    s = np.sqrt(np.clip(s2, 0.0, None))
    vecs = np.zeros((n_nodes, V.shape[1]))
    vecs[rows] = V
    return vecs, s, np.where(s > 0, 1.0 / np.where(s > 0, s, 1.0), 0.0)


def _cross(Mi: np.ndarray, di: bool, Mj: np.ndarray, dj: bool) -> np.ndarray:
    """``R_i^T R_j`` of two blocks at the same other-side group (``d``: that group is the block's
    destination), written so that a chain computes ``(M[t] @ M[t-1]).T`` exactly as before."""
    if di and not dj:
        return (Mj @ Mi).T
    if di and dj:
        return Mi.T @ Mj
    if not di and not dj:
        return Mi @ Mj.T
    return Mi @ Mj


def _gram_singular(graph: WeightGraph, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Top-``k`` singular triplets of the normalised bipartite block, from the Gram matrix.

    Returns ``(vecs, s)``: ``vecs`` ``(n_nodes, k)`` holds ``u`` on one side's nodes and ``v``
    on the other's (zero rows for degree-0 nodes), ``s`` descending. The Gram matrix of the
    smaller side is assembled group by group of the other side, from the blocks that meet there
    (for a chain it is block tridiagonal: only layers two apart share neighbours), so the zero
    blocks of ``B`` cost nothing and at most one group's scaled blocks are held at a time.
    ``None`` when the smaller side has fewer than ``k`` active nodes.
    """
    sizes, off = graph.sizes, graph.offsets
    dinv = _dinv(graph)
    side, other, side_nodes, keep = _sides(graph)
    # B's entries are d_s^-1/2 |w| d_o^-1/2 (s on the Gram side, o on the other), so
    # G = B^T B = D_s^-1/2 (sum |W| D_o^-1 |W|^T) D_s^-1/2: the products need each |W| scaled
    # on its other-side axis only (one pass), and D_s^-1/2 scales the small G afterwards.
    pos = {int(g): p for g, p in zip(side, np.cumsum([0] + [sizes[g] for g in side]), strict=False)}
    # Fortran order throughout: LAPACK's and BLAS's layout, so neither the syrk results nor
    # eigh's input are copied or added across the grain
    G = np.zeros((side_nodes.size, side_nodes.size), order="F")
    syrk = sla.blas.dsyrk  # fills the upper triangle; given a transposed (Fortran) view, no copy
    for t in other:
        blocks = _blocks_at(graph, int(t), dinv)
        at = [slice(pos[s], pos[s] + sizes[s]) for s, _, _ in blocks]
        for (_, t_is_dst, M), a in zip(blocks, at, strict=True):  # R^T R, R the block t-rows-first
            G[a, a] += syrk(1.0, M.T, trans=0 if t_is_dst else 1)
        for i in range(len(blocks)):
            for j in range(i + 1, len(blocks)):
                (si, di, Mi), (sj, dj, Mj) = blocks[i], blocks[j]
                P = _cross(Mi, di, Mj, dj)  # R_i^T R_j, into the upper triangle
                if pos[si] < pos[sj]:
                    G[at[i], at[j]] += P
                elif pos[si] > pos[sj]:
                    G[at[j], at[i]] += P.T
                else:  # two blocks join the same pair of groups: their weights add up
                    G[at[i], at[i]] += P + P.T
        del blocks
    d_side = dinv[side_nodes]
    G *= d_side[:, None]
    G *= d_side[None, :]
    if keep.sum() < k:
        return None
    if not keep.all():
        G = G[np.ix_(keep, keep)]
    m = G.shape[0]
    s2, V = sla.eigh(G, lower=False, subset_by_index=[m - k, m - 1], overwrite_a=True, check_finite=False)
    vecs, s, scale = _placed(graph.n_nodes, side_nodes[keep], V[:, ::-1], s2[::-1])
    # u = B v / sigma on the other side, group by group: B v = D_o^-1/2 |W| (D_s^-1/2 v), and
    # the scaled blocks already carry one D_o^-1/2
    sv = vecs * dinv[:, None]
    for t in other:
        vecs[off[t] : off[t + 1]] = _gather(_blocks_at(graph, int(t), dinv), sv, off, sizes[t]) * scale
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
    nodes = np.flatnonzero(graph.active)
    k = n_components
    if k >= nodes.size:
        raise ModscopeError(f"cannot split {nodes.size} connected nodes into {k} clusters")
    side = gram_side(graph)
    plain = "dense" if nodes.size <= 6000 else "arpack"  # the whole graph's eigenproblem
    solver = eigen_solver
    if solver == "auto" and side is None:  # not bipartite (recurrent blocks, stream-to-stream edges)
        solver = plain
    elif solver == "auto":
        solver = "bipartite" if sum(graph.sizes[g] for g in side) <= ITERATIVE_SIDE else "iterative"
    if solver in ("bipartite", "iterative") and side is None:
        raise ModscopeError(f"eigen solver {solver!r} needs a bipartite graph; this one is not (use 'dense')")
    if solver in ("bipartite", "iterative"):
        found = _gram_singular(graph, k) if solver == "bipartite" else _operator_singular(graph, k, ss)
        if found is not None:
            vecs, s = found
            return embed_rows(graph, vecs[nodes] / np.sqrt(2.0), nodes), 1.0 - s, nodes
        solver = plain  # the rest of the spectrum is the null space: use the plain path
    if solver not in ("dense", "arpack"):
        raise ModscopeError(f"unknown eigen solver {eigen_solver!r}")
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
    return embed_rows(graph, vecs[:, order], nodes), 1.0 - mu[order], nodes


def embed_rows(graph: WeightGraph, vecs: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Eigenvectors ``(len(nodes), k)`` of ``D^-1/2 A D^-1/2`` -> the embedding: signs fixed
    (largest-magnitude entry positive), rows scaled by ``D^-1/2``."""
    return _sign_flip(vecs) / np.sqrt(graph.degree[nodes])[:, None]
