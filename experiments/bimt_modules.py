"""BIMT's modules on modular addition (spec §6): knocked out together they take test accuracy to
chance; kept alone they keep it.

For each seed, BIMT trains the spec's network on ``modadd`` (a + b mod 59 on learned 32-dim token
embeddings, 64-50-50-59, 20,000 full-batch steps of AdamW at 1e-3, lambda 0.1 -> 1 -> 0.1, y* 0.5,
A 2, top-k 30, costs averaged per tensor; parameters below 0.01 zeroed at the end: the task's
BIMT defaults). The thresholded weight graph is clustered into k = 3 (the paper's three modules
A, B, C; the reference clustering), and the test accuracy is measured:

- intact;
- the modules knocked out together: every hidden neuron that carries a cluster label silenced;
- only the modules kept: every other hidden neuron (no edge left after thresholding) silenced;
- each module knocked out alone, and each module kept alone (the other modules' hidden neurons
  silenced, and the unlabelled ones);
- every (hidden layer, cluster) sub-module against 100 random same-size lesions
  (`modscope.knockout`).

The paper reports 100 % test accuracy, 1.69 % (chance is 1/59 = 1.69 %) with A, B and C knocked
out together, and 100 % with only A, B and C kept::

    OMP_NUM_THREADS=1 python experiments/bimt_modules.py --seeds 0,1,2 \\
        --out experiments/bimt_modadd_modules.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from modscope import cluster, get_task, knockout, load_graph, train
from modscope.clustering.embedding import components
from modscope.lesions import lesion
from modscope.runtime.receipts import write_receipt


def accuracy(model, task) -> float:
    with torch.no_grad():
        return task.metric(model.eval()(task.x_test), task.y_test)


def silenced(model, task, neurons: dict[int, np.ndarray]) -> float:
    """Test accuracy with the given hidden neurons (``{graph layer: indices}``) silenced."""
    with lesion(model, {layer: ids for layer, ids in neurons.items() if len(ids)}):
        return accuracy(model, task)


def run_seed(seed: int, args) -> dict:
    task = get_task("modadd")
    res = train(task, bimt=True, seed=seed, progress=False, **({"steps": args.steps} if args.steps else {}))
    if args.ckpt_dir:
        res.save(Path(args.ckpt_dir) / f"modadd_bimt_s{seed}.pt")
    model = res.checkpoint.model()
    graph = load_graph(res.checkpoint)
    part = cluster(graph, n_clusters=args.clusters, seed=seed)
    widths, off = graph.layer_widths, graph.offsets
    hidden = range(1, graph.n_layers - 1)
    labels = {l: part.labels[off[l] : off[l + 1]] for l in hidden}

    def where(pred) -> dict[int, np.ndarray]:
        return {l: np.flatnonzero(pred(labels[l])) for l in hidden}

    n_comp, _ = components(graph)
    out = {
        "seed": seed,
        "test_accuracy": accuracy(model, task),
        "sparsity": res.metrics["sparsity"],
        "swaps": res.metrics.get("swaps"),
        "active_hidden_neurons": {str(l): int(np.count_nonzero(labels[l] >= 0)) for l in hidden},
        "hidden_widths": [widths[l] for l in hidden],
        "connected_components": n_comp,
        "ncut": part.ncut,
        "clustering": part.clustering,
        "module_sizes": {
            str(c): {str(l): int(np.count_nonzero(labels[l] == c)) for l in hidden}
            for c in range(args.clusters)
        },
        "modules_knocked_out": silenced(model, task, where(lambda lab: lab >= 0)),
        "only_modules_kept": silenced(model, task, where(lambda lab: lab < 0)),
        "each_module_knocked_out": {
            str(c): silenced(model, task, where(lambda lab, c=c: lab == c)) for c in range(args.clusters)
        },
        "each_module_kept_alone": {
            str(c): silenced(model, task, where(lambda lab, c=c: lab != c)) for c in range(args.clusters)
        },
    }
    ko = knockout(model, task, part, n_random=args.random, seed=seed)
    out["knockout"] = ko.to_dict()
    print(
        f"seed {seed}: test {out['test_accuracy']:.4f}, modules knocked out "
        f"{out['modules_knocked_out']:.4f}, only modules kept {out['only_modules_kept']:.4f}, "
        f"each out {out['each_module_knocked_out']}",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--clusters", type=int, default=3)
    ap.add_argument("--random", type=int, default=100, help="random lesions per sub-module")
    ap.add_argument("--steps", type=int, help="training steps (default: the task's 20,000)")
    ap.add_argument("--ckpt-dir", help="also save the trained checkpoints here")
    ap.add_argument("--out", default="experiments/bimt_modadd_modules.json")
    args = ap.parse_args(argv)
    if args.ckpt_dir:
        Path(args.ckpt_dir).mkdir(parents=True, exist_ok=True)
    records = [run_seed(int(s), args) for s in args.seeds.split(",") if s]
    chance = 1 / 59
    summary = {
        "chance": chance,
        "paper": {"test_accuracy": 1.0, "modules_knocked_out": 0.0169, "only_modules_kept": 1.0},
        **{
            q: float(np.mean([r[q] for r in records]))
            for q in ("test_accuracy", "modules_knocked_out", "only_modules_kept", "sparsity")
        },
    }
    write_receipt(args.out, {"summary": summary, "records": records}, settings=vars(args))
    print(summary)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
