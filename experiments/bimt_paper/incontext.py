"""BIMT vs plain training of the in-context linear-regression transformer of BIMT's paper (Liu, Gan &
Tegmark, "Seeing is Believing", section 3.4): test MSE, sparsity, n-cut z, knockouts and the residual
neurons that encode the task's weight ``w``.

Task ``incontext-linreg`` (d = 1, T = 2: tokens ``[0, x1], [y1, 0], [0, x2]``, predict ``y1`` and
``y2``, ``y = w x``, 10,000 sequences, 80 / 20 split); model `InContextTransformer` (n_embed 32, 2
causal blocks, 1 head, GELU MLP x4, no LayerNorm); AdamW 1e-3, batch 64. BIMT: the paper's lambda
1e-3, x10 at 1/4 and again at 3/4 of training, A 2, y* 0.5, costs averaged per tensor, swaps of the
top 5 units per group every 200 steps, no threshold at the end. For every run:

- test MSE of both predictions, of the in-context one (``y2``) alone, and the first (``y1``, whose
  best MSE without context is ``E[w^2] E[x^2] = 13/9``);
- sparsity: the fraction of Linear weight entries below 1e-2 of the network's largest |weight|;
- n-cut of the unit graph (``modscope.network``) with ``--clusters`` clusters, z and p against
  ``layer_degree`` shuffles, and z against plain ``layer`` shuffles;
- ``modscope.knockout`` of the partition's sub-modules against ``--random`` random lesions: how
  many damage the test MSE significantly;
- the residual-stream units most correlated with ``w`` at the last token over the test sequences,
  at the output of block 1 (the paper's probe, its "Res2") and of block 2: top 3 ``|corr|``, and
  how many units reach ``|corr| >= 0.9`` (before training too: the stream sees ``y1 = w x1``).

Writes the receipt JSON and a figure (|corr| of each residual unit with w, plain vs BIMT)::

    OMP_NUM_THREADS=1 python experiments/bimt_paper/incontext.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modscope import get_task, knockout, network, score
from modscope.runtime.receipts import write_receipt
from modscope.tasks.incontext import sequence_weights, to_tokens
from modscope.training.architectures import InContextTransformer
from modscope.training.bimt import BIMTConfig
from modscope.training.bimt_graph import bimt_strategy
from modscope.training.fit import fit_model

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "experiments" / "bimt_paper" / "incontext.json"
FIGURE = ROOT / "docs" / "assets" / "bimt-incontext-corr.png"
PAPER_STEPS = 40000
SIGNIFICANT = ("important", "sig-but-small")  # knockout categories: damage beyond random lesions
QUICK = {"n_sequences": 400, "steps": 40, "shuffles": 2, "random": 20, "seeds": "0"}


def make_model(seed: int) -> InContextTransformer:
    """The paper's transformer, initialised from ``seed`` without touching torch's global stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InContextTransformer(n_embed=32, n_layers=2, heads=1, mlp_ratio=4)


def sparsity(model: torch.nn.Module, rel: float = 1e-2) -> float:
    """Fraction of Linear weight entries with ``|w| < rel * max |w|`` (max over the network)."""
    ws = [m.weight.detach().abs().flatten() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    w = torch.cat(ws)
    return float((w < rel * w.max()).double().mean())


def residual_at_last_token(model: InContextTransformer, x: torch.Tensor) -> list[np.ndarray]:
    """``[(N, n_embed)]`` per block: the residual stream at the last token after that block."""
    seen: list[np.ndarray] = []
    keep = lambda module, inputs, out: seen.append(out[:, -1].double().numpy())  # noqa: E731
    hooks = [b.register_forward_hook(keep) for b in model.blocks]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def w_correlations(model: InContextTransformer, x: torch.Tensor, w: torch.Tensor) -> list[np.ndarray]:
    """``[(n_embed,)]`` per block: Pearson correlation of each residual unit with ``w`` (0 for a
    unit constant over the sequences)."""
    wc = w.double().numpy() - float(w.double().mean())
    out = []
    for h in residual_at_last_token(model, x):
        hc = h - h.mean(0)
        denom = np.sqrt((hc**2).sum(0) * (wc**2).sum())
        out.append(np.divide(hc.T @ wc, denom, out=np.zeros(h.shape[1]), where=denom > 0))
    return out


def top_units(corr: np.ndarray, k: int = 3) -> list[dict[str, float]]:
    order = np.argsort(-np.abs(corr), kind="stable")[:k]
    return [{"unit": int(i), "corr": float(corr[i])} for i in order]


def train_one(task, kind: str, seed: int, steps: int) -> tuple[InContextTransformer, dict[str, Any]]:
    model = make_model(seed)
    w = sequence_weights(task.x_test, task.y_test)
    # the untrained stream already mixes y1 = w x1 into the last token: the baseline of the probe
    init = {
        f"block{i + 1}": {**top_units(c, 1)[0], "above_0.9": int((np.abs(c) >= 0.9).sum())}
        for i, c in enumerate(w_correlations(model, task.x_test, w))
    }
    example = to_tokens(task.x_train[:1])
    strategy = None
    if kind == "bimt":  # the task's BIMT defaults (the paper's), no threshold: the trained weights kept
        strategy = bimt_strategy(model, example, BIMTConfig.from_task(task, threshold=0.0))
    d = task.defaults
    t0 = time.perf_counter()
    fit = fit_model(
        model,
        task.to_data(),
        steps=steps,
        batch_size=d["batch_size"],
        lr=d["lr"],
        seed=seed,
        strategy=strategy,
    )
    return model, {"seconds": time.perf_counter() - t0, "fit": fit.to_dict(), "w_corr_init": init}


def analyse(model, task, seed: int, args) -> dict[str, Any]:
    """Test MSEs, sparsity, n-cut z against layer_degree, knockout summary, w-correlated units."""
    with torch.no_grad():
        out = model.eval()(task.x_test)
    last = len(task.output_groups) - 1
    net = network(model, to_tokens(task.x_test[:1]))
    sc = score(net, n_clusters=args.clusters, null="layer_degree", n_shuffles=args.shuffles, seed=seed)
    # the plain per-matrix shuffle too: it keeps no degrees, so it tells sparsity from structure apart
    sc_layer = score(net, n_clusters=args.clusters, null="layer", n_shuffles=args.shuffles, seed=seed)
    ko = knockout(
        model, task, sc.partition, n_random=args.random, seed=seed, example_input=to_tokens(task.x_test[:1])
    )
    cats = [s.category for s in ko.submodules]
    corr = w_correlations(model, task.x_test, sequence_weights(task.x_test, task.y_test))
    return {
        "test_mse": task.metric(out, task.y_test),
        "test_mse_last": task.metric(out, task.y_test, groups=(last,)),
        "test_mse_first": task.metric(out, task.y_test, groups=(0,)),
        "sparsity": sparsity(model),
        "ncut": sc.value,
        "null_mean": sc.null.mean,
        "null_std": sc.null.std,
        "z": sc.null.z,
        "p": sc.null.p_value,
        "null_mean_layer": sc_layer.null.mean,
        "z_layer": sc_layer.null.z,
        "knockout": {
            "intact_mse": ko.intact_accuracy,
            "submodules": len(cats),
            "significant": sum(c in SIGNIFICANT for c in cats),
            "categories": {c: cats.count(c) for c in sorted(set(cats))},
        },
        "w_corr": {f"block{i + 1}": top_units(c) for i, c in enumerate(corr)},
        # how many units carry w: the paper's claim is that a few do
        "w_units_above_0.9": {f"block{i + 1}": int((np.abs(c) >= 0.9).sum()) for i, c in enumerate(corr)},
        "_corr": [c.tolist() for c in corr],  # every unit, for the figure (dropped from the receipt)
    }


def mean_sd(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    v = np.array([r[key] for r in rows], dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


SUMMARY_KEYS = ("test_mse", "test_mse_last", "test_mse_first", "sparsity", "ncut", "z", "z_layer", "seconds")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± sd (ddof 1) per trainer, and the plain statement the docs print."""
    rows = {}
    for kind in ("plain", "bimt"):
        mine = [{**r, "significant": r["knockout"]["significant"]} for r in runs if r["trainer"] == kind]
        rows[kind] = {k: mean_sd(mine, k) for k in (*SUMMARY_KEYS, "significant")}
        rows[kind]["runs"] = len(mine)
        rows[kind]["z_below_minus2"] = sum(r["z"] < -2 for r in mine)
    return {"rows": rows, "statement": statement(rows)}


def compare(b: dict[str, float], p: dict[str, float], more: str, less: str, same: str) -> str:
    """``more`` / ``less`` when BIMT's mean is above / below plain's by more than the two sds
    together (the seeds' spread), else ``same``."""
    gap = b["mean"] - p["mean"]
    if abs(gap) <= b["sd"] + p["sd"]:
        return same
    return more if gap > 0 else less


def statement(rows: dict[str, Any]) -> str:
    """What the runs show, in words decided from the numbers (means over seeds, sd ddof 1)."""
    p, b = rows["plain"], rows["bimt"]
    mse = compare(
        b["test_mse_last"], p["test_mse_last"], "higher than", "lower than", "within the seeds' spread of"
    )
    sparse = compare(
        b["sparsity"], p["sparsity"], "sparser", "less sparse", "not sparser beyond the seeds' spread"
    )
    modular = compare(
        b["z"], p["z"], "less modular", "more modular", "not more modular beyond the seeds' spread"
    )
    return (
        f"BIMT's in-context test MSE (y2) was {b['test_mse_last']['mean']:.2e}, {mse} plain training's "
        f"{p['test_mse_last']['mean']:.2e} (predicting 0, a model without context, scores 13/9 = 1.44); "
        "the notebook stores no outputs and the paper prints no MSE, so there is no published band to "
        "compare with. "
        f"BIMT was {sparse} ({100 * b['sparsity']['mean']:.1f} % vs {100 * p['sparsity']['mean']:.1f} % of "
        f"weights below 1 % of the largest) and {modular} by n-cut z against layer_degree "
        f"({b['z']['mean']:.1f} vs {p['z']['mean']:.1f}; z < -2 in {b['z_below_minus2']} of {b['runs']} BIMT "
        f"and {p['z_below_minus2']} of {p['runs']} plain runs); against plain per-matrix `layer` shuffles "
        f"its z was {b['z_layer']['mean']:.1f} vs {p['z_layer']['mean']:.1f}."
    )


def figure(runs: list[dict[str, Any]], path: Path) -> None:
    """|corr| with w of every residual unit after each block, plain vs BIMT (the first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seed = runs[0]["seed"]
    picked = {r["trainer"]: r for r in runs if r["seed"] == seed}
    fig, axes = plt.subplots(2, 2, figsize=(9, 4.5), sharey=True, sharex=True)
    for i, kind in enumerate(("plain", "bimt")):
        for j, corr in enumerate(picked[kind]["_corr"]):
            ax = axes[i, j]
            ax.bar(np.arange(len(corr)), np.abs(corr), color="tab:blue" if kind == "plain" else "tab:orange")
            ax.set_title(f"{'BIMT' if kind == 'bimt' else 'plain'}: after block {j + 1}", fontsize=9)
            ax.set_ylim(0, 1)
        axes[i, 0].set_ylabel("|corr| with w")
    for ax in axes[1]:
        ax.set_xlabel("residual-stream unit (last token)")
    fig.suptitle(
        f"In-context regression: residual units vs the weight w (seed {seed}, test sequences)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--steps", type=int, default=PAPER_STEPS, help=f"training steps (the paper: {PAPER_STEPS})"
    )
    ap.add_argument("--n-sequences", type=int, default=10000)
    ap.add_argument("--clusters", type=int, default=4)
    ap.add_argument("--shuffles", type=int, default=10, help="layer_degree null samples")
    ap.add_argument("--random", type=int, default=50, help="random lesions per sub-module")
    ap.add_argument("--quick", action="store_true", help="a smoke run in seconds: tiny data, 40 steps")
    ap.add_argument("--note", default="", help="free text for the receipt (e.g. the machine's load)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--figure", type=Path, default=FIGURE)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_sequences, args.steps, args.shuffles, args.random, args.seeds = QUICK.values()
    torch.set_num_threads(1)
    task = get_task("incontext-linreg", seed=0, n_sequences=args.n_sequences)
    runs = []
    for seed in (int(s) for s in str(args.seeds).split(",") if s):
        for kind in ("plain", "bimt"):
            model, trained = train_one(task, kind, seed, args.steps)
            row = {
                "trainer": kind,
                "seed": seed,
                **analyse(model, task, seed, args),
                "seconds": trained["seconds"],
                "w_corr_init": trained["w_corr_init"],
                "strategy": trained["fit"].get("strategy", {}),
            }
            runs.append(row)
            print(
                kind,
                seed,
                {k: row[k] for k in ("test_mse_last", "sparsity", "z", "seconds")},
                row["knockout"]["significant"],
                "significant of",
                row["knockout"]["submodules"],
                row["w_corr"],
                flush=True,
            )
    figure(runs, args.figure)
    settings = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "task": task.params,
        "training": {k: task.defaults[k] for k in ("batch_size", "lr")},
        "bimt": BIMTConfig.from_task(task, threshold=0.0).to_dict(),
        "paper_steps": PAPER_STEPS,
        "model": "InContextTransformer(n_embed=32, n_layers=2, heads=1, mlp_ratio=4)",
        "sparsity_rule": "fraction of Linear weight entries below 1e-2 of the largest |weight|",
    }
    train_s = sum(r["seconds"] for r in runs)
    note = (
        f"{args.steps} of the paper's {PAPER_STEPS} steps, the lambda phases at 1/4 and 3/4 of them; the "
        f"{len(runs)} runs trained in {train_s / 60:.0f} minutes on one thread of a 2-core CPU "
        f"({1000 * train_s / (len(runs) * args.steps):.1f} ms a step), within the 20 minutes this "
        "experiment may take here. "
        if not args.quick
        else "A --quick smoke run: its numbers mean nothing. "
    )
    note = (note + args.note).strip()
    results = {"runs": [{k: v for k, v in r.items() if k != "_corr"} for r in runs], **summarise(runs)}
    write_receipt(args.out, results, settings=settings, note=note)
    print(results["statement"])
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
