"""GPT-2-small-sized weights: ``blocks`` (every MLP block against its shuffles) and one clustering
of the whole merged-stream graph (spec §1b), beside scikit-learn on the same graphs.

The network is GPT-2 small's shape with random weights (12 blocks, d 768, d_ff 3072; normal(0,
0.02) weights as GPT-2 initialises them, LayerNorm gains 1, ``numpy.random.default_rng(0)``),
written as a Hugging Face ``GPT2Model`` safetensors file (Conv1D ``in x out`` weights, no
``transformer.`` prefix, as the hub's ``gpt2`` checkpoint), read back by ``modscope.load_graph``
(the whole graph: the stream of 768 units, 12 x 768 attention value units and 12 x 3072 MLP units;
46,848 nodes, 70.8M edges) and ``modscope.score_blocks`` (twelve 768-3072-768 graphs). Each part
runs in a fresh process so its peak memory (``ru_maxrss``) is its own:

- ``whole``: the time to read the file into the graph, and one clustering with the reference
  procedure (k = 12, 100 k-means restarts above 2000 nodes, lowest inertia), its peak memory;
- ``blocks``: ``score_blocks`` with k = 12 and ``--shuffles`` layer shuffles per block, one worker
  per core (``--jobs``);
- ``sklearn_block`` / ``sklearn_whole``: ``SpectralClustering(12, affinity="precomputed",
  n_init=100)`` on one block's graph and on the whole graph (killed after ``--cap`` seconds).

Targets (issue 16): blocks under 10 minutes, the whole-graph clustering under 60 s and 4 GiB.

    .venv/bin/python benchmarks/transformer_graphs.py

Quick check (2 blocks, d 128, 3 shuffles): ``--quick --out /tmp/transformer_graphs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_output_flags, write


def make_gpt2(path: Path, layers: int, d: int, f: int, vocab: int, positions: int, seed: int) -> None:
    """A GPT2Model state dict with GPT-2's names and layouts, random weights, as safetensors."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    t = {"wte.weight": normal(vocab, d), "wpe.weight": normal(positions, d)}
    for i in range(layers):
        p = f"h.{i}."
        t[p + "ln_1.weight"], t[p + "ln_1.bias"] = np.ones(d, np.float32), np.zeros(d, np.float32)
        t[p + "attn.c_attn.weight"], t[p + "attn.c_attn.bias"] = normal(d, 3 * d), np.zeros(3 * d, np.float32)
        t[p + "attn.c_proj.weight"], t[p + "attn.c_proj.bias"] = normal(d, d), np.zeros(d, np.float32)
        t[p + "ln_2.weight"], t[p + "ln_2.bias"] = np.ones(d, np.float32), np.zeros(d, np.float32)
        t[p + "mlp.c_fc.weight"], t[p + "mlp.c_fc.bias"] = normal(d, f), np.zeros(f, np.float32)
        t[p + "mlp.c_proj.weight"], t[p + "mlp.c_proj.bias"] = normal(f, d), np.zeros(d, np.float32)
    t["ln_f.weight"], t["ln_f.bias"] = np.ones(d, np.float32), np.zeros(d, np.float32)
    save_file(t, str(path))


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child(what: str, path: str, shuffles: int, jobs: int) -> None:
    """One measurement in this process; prints one JSON line."""
    import modscope

    out: dict = {}
    if what == "whole":
        t = time.perf_counter()
        graph = modscope.load_graph(path)
        out["read_s"] = time.perf_counter() - t
        out["read_peak_gib"] = _peak_gib()
        out.update(
            nodes=graph.n_nodes,
            edges=graph.n_edges,
            reading=graph.reading,
            bipartite=graph.colours is not None,
        )
        t = time.perf_counter()
        part = modscope.cluster(graph, 12, seed=0)
        out["cluster_s"] = time.perf_counter() - t
        out.update(ncut=part.ncut, clustering=part.clustering)
    elif what == "blocks":
        t = time.perf_counter()
        scores = modscope.score_blocks(path, n_clusters=12, n_shuffles=shuffles, seed=0, jobs=jobs)
        out["blocks_s"] = time.perf_counter() - t
        df = scores.to_frame()
        out.update(n_blocks=len(df), z=[float(z) for z in df["z"]], ncut=[float(v) for v in df["value"]])
    else:  # scikit-learn on one block's graph or on the whole graph
        from sklearn.cluster import SpectralClustering

        from modscope.clustering.ncut import ncut
        from modscope.graphs.transformer import mlp_blocks

        graph = mlp_blocks(path)[0].graph() if what == "sklearn_block" else modscope.load_graph(path)
        nodes = np.flatnonzero(graph.active)
        adjacency = graph.adjacency[nodes][:, nodes]
        out.update(nodes=int(nodes.size), edges=graph.n_edges)
        t = time.perf_counter()
        labels = np.full(graph.n_nodes, -1)
        labels[nodes] = (
            SpectralClustering(12, affinity="precomputed", n_init=100, random_state=0).fit(adjacency).labels_
        )
        out["cluster_s"] = time.perf_counter() - t
        out["ncut"] = ncut(graph, labels)
    out["peak_gib"] = _peak_gib()
    print(json.dumps(out))


def run_child(what: str, path: Path, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        what,
        "--path",
        str(path),
        "--shuffles",
        str(args.shuffles),
        "--jobs",
        str(args.jobs),
    ]
    t = time.perf_counter()
    # its own process group: a child killed at the cap takes its worker processes with it (they
    # would otherwise run on, orphaned, and load the machine under every later measurement)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=args.cap)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"finished": False, "killed_after_s": args.cap}
    if proc.returncode != 0:
        return {"finished": False, "error": stderr.strip().splitlines()[-1:] or ["?"]}
    out = json.loads(stdout.strip().splitlines()[-1])
    out.update(finished=True, process_s=time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cap", type=int, default=1800, help="seconds before a child is killed")
    ap.add_argument("--skip-sklearn-whole", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 blocks of d 128: a check that it runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    add_output_flags(ap, "transformer_graphs")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.shuffles, args.jobs)
        return
    shape = (
        dict(layers=2, d=128, f=512, vocab=100, positions=32)
        if args.quick
        else dict(layers=12, d=768, f=3072, vocab=50257, positions=1024)
    )
    if args.quick:
        args.shuffles = 3
    results: dict = {"shape": shape}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpt2.safetensors"
        make_gpt2(path, seed=0, **shape)
        results["file_mib"] = path.stat().st_size / 2**20
        for what in (
            "whole",
            "blocks",
            "sklearn_block",
            *([] if args.skip_sklearn_whole else ["sklearn_whole"]),
        ):
            print(f"running {what} ...", flush=True)
            results[what] = run_child(what, path, args)
            print(json.dumps(results[what])[:400], flush=True)
    whole, blocks = results["whole"], results["blocks"]
    per_block = results["sklearn_block"]
    if per_block.get("finished") and blocks.get("finished"):
        # scikit-learn would do the blocks' (1 + shuffles) clusterings per block one after another
        n = (1 + args.shuffles) * blocks["n_blocks"]
        results["sklearn_blocks_estimate_s"] = per_block["cluster_s"] * n
        results["blocks_ratio_estimate"] = results["sklearn_blocks_estimate_s"] / blocks["blocks_s"]
    if whole.get("finished") and results.get("sklearn_whole", {}).get("finished"):
        results["whole_ratio"] = results["sklearn_whole"]["cluster_s"] / whole["cluster_s"]
    results["targets"] = {
        "blocks_under_600_s": bool(blocks.get("finished") and blocks["blocks_s"] < 600),
        "whole_cluster_under_60_s": bool(whole.get("finished") and whole["cluster_s"] < 60),
        "whole_peak_under_4_gib": bool(whole.get("finished") and whole["peak_gib"] < 4),
    }
    print(json.dumps(results["targets"]))
    write(args, results)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
