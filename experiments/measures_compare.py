"""The modularity measures side by side on the example checkpoints in data/.

For each checkpoint and each (graph, measure, null) the observed value is compared with
``--shuffles`` null samples: mean, std, z and the one-sided p in the modular direction.

- weight graph, spectral n-cut (k clusters), nulls ``layer`` and ``layer_nonzero``;
- weight graph, Newman Q of the Louvain partition, the same two nulls;
- weight graph, layer-local mean n-cut (k clusters per hidden layer), ``layer`` null;
- activation-correlation graph (squared Spearman correlations on the task's test split),
  spectral n-cut and Louvain Q, against the ``units`` null (each unit's activations permuted
  across examples independently).

n-cut: lower is more modular, so z < 0 is modular; Q: higher is more modular, z > 0 is
modular. ``random:digits`` is a Glorot-initialised, untrained 64-64-64-10 MLP on the digits
test split: how much of a score the data and the architecture give without any training.
Writes one JSON holding the exact command and prints a markdown table. Example (the
numbers in the README come from this):

    OMP_NUM_THREADS=1 python experiments/measures_compare.py --shuffles 20 \\
        --out experiments/measures_compare.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch
from torch import nn

from modscope.graphs.activations import activation_graph
from modscope.graphs.load import load_graph
from modscope.graphs.stacks import linear_layers
from modscope.nulls import UnitPermutationNull
from modscope.runtime.atomic import write_json
from modscope.scoring import score
from modscope.tasks import get_task
from modscope.training.models import MLP
from modscope.workflows.checkpoints import checkpoint_activation_graph


def _random_digits_mlp(seed: int) -> MLP:
    """An untrained digits MLP, Glorot-uniform weights and zero biases from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    net = MLP((64, 64, 64, 10))
    with torch.no_grad():
        for lin in linear_layers(net):
            nn.init.xavier_uniform_(lin.weight, generator=g)
            nn.init.zeros_(lin.bias)
    return net.eval()

# checkpoint -> k: 2 for the two-module formula task, 4 (the 2020 paper's k) elsewhere
MODELS = {
    "data/digits-plain.pt": 4,
    "data/digits-pruned.pt": 4,
    "data/halves-plain.pt": 4,
    "data/independence-plain.pt": 2,
    "data/independence-bimt.pt": 2,
    "random:digits": 4,
}
# (graph, method, null)
COMBOS = (
    ("weights", "spectral", "layer"),
    ("weights", "spectral", "layer_nonzero"),
    ("weights", "louvain", "layer"),
    ("weights", "louvain", "layer_nonzero"),
    ("weights", "local", "layer"),
    ("activations", "spectral", "units"),
    ("activations", "louvain", "units"),
)


def _summary(result) -> dict:
    d = result.to_dict()
    s = d["shuffle"]
    value = d.get("value", d.get("ncut"))
    return {"value": value, "mean": s["mean"], "std": s["std"], "z": s["z"], "p_value": s["p_value"],
            "n_clusters": d.get("n_clusters", d.get("partition", {}).get("n_clusters"))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated checkpoints")
    ap.add_argument("--shuffles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="experiments/measures_compare.json")
    args = ap.parse_args(argv)
    records = []
    for path in args.models.split(","):
        k = MODELS.get(path, 4)
        if path == "random:digits":
            net = _random_digits_mlp(args.seed)
            weights, acts = load_graph(net), activation_graph(net, get_task("digits").x_test)
        else:
            weights, acts = load_graph(path), checkpoint_activation_graph(path)
        for graph_kind, method, null in COMBOS:
            t0 = time.perf_counter()
            if graph_kind == "weights":
                graph, the_null = weights, null
            else:
                graph, the_null = acts, UnitPermutationNull()
            result = score(graph, measure=method, n_clusters=None if method == "louvain" else k,
                           n_shuffles=args.shuffles, null=the_null, seed=args.seed)
            rec = {"model": path, "k": k, "graph": graph_kind, "method": method, "null": null,
                   **_summary(result), "seconds": time.perf_counter() - t0}
            records.append(rec)
            z = "n/a" if rec["z"] is None else f"{rec['z']:.2f}"
            print(f"{path:28s} {graph_kind:11s} {method:8s} {null:13s} value {rec['value']:.4f} "
                  f"null {rec['mean']:.4f} +- {rec['std']:.4f} z {z} p {rec['p_value']:.3g} "
                  f"({rec['seconds']:.1f} s)", flush=True)
    command = "OMP_NUM_THREADS=1 python " + shlex.join([sys.argv[0], *(argv or sys.argv[1:])])
    write_json(Path(args.out), {"command": command, "shuffles": args.shuffles, "seed": args.seed,
                                "records": records})
    print()
    print(markdown(records))


def markdown(records: list[dict]) -> str:
    """One row per model, one column per (graph, measure, null): value (z)."""
    cols = list(dict.fromkeys((r["graph"], r["method"], r["null"]) for r in records))
    names = {("weights", "spectral"): "n-cut", ("weights", "louvain"): "Q (Louvain)",
             ("weights", "local"): "local n-cut", ("activations", "spectral"): "act. n-cut",
             ("activations", "louvain"): "act. Q"}
    head = "| model | k | " + " | ".join(f"{names[(g, m)]}, {n}" for g, m, n in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for model in dict.fromkeys(r["model"] for r in records):
        rows = {(r["graph"], r["method"], r["null"]): r for r in records if r["model"] == model}
        cells = []
        for c in cols:
            r = rows[c]
            z = "n/a" if r["z"] is None else f"{r['z']:+.1f}"
            cells.append(f"{r['value']:.3f} ({z})")
        k = next(iter(rows.values()))["k"]
        lines.append(f"| `{Path(model).stem}` | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
