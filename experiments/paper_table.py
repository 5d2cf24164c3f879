"""The paper's n-cut table (spec §3) with the reference's training recipe, row by row.

Filan et al.'s MLP 784-256x4-10 is trained the way their Keras code trained it
(``recipe="filan2021"``: Glorot-uniform weights and zero biases, Adam 1e-3 at batch 128 for 20
epochs; the pruned variants then get a fresh Adam and 20 more epochs while magnitude pruning
raises each layer's sparsity from 50 % to 90 % on a cubic schedule, the masks updated every 10
steps), in four variants (unpruned, pruned, dropout 0.5, dropout 0.5 + pruned), ``--seeds`` nets
each, plus Glorot-initialised untrained nets. Every net is scored at k = 12 against 50 `layer`
shuffles with the reference's clustering (25 k-means restarts, lowest inertia; modscope's
default); pruned nets also against `layer_nonzero`, and every net also with the restart of lowest
n-cut (``ncut``) for comparison.

Checkpoints and scores are cached under ``--ckpt-dir``: a rerun skips finished work, and several
runs on disjoint ``--seeds`` can go side by side before a last run over everything writes the
JSON (its ``command`` is that last run's). The committed Fashion-MNIST table::

    OMP_NUM_THREADS=1 python experiments/paper_table.py --net fashion-mnist --seeds 0,1,2,3,4 \\
        --random-init-seeds 0,1,2,3,4 --out experiments/paper_table_fashion.json

For the paper's MNIST rows, point the task at MNIST files (IDX or .npz; nothing is downloaded)::

    OMP_NUM_THREADS=1 python experiments/paper_table.py --net mnist --data /path/to/mnist \\
        --seeds 0,1,2,3,4 --out experiments/paper_table_mnist.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from modscope import SpectralClusterer, load_graph, score, train
from modscope.runtime.atomic import write_json
from modscope.runtime.hashing import json_digest
from modscope.runtime.receipts import write_receipt
from modscope.runtime.seeds import torch_seeds
from modscope.tasks import get_task
from modscope.training.checkpoint import load_checkpoint
from modscope.training.models import Architecture
from modscope.training.trainer import init_model

WIDTHS = (784, 256, 256, 256, 256, 10)
VARIANTS = {  # dropout, target sparsity
    "unpruned": (0.0, None),
    "pruned": (0.0, 0.9),
    "dropout": (0.5, None),
    "dropout_pruned": (0.5, 0.9),
}
# Spec §3: the paper's rows (mean of 5 nets, 50 `layer` shuffles, k = 12).
PAPER = {
    "fashion-mnist": {
        "unpruned": {
            "ncut": 9.89,
            "shuffle_mean": 10.08,
            "shuffle_std": 0.037,
            "z": -5.4,
            "test_accuracy": 0.891,
        },
        "pruned": {
            "ncut": 8.69,
            "shuffle_mean": 9.03,
            "shuffle_std": 0.035,
            "z": -10.4,
            "test_accuracy": None,
        },
        "dropout": {
            "ncut": 9.70,
            "shuffle_mean": 10.05,
            "shuffle_std": 0.034,
            "z": -10.7,
            "test_accuracy": 0.872,
        },
        "dropout_pruned": {
            "ncut": 8.11,
            "shuffle_mean": 9.13,
            "shuffle_std": 0.041,
            "z": -24.7,
            "test_accuracy": 0.867,
        },
    },
    "mnist": {
        "unpruned": {
            "ncut": 10.02,
            "shuffle_mean": 10.17,
            "shuffle_std": 0.035,
            "z": -4.5,
            "test_accuracy": None,
        },
        "pruned": {
            "ncut": 8.88,
            "shuffle_mean": 9.18,
            "shuffle_std": 0.031,
            "z": -9.7,
            "test_accuracy": None,
        },
        "dropout_pruned": {
            "ncut": 8.35,
            "shuffle_mean": 9.25,
            "shuffle_std": 0.039,
            "z": -24.0,
            "test_accuracy": None,
        },
    },
    "random_init": {
        "ncut": None,
        "shuffle_mean": 10.295,
        "shuffle_std": 0.032,
        "z": None,
        "test_accuracy": None,
    },
}
SELECTIONS = {"reference": "inertia", "ncut": "ncut"}


def train_options(variant: str, seed: int) -> dict:
    dropout, prune = VARIANTS[variant]
    return {"recipe": "filan2021", "hidden": WIDTHS[1:-1], "dropout": dropout, "prune": prune, "seed": seed}


def trained(net: str, variant: str, seed: int, args, ckpt_dir: Path, tasks: dict) -> tuple[Path, dict]:
    """Train (or reuse) one network: its checkpoint and a record of its training."""
    options = train_options(variant, seed)
    path = ckpt_dir / f"{net}_{variant}_s{seed}_{json_digest([net, options])[:10]}.pt"
    meta = path.with_suffix(".train.json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    if net not in tasks:
        tasks[net] = get_task(net, data=args.data) if args.data else get_task(net)
    res = train(tasks[net], progress=False, **options)
    res.save(path)
    write_json(meta, {"metrics": res.metrics, "train_config": res.checkpoint.train_config})
    print(
        f"trained {net} {variant} seed {seed}: test acc {res.metrics.get('test_accuracy'):.4f} "
        f"sparsity {res.metrics['sparsity']:.3f} ({res.metrics['seconds']:.0f} s)",
        flush=True,
    )
    return path, json.loads(meta.read_text())


def scored(graph, key: str, selection: str, method: str, args, ckpt_dir: Path) -> dict:
    """Score (or reuse the score of) one network with one restart selection and one null."""
    path = ckpt_dir / f"{key}.score-{selection}-{method}-k{args.clusters}-n{args.shuffles}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    clusterer = SpectralClusterer(args.clusters, select=SELECTIONS[selection])
    d = score(
        graph, measure=clusterer, null=method, n_shuffles=args.shuffles, seed=args.score_seed, jobs=args.jobs
    ).to_dict()
    sh = d["shuffle"]
    out = {
        "ncut": d["ncut"],
        "shuffle_mean": sh["mean"],
        "shuffle_std": sh["std"],
        "z": sh["z"],
        "p_value": sh["p_value"],
        "shuffle_ncuts": sh["ncuts"],
        "clustering": d["clustering"],
        "seconds": time.perf_counter() - t0,
    }
    write_json(path, out)
    print(
        f"scored {key} [{selection}, {method}]: n-cut {out['ncut']:.4f} vs {out['shuffle_mean']:.4f} "
        f"+- {out['shuffle_std']:.4f}, z {out['z']:.2f}",
        flush=True,
    )
    return out


def records_for(graph, key: str, base: dict, args, ckpt_dir: Path) -> list[dict]:
    methods = ["layer", "layer_nonzero"] if VARIANTS.get(base["variant"], (0, None))[1] else ["layer"]
    return [
        {**base, "selection": sel, "shuffle_method": m, **scored(graph, key, sel, m, args, ckpt_dir)}
        for sel in SELECTIONS
        for m in methods
    ]


def summary(records: list[dict], net: str) -> list[dict]:
    """Mean and spread over nets of each quantity, per (variant, selection, null), with the paper's row."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["variant"], r["selection"], r["shuffle_method"]), []).append(r)
    rows = []
    for (variant, sel, method), rs in groups.items():
        row = {
            "variant": variant,
            "selection": sel,
            "shuffle_method": method,
            "n_nets": len(rs),
            "seeds": [r["seed"] for r in rs],
        }
        for q in ("ncut", "shuffle_mean", "shuffle_std", "z", "p_value", "test_accuracy", "sparsity"):
            vals = [r[q] for r in rs if r.get(q) is not None]
            row[q] = float(np.mean(vals)) if vals else None
            row[f"{q}_sd_over_nets"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        paper = PAPER["random_init"] if variant == "random_init" else PAPER.get(net, {}).get(variant)
        row["paper"] = paper if method == "layer" and sel == "reference" else None
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    ap.add_argument("--data", help="the task's data files (IDX folder or .npz); default: the task's")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0,1,2,3,4", help="training seeds (5 nets per row, as the paper)")
    ap.add_argument("--random-init-seeds", default="0,1,2,3,4", help="untrained Glorot nets ('' = none)")
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--score-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--train-only", action="store_true", help="train, do not score")
    ap.add_argument("--ckpt-dir", default=".modscope-cache/paper-recipe")
    ap.add_argument("--out", help="the receipt JSON to write")
    args = ap.parse_args(argv)
    ckpt_dir = Path(args.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    variants = [v for v in args.variants.split(",") if v]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    random_seeds = [int(s) for s in args.random_init_seeds.split(",") if s]

    tasks: dict = {}
    records = []
    for seed in seeds:
        for variant in variants:
            path, meta = trained(args.net, variant, seed, args, ckpt_dir, tasks)
            if args.train_only:
                continue
            m = meta["metrics"]
            base = {
                "variant": variant,
                "seed": seed,
                "test_accuracy": m.get("test_accuracy"),
                "sparsity": m.get("sparsity"),
                "train_seconds": m.get("seconds"),
                "train_config": meta["train_config"],
            }
            records += records_for(load_graph(load_checkpoint(path)), path.stem, base, args, ckpt_dir)
    if not args.train_only:
        for seed in random_seeds:
            net = init_model(
                Architecture(WIDTHS), torch.Generator().manual_seed(torch_seeds(seed, 1)[0]), "glorot"
            )
            base = {
                "variant": "random_init",
                "seed": seed,
                "test_accuracy": None,
                "sparsity": 0.0,
                "train_seconds": None,
                "train_config": {"init": "glorot", "trained": False},
            }
            records += records_for(load_graph(net), f"random-init_s{seed}", base, args, ckpt_dir)
    if args.out:
        rows = summary(records, args.net)
        write_receipt(
            args.out,
            {"summary": rows, "records": records, "paper": PAPER},
            settings=vars(args),
            note="selections: reference = 25 k-means restarts, lowest inertia kept (modscope's "
            "default); ncut = the same restarts, lowest n-cut kept",
        )
        for r in rows:
            print(
                f"{r['variant']:15s} {r['selection']:9s} {r['shuffle_method']:13s} n-cut {r['ncut']:.3f} vs "
                f"{r['shuffle_mean']:.3f} +- {r['shuffle_std']:.3f} z {r['z']:.1f} acc {r['test_accuracy']}"
            )
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
