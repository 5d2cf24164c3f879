"""Spec §5 on modscope's own networks: do add and mul (and the two halves of `halves`) get their
own weights?

Trains the network with :func:`modscope.training.trainer.train` (cached under ``--cache``), then learns
one mask per function plus a control mask, all K at once, and records the masks at the
``--record`` step counts of the same run (identical to shorter runs: the randomness of each
mask depends on the seed and the function's name only). Writes the JSON to ``--out``::

    OMP_NUM_THREADS=1 python experiments/masks_addmul.py --part addmul \\
        --out experiments/masks_addmul.json
    OMP_NUM_THREADS=1 python experiments/masks_addmul.py --part halves \\
        --out experiments/masks_halves.json
    OMP_NUM_THREADS=1 python experiments/masks_addmul.py --part halves-bimt \\
        --out experiments/masks_halves_bimt.json

(the exact commands of the committed results are in their JSON's ``command``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from modscope.clustering.spectral import cluster
from modscope.graphs.load import load_graph
from modscope.masks import train_masks
from modscope.masks.alignment import alignment
from modscope.runtime.atomic import write_json
from modscope.tasks import get_task
from modscope.training.checkpoint import load_checkpoint
from modscope.training.trainer import train

PARTS = {
    # task, functions, hidden widths, network training steps, BIMT
    "addmul": ("addmul", ["add", "mul"], [256, 256, 256, 256], 20000, False),
    "halves": ("halves", ["left", "right"], [64, 64], 4000, False),
    "halves-bimt": ("halves", ["left", "right"], [64, 64], 4000, True),
}


def network(part: str, hidden: list[int], steps: int, seed: int, cache: Path):
    task_name, bimt = PARTS[part][0], PARTS[part][4]
    task = get_task(task_name, seed=seed)
    tag = "_bimt" if bimt else ""
    path = cache / f"{task_name}_{'x'.join(map(str, hidden))}_{steps}{tag}_s{seed}.pt"
    if not path.exists():
        res = train(task, hidden=hidden, steps=steps, seed=seed, bimt=bimt or None,
                    progress=False)
        res.save(path)
    ckpt = load_checkpoint(path)
    return task, ckpt


def summary(res) -> dict:
    """The headline numbers of one MaskResult."""
    fns = [f for f in res.functions if f != "control"]
    return {
        "kept_fraction": res.kept_fraction,
        "iou": res.iou,
        "accuracy": res.accuracy,
        "inverted_accuracy": res.inverted_accuracy,
        "full_accuracy": res.full_accuracy,
        "own_over_full": {f: res.accuracy[f][f] / res.full_accuracy[f] for f in fns},
        "layer_iou": {
            layer: v["iou"][f"{fns[0]}|{fns[1]}"] for layer, v in res.layers.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hidden", default=None, help="comma-separated hidden widths")
    ap.add_argument("--train-steps", type=int, default=None)
    ap.add_argument("--mask-steps", type=int, default=10000)
    ap.add_argument("--record", default="1000,3000", help="earlier step counts to evaluate")
    ap.add_argument("--beta", type=float, default=None, help="default 1e-4 / batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=".modscope-cache/experiments")
    ap.add_argument("--save-masks", metavar="PATH", help="also write the final masks (.pt)")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads the mask sets are split over (the masks do not depend on it)")
    args = ap.parse_args()
    task_name, fns, hidden, train_steps, bimt = PARTS[args.part]
    hidden = [int(h) for h in args.hidden.split(",")] if args.hidden else hidden
    train_steps = args.train_steps or train_steps
    record = [int(s) for s in args.record.split(",") if s]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    task, ckpt = network(args.part, hidden, train_steps, args.seed, cache)
    t_train = time.perf_counter() - t0
    model = ckpt.model()
    t0 = time.perf_counter()
    res = train_masks(model, task, fns, steps=args.mask_steps, beta=args.beta, seed=args.seed,
                      record_at=record, progress=True, threads=args.threads)
    t_masks = time.perf_counter() - t0
    runs = {**{str(n): r for n, r in res.history.items()}, str(args.mask_steps): res}
    # structure meets function: spectral clusters of the weight graph vs the final masks
    graph = load_graph(model)
    aligned = {
        str(k): alignment(cluster(graph, k, seed=args.seed).labels, res, n_null=1000,
                          seed=args.seed).to_dict()
        for k in (2, 4)
    }
    omp = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    out = {
        "command": omp + "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "task": task_name,
        "network": {"hidden": hidden, "train_steps": train_steps, "bimt": bimt,
                    "seed": args.seed, "metrics": ckpt.metrics},
        "mask_config": res.config,
        "seconds": {"train_network_or_load": t_train, "masks": t_masks},
        "torch_threads": torch.get_num_threads(),
        "mask_threads": args.threads,
        "summary_by_steps": {n: summary(r) for n, r in runs.items()},
        "result": res.to_dict(),
        "alignment": aligned,
    }
    write_json(args.out, out)
    if args.save_masks:
        res.save(args.save_masks)
    for n, r in runs.items():
        s = summary(r)
        print(f"--- {n} mask steps")
        print("kept", {k: round(v, 3) for k, v in s["kept_fraction"].items()},
              "iou", {k: round(v, 3) for k, v in s["iou"].items() if v is not None})
        print("own/full", {k: round(v, 3) for k, v in s["own_over_full"].items()})
        for f in r.functions:
            print(f"  mask {f:8s} acc", {g: round(v, 3) for g, v in r.accuracy[f].items()},
                  " inverted", {g: round(v, 3) for g, v in r.inverted_accuracy[f].items()})
        print("  layer iou", {k: round(v, 3) for k, v in s["layer_iou"].items() if v is not None})
    for k, a in aligned.items():
        print(f"alignment k={k}: AMI {a['ami']:.3f} (null {a['null_mean']:.3f} +- "
              f"{a['null_std']:.3f}, p {a['p_value']:.4f}); share per cluster", a["share"])


if __name__ == "__main__":
    main()
