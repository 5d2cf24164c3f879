"""BIMT vs plain training of a small CNN on Fashion-MNIST: accuracy, sparsity, n-cut and z against
`layer_degree` shuffles, a knockout of every conv sub-module, and how much of the image still
reaches the outputs (the receptive field).

The network is `modscope.training.architectures.BIMTCNN` (two strided 5x5 convs, 8 and 16
channels, a Linear head on the 7x7 map), trained by `modscope.training.bimt_cnn.fit_cnn`: plain
(Adam, cross-entropy) or with BIMT on its unit graph (conv channels on 3x3 and 4x4 grids; the MNIST
BIMT recipe of spec §6 as the task's defaults: lambda 0.01 -> 0.1 -> 1, y* 0.5, A 2, mean per
tensor, switched at 1/4 and 1/2 of training as the reference notebook does). Per run: test
accuracy on the 10,000 test images; sparsity (weights below 1 % of their layer's largest |w|);
n-cut at ``--clusters`` clusters with z and p against ``--shuffles`` `layer_degree` shuffles; a
knockout of each (conv layer, cluster) sub-module against ``--random`` random same-size lesions on
the first ``--knockout-examples`` test images; the fraction of input pixels with no path of
surviving weights to an output (`modscope.training.bimt_cnn.receptive_field`) and the per-pixel
path mass map the figure draws. The receipt holds every run and the mean and sd over seeds.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python experiments/bimt_paper/cnn.py \\
        --out experiments/bimt_paper/cnn.json --figure docs/assets/bimt_cnn_receptive_field.png

Quick check (seconds): ``--quick --out /tmp/cnn.json``. Redraw the figure from a receipt:
``--figure-only --out experiments/bimt_paper/cnn.json --figure docs/assets/...png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import modscope
from modscope.runtime.receipts import write_receipt
from modscope.tasks import get_task
from modscope.tasks.images import FASHION_MNIST_DIR
from modscope.training.bimt_cnn import (
    RELATIVE_THRESHOLD,
    fit_cnn,
    pixel_paths,
    receptive_field,
    weight_sparsity,
)

ROOT = Path(__file__).resolve().parent
# The reference notebook's schedule: lambda x10 at a quarter and again at half of training.
BIMT_OPTIONS = {"lambda_phases": (0.25, 0.5)}
TRAINERS = ("plain", "bimt")


def knockout_summary(ko: Any) -> dict[str, Any]:
    """How many sub-modules, how many significant (p < alpha) and important, the damage."""
    subs = ko.submodules
    damage = [float(s.damage) for s in subs]
    return {
        "submodules": len(subs),
        "significant": sum(s.p_value < ko.alpha for s in subs),
        "important": sum(s.category == "important" for s in subs),
        "max_damage": max(damage) if damage else None,
        "intact_accuracy": float(ko.intact_accuracy),
    }


def run_one(task: Any, ko_task: Any, trainer: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one network and measure it."""
    t0 = time.perf_counter()
    bimt = trainer == "bimt"
    fitted = fit_cnn(
        task,
        bimt=bimt,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=seed,
        bimt_options={**BIMT_OPTIONS, "swap_every": args.swap_every} if bimt else None,
    )
    train_s = time.perf_counter() - t0
    model = fitted.model
    net = modscope.network(model, torch.zeros(1, model.image[0] * model.image[1]))
    s = modscope.score(
        net, n_clusters=args.clusters, n_shuffles=args.shuffles, seed=seed, null="layer_degree"
    )
    ko = modscope.knockout(net, ko_task, s.partition, n_random=args.random, seed=seed)
    weights = torch.cat([m.weight.detach().flatten() for m in (model.conv1, model.conv2, model.head)])
    mass = pixel_paths(model)
    rf = receptive_field(model)
    return {
        "trainer": trainer,
        "seed": seed,
        "test_accuracy": fitted.fit.metric,
        "sparsity": weight_sparsity(model),
        "zero_fraction": float((weights == 0).double().mean()),
        "ncut": float(s.value),
        "null": {
            "method": "layer_degree",
            "n": args.shuffles,
            "mean": float(s.null.mean),
            "std": float(s.null.std),
            "z": None if s.null.z is None else float(s.null.z),
            "p_value": float(s.null.p_value),
        },
        "knockout": knockout_summary(ko),
        "dead_pixels": rf["dead_fraction"],
        "alive": rf["alive"],
        "path_mass": np.round(mass / mass.max(), 5).tolist(),  # relative to the strongest pixel
        "strategy": fitted.fit.strategy,
        "train_seconds": train_s,
        "seconds": time.perf_counter() - t0,
    }


def _stats(values: list[float | None]) -> dict[str, Any] | None:
    v = [float(x) for x in values if x is not None]
    if not v:
        return None
    return {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}


ROW_KEYS = {
    "test_accuracy": lambda r: r["test_accuracy"],
    "sparsity": lambda r: r["sparsity"],
    "dead_pixels": lambda r: r["dead_pixels"],
    "ncut": lambda r: r["ncut"],
    "z": lambda r: r["null"]["z"],
    "significant_submodules": lambda r: r["knockout"]["significant"],
    "submodules": lambda r: r["knockout"]["submodules"],
}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd per trainer, and the three answers (each: BIMT beyond every plain seed)."""
    rows = {
        t: {k: _stats([f(r) for r in records if r["trainer"] == t]) for k, f in ROW_KEYS.items()}
        for t in TRAINERS
    }

    def beyond(key: str, sign: float) -> bool | None:  # every BIMT seed past every plain seed
        def values(trainer: str) -> list[float]:
            got = (ROW_KEYS[key](r) for r in records if r["trainer"] == trainer)
            return [sign * v for v in got if v is not None]

        b, p = values("bimt"), values("plain")
        return None if not b or not p else min(b) > max(p)

    return {
        "rows": rows,
        "bimt_shrank_receptive_field": beyond("dead_pixels", 1.0),
        "bimt_sparser": beyond("sparsity", 1.0),
        "bimt_more_modular_z": beyond("z", -1.0),  # a lower z (n-cut further below its null)
        "bimt_lower_ncut": beyond("ncut", -1.0),
    }


def figure(receipt: dict[str, Any], path: str | Path) -> Path:
    """Plain (top) vs BIMT (bottom), one column per seed: each pixel's path mass to the outputs
    relative to the strongest pixel (log scale); pixels with no surviving path are white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = receipt["results"]["runs"]
    seeds = sorted({r["seed"] for r in runs})
    fig, axes = plt.subplots(
        2, len(seeds), figsize=(2.4 * len(seeds) + 1.2, 5.2), squeeze=False, layout="constrained"
    )
    image = None
    for row, trainer in enumerate(TRAINERS):
        for col, seed in enumerate(seeds):
            r = next(x for x in runs if x["trainer"] == trainer and x["seed"] == seed)
            mass = np.log10(np.maximum(np.asarray(r["path_mass"]), 1e-6))
            shown = np.ma.masked_where(np.asarray(r["alive"]) == 0, mass)
            ax = axes[row, col]
            image = ax.imshow(shown, cmap="viridis", vmin=-2, vmax=0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{trainer} seed {seed}\n{100 * r['dead_pixels']:.0f}% pixels cut off", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8, label="log10 path mass (rel. to max), clipped at -2")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--swap-every", type=int, default=500)
    ap.add_argument("--clusters", type=int, default=4)
    ap.add_argument("--shuffles", type=int, default=10, help="layer_degree shuffles per run")
    ap.add_argument("--random", type=int, default=20, help="random lesions per sub-module")
    ap.add_argument("--knockout-examples", type=int, default=2000)
    ap.add_argument("--data", default=FASHION_MNIST_DIR, help="Fashion-MNIST IDX folder")
    ap.add_argument("--quick", action="store_true", help="seed 0, 100 steps, 3 shuffles, 200 knockout images")
    ap.add_argument("--out", default=str(ROOT / "cnn.json"))
    ap.add_argument("--figure", help="also write the receptive-field figure (PNG) here")
    ap.add_argument("--figure-only", action="store_true", help="redraw --figure from the receipt at --out")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    if args.figure_only:
        print(figure(json.loads(Path(args.out).read_text()), args.figure))
        return
    if args.quick:
        args.seeds, args.steps, args.swap_every, args.shuffles, args.knockout_examples = "0", 100, 50, 3, 200
    torch.set_num_threads(1)
    task = get_task("fashion-mnist", data=args.data)
    ko_task = dataclasses.replace(
        task, x_test=task.x_test[: args.knockout_examples], y_test=task.y_test[: args.knockout_examples]
    )
    records = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for trainer in TRAINERS:
            rec = run_one(task, ko_task, trainer, seed, args)
            records.append(rec)
            print(
                f"{trainer:<5} seed {seed}  acc {rec['test_accuracy']:.4f}  sparsity {rec['sparsity']:.3f}  "
                f"dead pixels {rec['dead_pixels']:.3f}  ncut {rec['ncut']:.3f}  z {rec['null']['z']}  "
                f"significant {rec['knockout']['significant']}/{rec['knockout']['submodules']}  "
                f"{rec['seconds']:.0f} s",
                flush=True,
            )
    settings = {k: v for k, v in vars(args).items() if k not in ("figure_only",)}
    settings.update(
        task="fashion-mnist",
        model="BIMTCNN(widths=(8, 16))",
        bimt_options=BIMT_OPTIONS,
        survival_threshold=RELATIVE_THRESHOLD,
    )
    write_receipt(
        args.out, {"summary": summarise(records), "runs": records}, settings=settings, note=args.note
    )
    if args.figure:
        figure(json.loads(Path(args.out).read_text()), args.figure)


if __name__ == "__main__":
    main()
