"""Plain vs BIMT training of one task, scored against three shuffle nulls: `layer`,
`layer_nonzero` and the degree-preserving `layer_degree`.

For each (task, seed, trainer) the trained net's n-cut at ``k`` clusters is compared with
``--shuffles`` shuffled copies per method: shuffle mean, std, z, p, and how many shuffled
graphs fell apart (n-cut 0), the n-cut over the shuffle mean, and z's floor ``-mean / std``
(an n-cut is >= 0, so no network can score below it). A summary gives each method's mean
z and mean n-cut / shuffle mean per trainer, and the z gap between the trainers. Writes one
JSON file holding the exact command. Example (the tables in the docs are rendered from its JSON):

    OMP_NUM_THREADS=1 python experiments/degree_null.py --tasks formula-independence \\
        --seeds 0,1,2 --clusters 2 --shuffles 50 --out experiments/degree_null_independence.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from modscope.graphs.load import load_graph
from modscope.runtime.atomic import write_json
from modscope.scoring.engine import score
from modscope.tasks import get_task
from modscope.training.checkpoint import load_checkpoint
from modscope.training.trainer import train

METHODS = ("layer", "layer_nonzero", "layer_degree")


def summarise(records: list[dict], methods: list[str]) -> list[dict]:
    """Per (task, method) and trainer: z and n-cut / shuffle mean over seeds, their means (None
    where some value is undefined), and the trainers' gap in mean z."""
    out = []
    for task in dict.fromkeys(r["task"] for r in records):
        for m in methods:
            row = {"task": task, "method": m}
            for kind in ("plain", "bimt"):
                zs = [r["scores"][m]["z"] for r in records if r["task"] == task and r["trainer"] == kind]
                row[f"{kind}_z"] = zs
                row[f"{kind}_mean_z"] = None if None in zs or not zs else float(np.mean(zs))
                rs = [r["scores"][m]["ncut_over_mean"] for r in records
                      if r["task"] == task and r["trainer"] == kind]
                row[f"{kind}_mean_ncut_over_mean"] = None if None in rs or not rs else float(np.mean(rs))
            a, b = row["plain_mean_z"], row["bimt_mean_z"]
            row["bimt_minus_plain"] = None if a is None or b is None else b - a
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="formula-independence")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, help="override the task's steps")
    ap.add_argument("--clusters", type=int, default=2)
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--ckpt-dir", help="save checkpoints here and reuse the ones already there")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    methods = args.methods.split(",")
    records = []
    for name in args.tasks.split(","):
        task = get_task(name)
        for seed in (int(s) for s in args.seeds.split(",")):
            for kind in ("plain", "bimt"):
                path = Path(args.ckpt_dir) / f"{name}_{kind}_{seed}.pt" if args.ckpt_dir else None
                if path is not None and path.exists():
                    metrics = load_checkpoint(path).metrics
                    graph = load_graph(path)
                else:
                    res = train(task, steps=args.steps, seed=seed, bimt=True if kind == "bimt" else None,
                                progress=False)
                    if path is not None:
                        res.save(path)
                    metrics = res.metrics
                    graph = load_graph(res.checkpoint)
                rec = {"task": name, "seed": seed, "trainer": kind, "metrics": metrics,
                       "n_edges": graph.n_edges, "n_active": int(graph.active.sum()),
                       "clusters": args.clusters, "scores": {}}
                for m in methods:
                    sc = score(graph, n_clusters=args.clusters, n_shuffles=args.shuffles, seed=seed,
                               null=m)
                    d = sc.to_dict()
                    rec["ncut"] = d["ncut"]
                    s = d["shuffle"]
                    rec["scores"][m] = {"mean": s["mean"], "std": s["std"], "z": s["z"],
                                        "p_value": s["p_value"],
                                        "n_fell_apart": int(np.count_nonzero(sc.null.samples <= 1e-12)),
                                        # n-cut >= 0 bounds z below by -mean/std, whatever the net
                                        "z_floor": -s["mean"] / s["std"] if s["std"] else None,
                                        "ncut_over_mean": d["ncut"] / s["mean"] if s["mean"] else None}
                records.append(rec)
                shown = " | ".join(
                    f"{m}: {v['mean']:.3f}±{v['std']:.3f} z={v['z'] if v['z'] is None else round(v['z'], 1)}"
                    f" (floor {v['z_floor'] if v['z_floor'] is None else round(v['z_floor'], 1)})"
                    f" p={v['p_value']:.3f} apart={v['n_fell_apart']}" for m, v in rec["scores"].items())
                print(f"{name} seed {seed} {kind}: sparsity {metrics.get('sparsity', 0):.3f} "
                      f"edges {rec['n_edges']} ncut {rec['ncut']:.4f} | {shown}", flush=True)
    summary = summarise(records, methods)
    for row in summary:
        print(row["task"], row["method"], "mean z: plain", row["plain_mean_z"], "bimt", row["bimt_mean_z"],
              "| n-cut / shuffle mean: plain", row["plain_mean_ncut_over_mean"],
              "bimt", row["bimt_mean_ncut_over_mean"])
    write_json(args.out, {"command": command, "options": vars(args), "results": records,
                          "summary": summary})


if __name__ == "__main__":
    main()
