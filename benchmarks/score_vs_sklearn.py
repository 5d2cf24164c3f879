"""modscope's spectral clustering vs scikit-learn's SpectralClustering, same graph, one process.

    .venv/bin/python benchmarks/score_vs_sklearn.py [--checkpoint CKPT] [--repeats 5] [--shuffles 200]

Default network: a Glorot-initialised 784-256x4-10 MLP (1818 nodes, ~400k edges), k = 12.
Prints the time per clustering of both, the ratio and both n-cuts (mean over the repeats),
then the wall time of ``--shuffles`` `layer` shuffles with ``--jobs`` workers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from sklearn.cluster import SpectralClustering
from torch import nn

from modscope import load_graph
from modscope.clustering.ncut import ncut
from modscope.clustering.spectral import SpectralClusterer
from modscope.nulls import WeightShuffleNull
from modscope.runtime.executors import LocalExecutor
from modscope.scoring.engine import null_values
from modscope.scoring.measures import NcutMeasure


def glorot_mlp(widths, seed=0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
    for lin in layers:
        nn.init.xavier_uniform_(lin.weight, generator=g)
    return nn.Sequential(*layers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="score this checkpoint instead of a random-init MLP")
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shuffles", type=int, default=200, help="0 skips the shuffle timing")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()

    source = args.checkpoint or glorot_mlp([784, 256, 256, 256, 256, 10])
    graph = load_graph(source)
    nodes = np.flatnonzero(graph.active)
    adjacency = graph.adjacency[nodes][:, nodes]
    k = args.clusters
    print(
        f"graph {graph}  k={k}  repeats={args.repeats}  python {platform.python_version()}  "
        f"cores {os.cpu_count()}"
    )

    ours = SpectralClusterer(k)
    ours.partition(graph, 0)  # warm-up (imports, BLAS initialisation) for both sides
    SpectralClustering(k, affinity="precomputed", random_state=0).fit(adjacency)

    t_ours, t_sk, c_ours, c_sk = [], [], [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        p = ours.partition(graph, r)
        t_ours.append(time.perf_counter() - t)
        c_ours.append(p.ncut)
        t = time.perf_counter()
        labels = SpectralClustering(k, affinity="precomputed", random_state=r).fit(adjacency).labels_
        t_sk.append(time.perf_counter() - t)
        full = np.full(graph.n_nodes, -1)
        full[nodes] = labels
        c_sk.append(ncut(graph, full))
        print(
            f"  repeat {r}: modscope {t_ours[-1]:.3f} s ncut {c_ours[-1]:.4f} | "
            f"scikit-learn {t_sk[-1]:.3f} s ncut {c_sk[-1]:.4f}"
        )
    mo, ms = statistics.median(t_ours), statistics.median(t_sk)
    print(f"per clustering (median): modscope {mo:.3f} s, scikit-learn {ms:.3f} s, ratio {ms / mo:.1f}x")
    no_worse = sum(a <= b + 1e-12 for a, b in zip(c_ours, c_sk, strict=True))
    print(
        f"n-cut (mean): modscope {np.mean(c_ours):.4f}, scikit-learn {np.mean(c_sk):.4f} "
        f"(modscope lower or equal in {no_worse}/{args.repeats})"
    )
    ref = SpectralClusterer(k, n_init=25, select="inertia")  # the reference's settings
    t_ref, c_ref = [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        c_ref.append(ref.partition(graph, r).ncut)
        t_ref.append(time.perf_counter() - t)
    t1 = statistics.median(t_ref)
    print(
        f"modscope with the reference's settings (25 restarts, chosen by inertia): {t1:.3f} s, "
        f"ratio {ms / t1:.1f}x, n-cut (mean) {np.mean(c_ref):.4f}"
    )

    result = {
        "graph": repr(graph),
        "k": k,
        "repeats": args.repeats,
        "modscope_seconds": t_ours,
        "sklearn_seconds": t_sk,
        "ratio": ms / mo,
        "modscope_ncut": c_ours,
        "sklearn_ncut": c_sk,
        "modscope_one_thread_seconds": t1,
    }
    if args.shuffles:
        t = time.perf_counter()
        null_values(
            graph, WeightShuffleNull("layer"), NcutMeasure(ours), args.shuffles, seed=0,
            executor=LocalExecutor(args.jobs), progress=sys.stderr.isatty(),
        )
        ts = time.perf_counter() - t
        print(
            f"{args.shuffles} layer shuffles, jobs={args.jobs}: {ts:.1f} s ({ts / args.shuffles:.3f} s each)"
        )
        result.update(shuffles=args.shuffles, jobs=args.jobs, shuffle_seconds=ts)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
