"""One clustering, one process, the same graph: modscope's spectral clustering against scikit-learn's
``SpectralClustering``, both with the reference's k-means settings; then the wall time of a whole
`layer`-shuffle null.

Graph: a Glorot-uniform 784-256x4-10 MLP (1818 nodes, 399,872 edges; ``numpy.random.default_rng(0)``,
float32 weights as a checkpoint holds them), or ``--checkpoint``; k = 12. Side by side, interleaved
in every repeat (seed = the repeat's index), each warmed up once:

* ``SpectralClusterer(12)``: modscope's default, the reference's procedure (25 k-means restarts, the
  restart of lowest inertia kept; 100 above 2000 non-isolated nodes);
* ``sklearn.cluster.SpectralClustering(12, affinity="precomputed", n_init=25)`` on the adjacency of
  the non-isolated nodes (the same restarts), its n-cut computed by modscope's ``ncut``; run with
  scikit-learn's threads as they are (``env``) and limited to one by threadpoolctl (``1``), see
  ``--sklearn-threads``: its OpenMP k-means slows sharply when the cores are busy;
* for reference: ``SpectralClusterer(12, select="ncut")`` and ``SpectralClusterer(12, restarts=10)``.

Each repeat runs them in a fresh random order (``default_rng(0)``): whatever runs right after a
scikit-learn clustering is measurably slower, so no run may always take that place. Every
repeat's time and n-cut is kept; the ratio is median(scikit-learn) / median(modscope default).
Target (the project brief): >= 15x with an n-cut no worse. Then ``modscope.score(graph,
n_clusters=12, null="layer", n_shuffles=--shuffles, jobs=--jobs)`` is timed once (``--shuffles 0``
skips it).

Writes ``benchmarks/results/score_vs_sklearn.json``:

    .venv/bin/python benchmarks/score_vs_sklearn.py --repeats 9 --shuffles 200 --jobs 2

Quick check: ``.venv/bin/python benchmarks/score_vs_sklearn.py --quick --out /tmp/score_vs_sklearn.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from contextlib import nullcontext

import numpy as np
from _common import GLOROT_WIDTHS, add_output_flags, glorot_graph, ratio, timing, widths_name, write
from sklearn.cluster import SpectralClustering
from threadpoolctl import threadpool_limits

import modscope
from modscope.clustering.ncut import ncut

TARGET = 15.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="score this network instead of the Glorot 784-256x4-10 MLP")
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--sklearn-threads", default="env,1",
                    help="comma list: env (scikit-learn's threads as they are) and/or 1 (threadpoolctl)")
    ap.add_argument("--shuffles", type=int, default=200, help="layer shuffles of the whole score; 0 skips")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of the whole score")
    ap.add_argument("--quick", action="store_true",
                    help="a check that the script runs: 2 repeats, scikit-learn on one thread, 4 shuffles")
    add_output_flags(ap, "score_vs_sklearn")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.sklearn_threads, args.shuffles = 2, "1", 4
    sk_settings = [t.strip() for t in args.sklearn_threads.split(",") if t.strip()]

    graph = modscope.load_graph(args.checkpoint) if args.checkpoint else glorot_graph(GLOROT_WIDTHS, 0)
    nodes = np.flatnonzero(graph.active)
    adjacency = graph.adjacency[nodes][:, nodes]
    k = args.clusters
    print(f"graph {graph}  k={k}  repeats={args.repeats}  python {platform.python_version()}  "
          f"cores {os.cpu_count()}  load {os.getloadavg()[0]:.2f}")

    ours = {
        "modscope": modscope.SpectralClusterer(k),  # the default: the reference's procedure
        "modscope_select_ncut": modscope.SpectralClusterer(k, select="ncut"),
        "modscope_10_restarts": modscope.SpectralClusterer(k, restarts=10),
    }

    def sklearn_ncut(seed: int, threads: str) -> float:
        limit = nullcontext() if threads == "env" else threadpool_limits(int(threads))
        with limit:
            labels = SpectralClustering(k, affinity="precomputed", n_init=25, random_state=seed).fit(
                adjacency
            ).labels_
        full = np.full(graph.n_nodes, -1)
        full[nodes] = labels
        return ncut(graph, full)

    runs = {name: (lambda seed, c=c: c.partition(graph, seed).ncut) for name, c in ours.items()}
    for t in sk_settings:
        runs[f"sklearn_threads_{t}"] = lambda seed, t=t: sklearn_ncut(seed, t)
    for fn in runs.values():  # warm-up: imports, BLAS and OpenMP start-up
        fn(0)

    seconds: dict[str, list[float]] = {name: [] for name in runs}
    ncuts: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    order_rng = np.random.default_rng(0)  # a fresh order per repeat: no run always follows another
    for r in range(args.repeats):
        for i in order_rng.permutation(len(names)):
            name = names[i]
            fn = runs[name]
            t = time.perf_counter()
            ncuts[name].append(fn(r))
            seconds[name].append(time.perf_counter() - t)
        print("  repeat " + str(r) + ": " + " | ".join(
            f"{name} {seconds[name][-1]:.3f} s {ncuts[name][-1]:.4f}" for name in names), flush=True)

    base = seconds["modscope"]
    table = {}
    for name in runs:
        table[name] = {
            "seconds": timing(seconds[name]),
            "ncut": ncuts[name],
            "ncut_mean": statistics.fmean(ncuts[name]),
        }
    for name in runs:
        if name.startswith("sklearn"):
            table[name]["ratio_over_modscope"] = ratio(seconds[name], base)
            table[name]["modscope_ncut_lower_or_equal"] = sum(
                a <= b + 1e-12 for a, b in zip(ncuts["modscope"], ncuts[name], strict=True))
    print(f"{'clustering':<26}{'median s':>10}{'ratio':>8}{'n-cut mean':>12}")
    for name, row in table.items():
        shown = f"{row['ratio_over_modscope']:.1f}x" if "ratio_over_modscope" in row else ""
        print(f"{name:<26}{row['seconds']['median']:>10.3f}{shown:>8}{row['ncut_mean']:>12.4f}")

    head = f"sklearn_threads_{'env' if 'env' in sk_settings else sk_settings[0]}"
    headline = {
        "baseline": head,
        "ratio": table[head]["ratio_over_modscope"],
        "ncut_modscope_mean": table["modscope"]["ncut_mean"],
        "ncut_sklearn_mean": table[head]["ncut_mean"],
        "target_ratio": TARGET,
    }
    headline["ncut_no_worse"] = headline["ncut_modscope_mean"] <= headline["ncut_sklearn_mean"] + 1e-12
    headline["meets_target"] = headline["ratio"] >= TARGET and headline["ncut_no_worse"]
    print(f"headline: {headline['ratio']:.1f}x against {head} (target >= {TARGET:.0f}x), n-cut "
          f"{headline['ncut_modscope_mean']:.4f} vs {headline['ncut_sklearn_mean']:.4f}")
    results = {"graph": graph.summary(), "network": args.checkpoint or widths_name(GLOROT_WIDTHS),
               "k": k, "clusterings": table, "headline": headline}

    if args.shuffles:
        t = time.perf_counter()
        res = modscope.score(graph, n_clusters=k, null="layer", n_shuffles=args.shuffles, seed=0,
                             jobs=args.jobs)
        ts = time.perf_counter() - t
        print(f"whole score, {args.shuffles} layer shuffles, jobs={args.jobs}: {ts:.1f} s "
              f"({ts / args.shuffles:.3f} s per shuffle), n-cut {res.value:.4f}, z {res.null.z:.2f}")
        results["whole_score"] = {
            "shuffles": args.shuffles, "jobs": args.jobs, "seconds": ts,
            "seconds_per_shuffle": ts / args.shuffles, "ncut": res.value,
            "shuffle_mean": res.null.mean, "shuffle_std": res.null.std, "z": res.null.z,
        }
    write(args, results)


if __name__ == "__main__":
    main()
