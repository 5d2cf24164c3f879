"""The script a user would write instead of ``modscope score``: scikit-learn, scipy and safetensors only.

It loads a Linear stack's weights from a ``.safetensors`` file, builds the |W| adjacency of the
layered graph (every neuron a node, |w| on the edge between consecutive layers), drops isolated
nodes, clusters with ``sklearn.cluster.SpectralClustering(affinity="precomputed", n_init=25,
assign_labels="kmeans")`` (the reference's procedure: 25 k-means restarts, lowest inertia), computes
the n-cut ``sum_c cut(c) / vol(c)``, does the same for ``--shuffles`` `layer` shuffles (each
matrix's entries permuted) and prints the z-score. It imports nothing from modscope: it is the
baseline process of ``benchmarks/cli_vs_script.py``.

    python benchmarks/plain_sklearn_score.py NET.safetensors --clusters 12 --shuffles 8 --seed 0 --json OUT
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file
from sklearn.cluster import SpectralClustering


def load_weights(path: str) -> list[np.ndarray]:
    """The 2-D ``*.weight`` tensors in layer order (out x in), as float64."""
    tensors = load_file(path)
    names = [n for n, t in tensors.items() if t.ndim == 2 and n.endswith("weight")]
    names.sort(key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)])
    return [tensors[n].astype(np.float64) for n in names]


def adjacency(weights: list[np.ndarray]) -> sp.csr_matrix:
    """Symmetric |W| adjacency over all neurons, layer after layer."""
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    rows, cols, vals = [], [], []
    for l, w in enumerate(weights):
        out_idx, in_idx = np.nonzero(w)
        rows.append(offsets[l] + in_idx)
        cols.append(offsets[l + 1] + out_idx)
        vals.append(np.abs(w[out_idx, in_idx]))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    n = int(offsets[-1])
    both = (np.concatenate([r, c]), np.concatenate([c, r]))
    return sp.coo_matrix((np.concatenate([v, v]), both), (n, n)).tocsr()


def ncut(a: sp.csr_matrix, labels: np.ndarray) -> float:
    """``sum_c cut(c) / vol(c)`` of a partition of the (isolated-free) graph ``a``."""
    degree = np.asarray(a.sum(axis=1)).ravel()
    total = 0.0
    for c in np.unique(labels):
        inside = labels == c
        vol = degree[inside].sum()
        within = a[inside][:, inside].sum()
        total += (vol - within) / vol
    return float(total)


def cluster_ncut(weights: list[np.ndarray], k: int, n_init: int, seed: int) -> float:
    a = adjacency(weights)
    keep = np.flatnonzero(np.asarray(a.sum(axis=1)).ravel() > 0)  # drop isolated neurons
    a = a[keep][:, keep]
    sc = SpectralClustering(
        n_clusters=k, affinity="precomputed", n_init=n_init, assign_labels="kmeans", random_state=seed
    )
    return ncut(a, sc.fit(a).labels_)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", help=".safetensors state dict of a Linear stack")
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--shuffles", type=int, default=8)
    ap.add_argument("--n-init", type=int, default=25, help="k-means restarts (default 25, the reference's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write ncut, the shuffles' n-cuts and z here")
    args = ap.parse_args()

    weights = load_weights(args.net)
    observed = cluster_ncut(weights, args.clusters, args.n_init, args.seed)
    rng = np.random.default_rng(args.seed)
    null = []
    for i in range(args.shuffles):
        shuffled = [rng.permutation(w.ravel()).reshape(w.shape) for w in weights]
        null.append(cluster_ncut(shuffled, args.clusters, args.n_init, args.seed + 1 + i))
    null = np.asarray(null)
    mean, std = float(null.mean()), float(null.std())
    z = (observed - mean) / std if std > 0 else float("nan")
    print(f"n-cut {observed:.4f}, shuffles {mean:.4f} +- {std:.4f} (n = {args.shuffles}), z = {z:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"ncut": observed, "shuffle_ncuts": null.tolist(), "mean": mean, "std": std,
                       "z": z if np.isfinite(z) else None}, fh, indent=2)


if __name__ == "__main__":
    main()
