"""The demo: train comparison models on the embedded tasks, score each against its shuffles.

``modscope demo`` trains plain, dropout + pruned and BIMT models on tasks that need no
download (scikit-learn's digits, the BIMT paper's formula tasks), scores every model's
n-cut against shuffled copies and writes ``results.json`` / ``results.csv`` to the report
folder. Trained checkpoints are cached under ``<out>/checkpoints`` by a hash of everything
that determines them, so a rerun only trains what changed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from ._atomic import write_json, write_text
from .checkpoint import load_checkpoint
from .errors import ModscopeError
from .score import score


@dataclass(frozen=True)
class DemoRun:
    """One model of the demo: a task, how to train it, and how to score it."""

    name: str
    task: str
    train: dict[str, Any]
    clusters: int
    task_params: dict[str, Any] = field(default_factory=dict)

    def key(self, seed: int) -> str:
        blob = json.dumps([self.task, self.task_params, self.train, seed, __version__], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def demo_runs(quick: bool) -> list[DemoRun]:
    """The demo's models; ``quick`` trains fewer steps (a few minutes on 2 cores in all)."""
    digits_steps = 1500 if quick else 4000
    formula_steps = 6000 if quick else 20000
    return [
        DemoRun("digits-plain", "digits", {"steps": digits_steps}, 12),
        DemoRun(
            "digits-dropout-pruned",
            "digits",
            {"steps": digits_steps, "dropout": 0.2, "prune": 0.9, "prune_steps": digits_steps},
            12,
        ),
        DemoRun("digits-bimt", "digits", {"steps": digits_steps, "bimt": True}, 12),
        DemoRun("independence-plain", "formula-independence", {"steps": formula_steps}, 2),
        DemoRun("independence-bimt", "formula-independence", {"steps": formula_steps, "bimt": True}, 2),
    ]


@dataclass
class DemoResult:
    """One row per model: training metrics and the n-cut against its shuffles."""

    rows: list[dict[str, Any]]
    out_dir: Path

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {"version": __version__, "models": self.rows}


def _train_cached(run: DemoRun, seed: int, ckpt_dir: Path, progress: bool):
    from .tasks import get_task
    from .train import train

    path = ckpt_dir / f"{run.name}-{run.key(seed)}.pt"
    if path.exists():
        try:
            ckpt = load_checkpoint(path)
            return ckpt, dict(ckpt.metrics), True, path
        except ModscopeError:
            path.unlink()  # a damaged cache entry is retrained
    task = get_task(run.task, seed=seed, **run.task_params)
    result = train(task, seed=seed, progress=progress, **run.train)
    result.save(path)
    return result.checkpoint, dict(result.metrics), False, path


def run_demo(
    out_dir: str | Path = "modscope-report",
    quick: bool = True,
    seed: int = 0,
    shuffles: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Train, score and write the demo's results to ``out_dir``."""
    out = Path(out_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    n_shuffles = shuffles if shuffles is not None else (20 if quick else 50)
    rows = []
    for run in demo_runs(quick):
        t0 = time.perf_counter()
        ckpt, metrics, cached, path = _train_cached(run, seed, ckpt_dir, progress)
        res = score(
            ckpt, n_clusters=run.clusters, n_shuffles=n_shuffles, seed=seed, jobs=jobs, progress=progress
        )
        metric = "test_accuracy" if "test_accuracy" in metrics else "test_loss"
        row = {
            "model": run.name,
            "task": run.task,
            "widths": "-".join(map(str, res.graph.layer_widths)),
            "metric": metric,
            "value": float(metrics[metric]),
            "sparsity": float(metrics.get("sparsity", 0.0)),
            "clusters": run.clusters,
            "ncut": res.ncut,
            "shuffle_mean": res.null.mean,
            "shuffle_std": res.null.std,
            "z": res.null.to_dict()["z"],
            "p_value": res.null.p_value,
            "shuffles": n_shuffles,
            "checkpoint": str(path),
        }
        rows.append(row)
        write_json(out / "scores" / f"{run.name}.json", res.to_dict())
        z = "n/a" if row["z"] is None else f"{row['z']:.2f}"
        log(
            f"{run.name:<24} {metric} {row['value']:.4g}  n-cut {res.ncut:.3f} vs "
            f"{res.null.mean:.3f} +- {res.null.std:.3f}  z {z}  p {res.null.p_value:.3g}"
            f"{'  (cached model)' if cached else ''}  [{time.perf_counter() - t0:.0f} s]"
        )
    result = DemoResult(rows, out)
    write_json(out / "results.json", result.to_dict())
    write_text(out / "results.csv", result.to_frame().to_csv(index=False))
    return result
