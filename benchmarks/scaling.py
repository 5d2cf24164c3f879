"""Nodes vs seconds and peak memory: modscope's clustering against scikit-learn's, one core, each
measurement a fresh process.

Each network is a Glorot-uniform MLP 784-H x L-10 (``numpy.random.default_rng(0)``, float32 weights,
the benchmarks' common network at 256x4). Every measurement runs in its own subprocess with
``OMP_NUM_THREADS=1``: the time of one k = 12 clustering (graph already built, first call
included) and the process's peak resident memory (``ru_maxrss``), next to the peak of a process that
only builds the graph (the baseline both sides pay). modscope runs its default ``SpectralClusterer``
(the reference's procedure: 25 k-means restarts, 100 above 2000 non-isolated nodes, lowest inertia);
scikit-learn runs ``SpectralClustering(affinity="precomputed")`` with its defaults (ARPACK
shift-invert, 10 k-means restarts) and is killed after ``--cap`` seconds. Each side runs
``--repeats`` fresh processes per size (every run kept, the median reported). ``--score`` also
times a whole ``modscope.score`` (k = 12, ``--shuffles`` layer shuffles, ``--jobs`` workers) on that
size, once. Prints a markdown table and writes a PNG beside the receipt.

Writes ``benchmarks/results/scaling.json`` and ``benchmarks/scaling.png``:

    .venv/bin/python benchmarks/scaling.py --repeats 3

Quick check:
``.venv/bin/python benchmarks/scaling.py --quick --out /tmp/scaling.json --png /tmp/scaling.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from _common import add_output_flags, timing, write


def child(what: str, hidden: int, depth: int, k: int, shuffles: int, jobs: int) -> None:
    """One measurement in this process; prints one JSON line."""
    from _common import glorot_graph

    graph = glorot_graph([784] + [hidden] * depth + [10], 0)
    graph.degree  # noqa: B018 (built before the clock starts, as a loaded graph would be)
    out = {"nodes": graph.n_nodes, "edges": graph.n_edges}
    t = time.perf_counter()
    if what == "modscope":
        from modscope.clustering.spectral import SpectralClusterer

        out["ncut"] = SpectralClusterer(k).partition(graph, 0).ncut
    elif what == "sklearn":
        from sklearn.cluster import SpectralClustering

        from modscope.clustering.ncut import ncut

        nodes = np.flatnonzero(graph.active)
        adjacency = graph.adjacency[nodes][:, nodes]
        labels = np.full(graph.n_nodes, -1)
        labels[nodes] = SpectralClustering(k, affinity="precomputed", random_state=0).fit(adjacency).labels_
        out["ncut"] = ncut(graph, labels)
    elif what == "score":
        from modscope.scoring.engine import score

        res = score(graph, n_clusters=k, n_shuffles=shuffles, null="layer", seed=0, jobs=jobs)
        out.update(ncut=res.ncut, z=res.null.z, shuffle_mean=res.null.mean)
    out["seconds"] = time.perf_counter() - t
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(what: str, hidden: int, depth: int, k: int, cap: float, shuffles=0, jobs=1) -> dict | None:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--child", what, *map(str, (hidden, depth, k, shuffles, jobs))]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=cap)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if what == "sklearn":  # the baseline giving up (e.g. SuperLU's MemoryError) is a result
            return {"error": last.split(":")[0]}
        raise RuntimeError(f"{what} {hidden}x{depth} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def repeated(what: str, hidden: int, depth: int, k: int, cap: float, repeats: int) -> dict | None:
    """``repeats`` fresh-process measurements: the median seconds, the largest peak, every run;
    ``None`` when one passed the cap, the error when the baseline gave up."""
    runs = []
    for _ in range(repeats):
        r = measure(what, hidden, depth, k, cap)
        if r is None or "error" in r:
            return r
        runs.append(r)
    out = dict(runs[0])
    out["seconds"] = timing([r["seconds"] for r in runs])["median"]
    out["peak_mb"] = max(r["peak_mb"] for r in runs)
    out["runs"] = [{"seconds": r["seconds"], "peak_mb": r["peak_mb"]} for r in runs]
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        what, *nums = sys.argv[2:]
        child(what, *map(int, nums))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256x4,512x4,1024x4,1024x8,4096x4", help="HIDDENxDEPTH list")
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per size and side")
    ap.add_argument("--cap", type=float, default=120.0, help="seconds before a run is abandoned")
    ap.add_argument("--score", default="1024x8", help="size of the whole-score timing ('' skips)")
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--png", default="benchmarks/scaling.png", help="the figure ('' skips)")
    ap.add_argument("--quick", action="store_true", help="a check that the script runs: 256x2 and 256x4, "
                    "1 repeat, a 256x4 score with 4 shuffles")
    add_output_flags(ap, "scaling")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.score, args.shuffles = "256x2,256x4", 1, "256x4", 4
    sizes = [tuple(map(int, s.split("x"))) for s in args.sizes.split(",") if s]
    print(f"cores {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"k = {args.clusters}, cap {args.cap:.0f} s, one thread per process, {args.repeats} repeat(s)")

    def cell(r, key, fmt):
        return "> cap" if r is None else r["error"] if "error" in r else format(r[key], fmt)

    def ok(r):
        return r is not None and "error" not in r

    rows = []
    for hidden, depth in sizes:
        row = {"network": f"784-{hidden}x{depth}-10"}
        for what in ("base", "modscope", "sklearn"):
            # "base" builds the graph and stops: the memory every side pays before clustering
            r = repeated("none" if what == "base" else what, hidden, depth, args.clusters, args.cap,
                         1 if what == "base" else args.repeats)
            row[what] = r
            if r and "error" not in r:
                row.update(nodes=r["nodes"], edges=r["edges"])
        if ok(row["modscope"]) and ok(row["sklearn"]):
            row["ratio"] = row["sklearn"]["seconds"] / row["modscope"]["seconds"]
        rows.append(row)
        shown = [
            f"{w} {cell(row[w], 'seconds', '.2f')} s {cell(row[w], 'peak_mb', '.0f')} MB"
            for w in ("base", "modscope", "sklearn")
        ]
        print(f"  {row['network']}: " + ", ".join(shown), flush=True)

    print("\n| network | nodes | edges | modscope s | scikit-learn s | ratio | modscope peak MB "
          "| scikit-learn peak MB | graph only MB | n-cut modscope | n-cut scikit-learn |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        m, s, b = row["modscope"], row["sklearn"], row["base"]
        ratio = f"{row['ratio']:.1f}x" if "ratio" in row else (
            f"> {args.cap / m['seconds']:.0f}x" if ok(m) and s is None else "–")
        cells = [row["network"], row.get("nodes", ""), f"{row.get('edges', 0):,}", cell(m, "seconds", ".2f"),
                 cell(s, "seconds", ".2f"), ratio, cell(m, "peak_mb", ".0f"), cell(s, "peak_mb", ".0f"),
                 cell(b, "peak_mb", ".0f"), cell(m, "ncut", ".4f"), cell(s, "ncut", ".4f")]
        print("| " + " | ".join(map(str, cells)) + " |")

    result = {"rows": rows, "clusters": args.clusters, "cap": args.cap}
    if args.score:
        hidden, depth = map(int, args.score.split("x"))
        r = measure("score", hidden, depth, args.clusters, 3600, args.shuffles, args.jobs)
        result["score"] = {"network": f"784-{hidden}x{depth}-10", "shuffles": args.shuffles,
                           "jobs": args.jobs, **r}
        print(f"\nwhole score 784-{hidden}x{depth}-10, k = {args.clusters}, {args.shuffles} layer shuffles, "
              f"jobs {args.jobs}: {r['seconds']:.1f} s (peak {r['peak_mb']:.0f} MB in the parent), "
              f"n-cut {r['ncut']:.4f} vs shuffles {r['shuffle_mean']:.4f}, z {r['z']:.2f}")
    result["load_after"] = list(os.getloadavg())
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        for what, style in (("modscope", "o-"), ("sklearn", "s--")):
            pts = [(r["nodes"], r[what]) for r in rows if ok(r.get(what))]
            a1.plot([p[0] for p in pts], [p[1]["seconds"] for p in pts], style, label=what)
            a2.plot([p[0] for p in pts], [p[1]["peak_mb"] for p in pts], style, label=what)
        pts = [(r["nodes"], r["base"]) for r in rows if ok(r.get("base"))]
        a2.plot([p[0] for p in pts], [p[1]["peak_mb"] for p in pts], ":", color="grey", label="graph only")
        a1.axhline(args.cap, color="grey", lw=0.8, ls=":")
        a1.set(xscale="log", yscale="log", xlabel="nodes", ylabel="seconds per clustering (k = 12, 1 thread)")
        a2.set(xscale="log", xlabel="nodes", ylabel="peak resident memory (MB)")
        for a in (a1, a2):
            a.legend()
            a.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
        result["png"] = args.png
        print(f"wrote {args.png}")
    write(args, result)


if __name__ == "__main__":
    main()
