"""BIMT vs plain training on the same task: accuracy / loss, sparsity, which inputs reach which
outputs through the (thresholded) weight graph, and n-cut z-scores against shuffles.

Writes one JSON file holding the exact command, the options and one record per
(task, seed, trainer). Example (the tables in the docs are rendered from its JSON):

    OMP_NUM_THREADS=1 python experiments/bimt_vs_plain.py \\
        --tasks formula-independence --seeds 0,1,2 --clusters 2 --shuffles 50 \\
        --out experiments/bimt_vs_plain_independence.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from modscope.runtime.atomic import write_json
from modscope.scoring.engine import score
from modscope.tasks import get_task
from modscope.training.checkpoint import Checkpoint
from modscope.training.trainer import train


def reach(ckpt: Checkpoint) -> np.ndarray:
    """``(n_out, n_in)`` bool: output ``o`` depends on input ``i`` through non-zero weights
    (task order)."""
    sd = ckpt.task_ordered_state_dict()
    n = len(ckpt.architecture.widths) - 1
    r = None
    for i in range(n):
        a = (sd[f"layers.{i}.weight"].numpy() != 0).astype(np.int64)
        r = a if r is None else (a @ r > 0).astype(np.int64)
    return r.astype(bool)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="formula-independence")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--steps", type=int, help="override the task's steps")
    ap.add_argument("--plain-weight-decay", type=float,
                    help="AdamW weight decay of the plain runs (default: the task's)")
    ap.add_argument("--clusters", type=int, default=2)
    ap.add_argument("--shuffles", type=int, default=50)
    ap.add_argument("--shuffle-method", default="layer")
    ap.add_argument("--ckpt-dir", help="also save every checkpoint here")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    records = []
    for name in args.tasks.split(","):
        task = get_task(name)
        for seed in (int(s) for s in args.seeds.split(",")):
            for kind in ("plain", "bimt"):
                wd = args.plain_weight_decay if kind == "plain" else None
                res = train(task, steps=args.steps, seed=seed, bimt=kind == "bimt",
                            weight_decay=wd, progress=False)
                ck = res.checkpoint
                if args.ckpt_dir:
                    res.save(Path(args.ckpt_dir) / f"{name}_{kind}_{seed}.pt")
                rec = {"task": name, "seed": seed, "trainer": kind, "metrics": res.metrics,
                       "reach": reach(ck).astype(int).tolist()}
                if args.shuffles:
                    sc = score(ck, n_clusters=args.clusters, n_shuffles=args.shuffles, seed=seed,
                               null=args.shuffle_method)
                    d = sc.to_dict()
                    rec["score"] = {"ncut": d["ncut"], "clusters": args.clusters,
                                    "shuffle_method": args.shuffle_method,
                                    **{k: d["shuffle"][k] for k in ("mean", "std", "z",
                                                                    "p_value")}}
                records.append(rec)
                m = res.metrics
                shown = {k: m[k] for k in ("test_accuracy", "test_loss", "sparsity") if k in m}
                small = len(rec["reach"]) * len(rec["reach"][0]) <= 64
                print(name, seed, kind, shown, rec.get("score"),
                      f"reach {rec['reach']}" if small else "", flush=True)
    write_json(args.out, {"command": command, "options": vars(args), "results": records})


if __name__ == "__main__":
    main()
