"""Newman's Q communities, one process, the same graph: modscope's Leiden (the default) and Louvain
(igraph's C code, the ``modscope[community]`` extra) against networkx's ``louvain_communities``.

Graph: the Glorot-uniform 784-256x4-10 MLP (``numpy.random.default_rng(0)``, float32 weights;
1818 nodes, 399,872 edges). Both sides start from what they naturally hold, built before the
clock: modscope the `WeightGraph` (its edge list cached), networkx the scipy adjacency a user
would have. Timed, interleaved in every repeat (seed = the repeat's index):

* ``modscope.clustering.community.leiden(graph, seed)`` and ``louvain(graph, seed)``: the igraph
  graph construction, the search, the relabelling and Q included;
* networkx: ``G = nx.from_scipy_sparse_array(adjacency)`` (the construction a user does, timed
  separately and included in the total) and ``nx.community.louvain_communities(G, weight="weight",
  seed=seed)``.

Q of every returned partition is computed by ``nx.community.modularity(G, communities,
weight="weight")`` (one definition for all; outside the clock). ``--nx-repeats`` can be lower
than ``--repeats``: one networkx Louvain on this graph takes seconds. Then a whole
``modscope.score(graph, measure="modularity", n_shuffles=50)`` is timed once, beside networkx's
estimated time for the same 51 searches (its median per-run total x 51). Targets (the project
brief): modscope >= 20x faster than networkx Louvain, Q no lower.

Writes ``benchmarks/results/community.json``:

    .venv/bin/python benchmarks/community.py --repeats 5 --nx-repeats 3 --shuffles 50

Quick check: ``.venv/bin/python benchmarks/community.py --quick --out /tmp/community.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import networkx as nx
import numpy as np
from _common import (
    GLOROT_WIDTHS,
    add_output_flags,
    glorot_graph,
    parse_widths,
    ratio,
    timing,
    widths_name,
    write,
)

import modscope
from modscope.clustering.community import leiden, louvain

TARGET = 20.0


def as_sets(labels: np.ndarray) -> list[set[int]]:
    """modscope labels (-1: no community) -> networkx's list of node sets."""
    return [set(np.flatnonzero(labels == c).tolist()) for c in range(int(labels.max()) + 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default=widths_name(GLOROT_WIDTHS), help="e.g. 784,256x4,10 (default)")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of modscope's Leiden and Louvain")
    ap.add_argument("--nx-repeats", type=int, default=3, help="repeats of networkx's Louvain")
    ap.add_argument("--shuffles", type=int, default=50,
                    help="shuffles of the whole modularity score; 0 skips")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes of the whole score")
    ap.add_argument("--quick", action="store_true", help="a check that the script runs: 784-64x2-10, "
                    "2 repeats, 1 networkx repeat, 5 shuffles")
    add_output_flags(ap, "community")
    args = ap.parse_args()
    if args.quick:
        args.widths, args.repeats, args.nx_repeats, args.shuffles = "784,64x2,10", 2, 1, 5
    widths = parse_widths(args.widths)

    graph = glorot_graph(widths, 0)
    graph.edges  # noqa: B018 (cached before the clock, as after loading)
    adjacency = graph.adjacency
    G_ref = nx.from_scipy_sparse_array(adjacency, edge_attribute="weight")  # for Q, untimed
    print(f"graph {graph}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, networkx {nx.__version__}")

    def q(communities) -> float:
        return float(nx.community.modularity(G_ref, communities, weight="weight"))

    leiden(graph, 0)  # warm-up: igraph's import
    louvain(graph, 0)
    rows: dict[str, dict[str, list]] = {
        name: {"seconds": [], "q": [], "n_communities": []}
        for name in ("modscope_leiden", "modscope_louvain", "networkx_louvain")
    }
    nx_build: list[float] = []
    nx_search: list[float] = []
    for r in range(max(args.repeats, args.nx_repeats)):
        if r < args.repeats:
            for name, find in (("modscope_leiden", leiden), ("modscope_louvain", louvain)):
                t = time.perf_counter()
                found = find(graph, r)
                rows[name]["seconds"].append(time.perf_counter() - t)
                rows[name]["q"].append(q(as_sets(found.labels)))
                rows[name]["n_communities"].append(found.n_clusters)
        if r < args.nx_repeats:
            t0 = time.perf_counter()
            G = nx.from_scipy_sparse_array(adjacency, edge_attribute="weight")
            t1 = time.perf_counter()
            comms = nx.community.louvain_communities(G, weight="weight", seed=r)
            t2 = time.perf_counter()
            nx_build.append(t1 - t0)
            nx_search.append(t2 - t1)
            rows["networkx_louvain"]["seconds"].append(t2 - t0)
            rows["networkx_louvain"]["q"].append(q(comms))
            rows["networkx_louvain"]["n_communities"].append(len(comms))
        print(f"  repeat {r}: " + " | ".join(
            f"{name} {row['seconds'][-1]:.3f} s Q {row['q'][-1]:.4f}"
            for name, row in rows.items() if len(row["seconds"]) == r + 1), flush=True)

    nx_seconds = rows["networkx_louvain"]["seconds"]
    nx_q = statistics.fmean(rows["networkx_louvain"]["q"])
    table = {}
    for name, row in rows.items():
        table[name] = {
            "seconds": timing(row["seconds"]),
            "q": row["q"],
            "q_mean": statistics.fmean(row["q"]),
            "n_communities": row["n_communities"],
        }
        if name != "networkx_louvain":
            faster = table[name]["networkx_over_this"] = ratio(nx_seconds, row["seconds"])
            no_lower = table[name]["q_no_lower"] = table[name]["q_mean"] >= nx_q
            table[name]["meets_target"] = faster >= TARGET and no_lower
    table["networkx_louvain"]["graph_construction_seconds"] = timing(nx_build)
    table["networkx_louvain"]["search_seconds"] = timing(nx_search)
    print(f"{'method':<20}{'median s':>10}{'networkx / this':>17}{'Q mean':>9}{'communities':>13}")
    for name, row in table.items():
        shown = f"{row['networkx_over_this']:.1f}x" if "networkx_over_this" in row else ""
        print(f"{name:<20}{row['seconds']['median']:>10.3f}{shown:>17}{row['q_mean']:>9.4f}"
              f"{statistics.median(row['n_communities']):>13.0f}")
    results = {"graph": graph.summary(), "network": widths_name(widths), "methods": table,
               "target_ratio": TARGET}

    if args.shuffles:
        t = time.perf_counter()
        res = modscope.score(graph, measure="modularity", n_shuffles=args.shuffles, seed=0, jobs=args.jobs)
        ts = time.perf_counter() - t
        per_nx = statistics.median(nx_seconds)
        estimate = per_nx * (args.shuffles + 1)
        print(f"whole modularity score, {args.shuffles} shuffles, jobs={args.jobs}: {ts:.1f} s "
              f"(Q {res.value:.4f}, z {res.null.z:.1f}); networkx estimate {estimate:.0f} s "
              f"({per_nx:.2f} s x {args.shuffles + 1}), {estimate / ts:.0f}x")
        results["whole_score"] = {
            "shuffles": args.shuffles, "jobs": args.jobs, "seconds": ts, "q": res.value,
            "shuffle_mean": res.null.mean, "shuffle_std": res.null.std, "z": res.null.z,
            "networkx_estimate_seconds": estimate,
            "networkx_estimate": f"median networkx Louvain (construction + search) x {args.shuffles + 1}",
            "networkx_estimate_over_this": estimate / ts,
        }
    write(args, results)


if __name__ == "__main__":
    main()
