"""The n-cut of a partition ([spec §2][spec-2]): ``sum_c cut(c) / vol(c)``, range ``[0, k]``, lower is
more modular; vectorised over many labelings at once (all k-means restarts in one pass)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..graphs.weight_graph import WeightGraph

__all__ = ["ncut", "ncut_batch", "ncut_terms"]


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
    The cut is summed from the crossing edges themselves (not ``vol - 2 within``, which cancels),
    so a partition that no edge crosses has n-cut exactly 0 and such partitions tie exactly.
    """
    labels = np.asarray(labels, dtype=np.int64)
    R = labels.shape[0]
    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    lab = np.where(labels >= 0, labels, k)  # removed nodes fall in a bin that is dropped
    base = (np.arange(R) * (k + 1))[:, None]
    if isinstance(graph, WeightGraph):
        deg = graph.degree
        cut = _cut_layered(graph, lab, k)
    else:
        u, v, w, deg, _ = _edge_list(graph)
        lu, lv = lab[:, u], lab[:, v]
        cross = lu != lv
        ww = np.broadcast_to(w, lu.shape)[cross]
        size = R * (k + 1)
        cut = np.bincount((base + lu)[cross], weights=ww, minlength=size)
        cut += np.bincount((base + lv)[cross], weights=ww, minlength=size)
        cut = cut.reshape(R, k + 1)[:, :k]
    flat_deg = np.broadcast_to(deg, lab.shape).ravel()
    vol = np.bincount((base + lab).ravel(), weights=flat_deg, minlength=R * (k + 1))
    vol = vol.reshape(R, k + 1)[:, :k]
    terms = np.zeros((R, k))
    np.divide(cut, vol, out=terms, where=vol > 0)
    return terms.sum(axis=1), terms


def _cut_layered(graph: WeightGraph, lab: np.ndarray, k: int) -> np.ndarray:
    """``(R, k)`` summed |w| of the edges leaving each cluster, one GEMM per block.

    ``|W_b| @ onehot(labels of the source group)`` gives, for every destination unit and every
    restart, its weight into each cluster; the entries of the other clusters are crossing edges,
    counted for the unit's own cluster and for the cluster on the other end.
    """
    R = lab.shape[0]
    cut = np.zeros((R, k + 1))
    rows = np.arange(R)[None, :]
    for (s, d), w in zip(graph.links, graph.abs_weights, strict=True):
        src = lab[:, graph.offsets[s] : graph.offsets[s + 1]]  # (R, n_src)
        dst = lab[:, graph.offsets[d] : graph.offsets[d + 1]]  # (R, n_dst)
        onehot = np.zeros((src.shape[1], R, k + 1))
        onehot[np.arange(src.shape[1])[:, None], rows, src.T] = 1.0
        cross = (w @ onehot.reshape(src.shape[1], -1)).reshape(-1, R, k + 1)  # (n_dst, R, k+1)
        cross[np.arange(dst.shape[1])[:, None], rows, dst.T] = 0.0  # the unit's own cluster
        np.add.at(cut, (np.broadcast_to(rows, dst.T.shape), dst.T), cross.sum(axis=2))
        cut += cross.sum(axis=0)
    return cut[:, :k]
