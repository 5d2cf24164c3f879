"""Reproduce the paper's n-cut table (spec §3): unpruned / pruned / dropout + pruned MLPs and a
randomly initialised (Glorot) one, each scored against 50 `layer` shuffles at k = 12.

Trains with `modscope.train` and scores with `modscope.score`. Every checkpoint and
every score is cached under ``--ckpt-dir`` (default ``.modscope-cache/paper``), so a rerun skips
finished work; several instances can run side by side on disjoint ``--nets`` / ``--variants``
and a last run over everything assembles the JSON. The JSON holds the exact command, the options
and one record per (network, variant, seed, restart selection), with the paper's numbers beside
ours, plus the mean over seeds. Example (the README table comes from this):

    OMP_NUM_THREADS=1 python experiments/paper_table.py --nets fashion-mnist,digits,digits-wide \\
        --seeds 0,1,2 --random-init-seeds 0,1,2 --shuffle-methods layer,layer_nonzero \\
        --out experiments/paper_table_fashion.json

(the committed JSON was assembled with the same options plus ``--cached-only`` after the
networks had been trained and scored by parallel runs; its ``command`` says so).

Networks (``--nets``):
    fashion-mnist  784-256x4-10 on Fashion-MNIST: 20 epochs of Adam at batch 128 (9,380 steps,
                   469 per epoch), then 9,375 pruning steps (20 epochs less 5 steps) with
                   sparsity rising (cubic) from 50 % to 90 %
    digits         the digits task's default MLP (64-64-64-10), its 3,000 steps, pruning 3,000
    digits-wide    64-256x4-10 on digits, the same steps
Variants (``--variants``): unpruned, pruned (to 90 %), dropout_pruned (dropout 0.5, then pruned).
The random-init row is a Glorot-uniform 784-256x4-10 with zero biases (Keras's default, as the
reference), one network per ``--random-init-seeds`` entry.

Restart selections (``--selections``): ``ncut`` is modscope's default clusterer (10 k-means
restarts, the lowest n-cut kept); ``inertia`` is the reference's procedure (25 restarts, the
lowest k-means inertia kept).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modscope import __version__
from modscope.clustering.spectral import SpectralClusterer
from modscope.graphs.weight_graph import WeightGraph
from modscope.runtime.atomic import write_json
from modscope.scoring.engine import score
from modscope.tasks import get_task
from modscope.training.checkpoint import load_checkpoint
from modscope.training.models import MLP, Architecture
from modscope.training.trainer import train

# Spec §3 (Filan et al.): MLP 784-256x4-10, k = 12, 50 `layer` shuffles, mean of 5 nets.
# MNIST for every variant; Fashion-MNIST only for dropout + pruned (no shuffle std given).
PAPER = {
    "unpruned": {"dataset": "mnist", "ncut": 10.02, "shuffle_mean": 10.17, "shuffle_std": 0.035,
                 "z": -4.5},
    "pruned": {"dataset": "mnist", "ncut": 8.88, "shuffle_mean": 9.18, "shuffle_std": 0.031,
               "z": -9.7},
    "dropout_pruned": {"dataset": "mnist", "ncut": 8.35, "shuffle_mean": 9.25,
                       "shuffle_std": 0.039, "z": -24.0},
    "random_init": {"dataset": "none", "ncut": None, "shuffle_mean": 10.295,
                    "shuffle_std": 0.032, "z": None},
}
PAPER_FASHION = {"dropout_pruned": {"dataset": "fashion-mnist", "ncut": 8.11,
                                    "shuffle_mean": 9.13, "shuffle_std": None, "z": -24.7}}

NETS = {
    # name: (task, hidden, training kwargs, pruning steps)
    "fashion-mnist": ("fashion-mnist", (256, 256, 256, 256), {"epochs": 20, "batch_size": 128},
                      9375),
    "digits": ("digits", None, {}, 3000),
    "digits-wide": ("digits", (256, 256, 256, 256), {}, 3000),
}
VARIANTS = {
    "unpruned": {"dropout": 0.0, "prune": None},
    "pruned": {"dropout": 0.0, "prune": 0.9},
    "dropout_pruned": {"dropout": 0.5, "prune": 0.9},
}
RANDOM_WIDTHS = (784, 256, 256, 256, 256, 10)


def clusterer_for(selection: str, k: int) -> SpectralClusterer | None:
    """``None`` = score's default clusterer; ``inertia`` = the reference's restarts."""
    if selection == "ncut":
        return None
    if selection == "inertia":
        return SpectralClusterer(k, n_init=25, select="inertia")
    raise SystemExit(f"unknown selection {selection!r}")


def glorot_mlp(seed: int) -> MLP:
    """A Glorot-uniform 784-256x4-10 ReLU MLP with zero biases, drawn from ``seed`` alone."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
    net = MLP(Architecture(RANDOM_WIDTHS))
    with torch.no_grad():
        for layer in net.layers:
            nn.init.xavier_uniform_(layer.weight, generator=gen)
            nn.init.zeros_(layer.bias)
    return net


def graph_of(weights: list[torch.Tensor]) -> WeightGraph:
    """The weight graph of ``(out, in)`` Linear weights in forward order."""
    return WeightGraph.from_weights([w.detach().numpy() for w in weights],
                                    [f"layers.{i}.weight" for i in range(len(weights))])


def trained(net: str, variant: str, seed: int, ckpt_dir: Path, tasks: dict) -> tuple[Path, dict]:
    """Train (or reuse) one network; its checkpoint path and metrics (with wall seconds)."""
    path = ckpt_dir / f"{net}_{variant}_s{seed}.pt"
    meta = path.with_suffix(".train.json")
    if path.exists() and meta.exists():
        return path, json.loads(meta.read_text())
    task_name, hidden, kw, prune_steps = NETS[net]
    if task_name not in tasks:
        tasks[task_name] = get_task(task_name)
    v = VARIANTS[variant]
    res = train(tasks[task_name], hidden=hidden, dropout=v["dropout"], prune=v["prune"],
                prune_steps=prune_steps if v["prune"] else None, seed=seed, progress=False, **kw)
    res.save(path)
    write_json(meta, {"metrics": res.metrics, "train_config": res.checkpoint.train_config})
    print(f"trained {net} {variant} seed {seed}: {res.metrics}", flush=True)
    return path, json.loads(meta.read_text())


def scored(source, key: str, selection: str, method: str, args, ckpt_dir: Path) -> dict:
    """Score (or reuse the cached score of) one network with one restart selection and null."""
    tag = "" if method == "layer" else f"-{method}"
    # keyed by modscope's version too: a new version may cluster differently
    path = ckpt_dir / f"{key}.score-{selection}-k{args.clusters}-n{args.shuffles}{tag}-v{__version__}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    res = score(source, measure=clusterer_for(selection, args.clusters), n_shuffles=args.shuffles,
                null=method, seed=args.score_seed, jobs=args.jobs)
    d = res.to_dict()
    sh = d["shuffle"]
    out = {"ncut": d["ncut"], "shuffle_mean": sh["mean"], "shuffle_std": sh["std"], "z": sh["z"],
           "p_value": sh["p_value"], "shuffle_ncuts": sh["ncuts"], "n_nodes": d["n_nodes"],
           "n_edges": d["n_edges"], "seconds": time.perf_counter() - t0, "version": d["version"]}
    write_json(path, out)
    print(f"scored {key} [{selection}, {method}]: ncut {out['ncut']:.4f} vs {out['shuffle_mean']:.4f} "
          f"+- {out['shuffle_std']:.4f}, z {out['z']}, p {out['p_value']:.4f} "
          f"({out['seconds']:.0f} s)", flush=True)
    return out


def scored_records(graph: WeightGraph, key: str, base: dict, selections: list[str],
                   methods: list[str], args, ckpt_dir: Path) -> list[dict]:
    """One record per (restart selection, shuffle method) of one network."""
    out = []
    for sel in selections:
        for method in methods:
            rec = {**base, "selection": sel, "shuffle_method": method}
            rec.update(scored(graph, key, sel, method, args, ckpt_dir))
            # the paper's numbers are for `layer` shuffles only
            rec["paper"] = paper_for(base["net"], base["variant"]) if method == "layer" else None
            out.append(rec)
    return out


def paper_for(net: str, variant: str) -> dict | None:
    """The paper's numbers for 784-256x4-10 networks (none for the digits nets)."""
    if net.startswith("digits"):
        return None
    if net == "random-init":
        return PAPER["random_init"]
    if net == "fashion-mnist" and variant in PAPER_FASHION:
        return PAPER_FASHION[variant]
    return PAPER.get(variant)


def summary(records: list[dict]) -> list[dict]:
    """Mean over seeds of each quantity, per (network, variant, selection, shuffle method)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        key = (r["net"], r["variant"], r["selection"], r["shuffle_method"])
        groups.setdefault(key, []).append(r)
    rows = []
    for (net, variant, sel, method), rs in groups.items():
        row = {"net": net, "variant": variant, "selection": sel, "shuffle_method": method,
               "n_nets": len(rs),
               "seeds": [r["seed"] for r in rs]}
        for q in ("ncut", "shuffle_mean", "shuffle_std", "z", "p_value", "test_accuracy",
                  "sparsity"):
            vals = [r[q] for r in rs if r.get(q) is not None]
            row[q] = float(np.mean(vals)) if vals else None
            if q in ("ncut", "z") and len(vals) > 1:
                row[f"{q}_std_over_nets"] = float(np.std(vals, ddof=0))
        row["paper"] = rs[0]["paper"]
        rows.append(row)
    return rows


def _f(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def markdown(rows: list[dict]) -> str:
    """The summary as a markdown table, ours beside the paper's."""
    lines = ["| network | variant | restarts | null | nets | test acc | sparsity | n-cut | shuffles "
             "(mean ± std) | z | p | paper n-cut | paper shuffles | paper z |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["paper"] or {}
        paper_sh = _f(p.get("shuffle_mean"), ".3f")
        if p.get("shuffle_std") is not None:
            paper_sh += f" ± {p['shuffle_std']:.3f}"
        if p:
            paper_sh += f" ({p['dataset']})" if p["dataset"] != "none" else ""
        acc = None if r["test_accuracy"] is None else 100 * r["test_accuracy"]
        lines.append(
            f"| {r['net']} | {r['variant']} | {r['selection']} | {r['shuffle_method']} | "
            f"{r['n_nets']} | "
            f"{_f(acc, '.1f')} | {_f(r['sparsity'], '.2f')} | {_f(r['ncut'], '.3f')} | "
            f"{_f(r['shuffle_mean'], '.3f')} ± {_f(r['shuffle_std'], '.3f')} | "
            f"{_f(r['z'], '.1f')} | {_f(r['p_value'], '.3f')} | {_f(p.get('ncut'), '.2f')} | "
            f"{paper_sh} | {_f(p.get('z'), '.1f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="fashion-mnist,digits,digits-wide",
                    help=f"comma list of {', '.join(NETS)} (or none)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0", help="training seeds")
    ap.add_argument("--random-init-seeds", default="0", help="Glorot nets to score ('' = none)")
    ap.add_argument("--selections", default="ncut,inertia")
    ap.add_argument("--shuffle-methods", default="layer",
                    help="comma list of shuffle nulls (the paper's is layer)")
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--score-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--train-only", action="store_true", help="train, do not score")
    ap.add_argument("--cached-only", action="store_true",
                    help="train nothing: leave out networks whose checkpoint is not cached")
    ap.add_argument("--ckpt-dir", default=".modscope-cache/paper")
    ap.add_argument("--out", help="the JSON to write (default: none, e.g. with --train-only)")
    args = ap.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    ckpt_dir = Path(args.ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    nets = [n for n in args.nets.split(",") if n and n != "none"]
    for n in nets:
        if n not in NETS:
            raise SystemExit(f"unknown net {n!r}; choose from {', '.join(NETS)}")
    variants = [v for v in args.variants.split(",") if v]
    selections = [s for s in args.selections.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    random_seeds = [int(s) for s in args.random_init_seeds.split(",") if s]
    methods = [m for m in args.shuffle_methods.split(",") if m]

    tasks: dict = {}
    records = []
    jobs = [(n, v, s) for s in seeds for n in nets for v in variants]
    for net, variant, seed in jobs:
        if args.cached_only and not (ckpt_dir / f"{net}_{variant}_s{seed}.train.json").exists():
            print(f"left out {net} {variant} seed {seed}: not trained yet", flush=True)
            continue
        path, meta = trained(net, variant, seed, ckpt_dir, tasks)
        if args.train_only:
            continue
        m = meta["metrics"]
        ckpt = load_checkpoint(path)
        widths = ckpt.architecture.widths
        sd = ckpt.task_ordered_state_dict()
        graph = graph_of([sd[f"layers.{i}.weight"] for i in range(len(widths) - 1)])
        base = {"net": net, "task": NETS[net][0], "widths": list(widths), "variant": variant,
                "seed": seed, "test_accuracy": m.get("test_accuracy"),
                "sparsity": m.get("sparsity"), "train_seconds": m.get("seconds"),
                "train_config": meta["train_config"]}
        records += scored_records(graph, path.stem, base, selections, methods, args, ckpt_dir)
    if not args.train_only:
        for seed in random_seeds:
            graph = graph_of([layer.weight for layer in glorot_mlp(seed).layers])
            base = {"net": "random-init", "task": None, "widths": list(RANDOM_WIDTHS),
                    "variant": "random_init", "seed": seed, "test_accuracy": None,
                    "sparsity": 0.0, "train_seconds": None,
                    "train_config": {"init": "glorot_uniform", "bias": 0.0}}
            records += scored_records(graph, f"random-init_s{seed}", base, selections, methods,
                                      args, ckpt_dir)
    if args.out:
        for r in records:  # JSON has no NaN
            for k, val in r.items():
                if isinstance(val, float) and math.isnan(val):
                    r[k] = None
        options = {k: v for k, v in vars(args).items() if k != "out"}
        write_json(args.out, {
            "command": command,
            "options": options,
            "selections": {"ncut": "modscope default: 10 k-means restarts, lowest n-cut kept",
                           "inertia": "reference: 25 restarts, lowest k-means inertia kept"},
            "paper_note": "paper numbers are MNIST (mean of 5 nets) except the Fashion-MNIST "
                          "dropout + pruned row; random init: shuffles of a Glorot MLP",
            "summary": summary(records),
            "records": records,
        })
        print(markdown(summary(records)))
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
