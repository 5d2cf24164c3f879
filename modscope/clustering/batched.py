"""Spectral embeddings of many same-architecture graphs from one batched eigensolve on a torch
device (a GPU: one ``torch.linalg.eigh`` over a stack of Gram matrices)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .embedding import embed_rows, gram_side

__all__ = ["batched_singular"]


def batched_singular(graphs: Sequence, k: int, device) -> list:
    """Spectral embeddings of same-architecture graphs from one batched Gram eigensolve.

    Returns, per graph, ``(embedding, eigenvalues, nodes)`` as `spectral_embedding` gives, or
    ``None`` where the top ``k`` singular values are not all positive (the unbatched path
    then decides). The smaller bipartite side's Gram matrix ``N^T N`` is block tridiagonal in
    the normalised weights ``N_l = D^-1/2 |W_l| D^-1/2``; degree-0 nodes are zero rows, which
    add only zero eigenvalues.
    """
    import torch

    g0 = graphs[0]
    if not g0.is_chain:  # the batched Gram assembly is written for layered graphs
        return [None] * len(graphs)
    widths, off, L = g0.layer_widths, g0.offsets, g0.n_layers
    side = [int(l) for l in gram_side(g0)]
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
