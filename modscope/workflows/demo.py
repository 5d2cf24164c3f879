"""The demo: every experiment of modscope on tasks that need no download, as one report.

``modscope demo`` trains plain, dropout + pruned, BIMT and clusterability-regularised models
(the spectral penalty of [spec §7][spec-7]) on embedded tasks
(scikit-learn's digits, two digits side by side (``halves``), the BIMT paper's formula
task, and Fashion-MNIST when its files are installed), scores every model's n-cut against
shuffled copies, learns weight masks for the ``halves`` functions (left / right digit),
lesions every sub-module against random lesions (and every pair), and writes
``<out>/index.html`` with every figure plus the numbers as JSON / CSV
([`build_report()`][modscope.report.html.build_report]).

Every stage is cached under ``<out>/checkpoints`` and ``<out>/cache`` by a hash of
everything that determines its result (the task, the training config and the seed for a
checkpoint; the checkpoint's bytes and the stage's settings for scores, masks and
knockouts; a figure's input for a figure), so a rerun only computes what changed.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from .._version import __version__
from ..errors import ModscopeError
from ..runtime.atomic import write_json
from ..runtime.hashing import file_sha256, json_digest
from ..runtime.modules import torch_threads
from ..stats.flags import z_text
from ..tasks.images import FASHION_MNIST_DIR
from ..training.checkpoint import load_checkpoint, task_for_checkpoint

__all__ = [
    "CLUSTER_REG",
    "SPARSE_NULLS",
    "DemoResult",
    "DemoRun",
    "DemoSettings",
    "demo_runs",
    "fashion_available",
    "left_out_note",
    "run_demo",
]


@dataclass(frozen=True)
class DemoRun:
    """One model of the demo: a task, how to train it, and which experiments to run on it.

    ``masks``: functions to learn weight masks for (then the knockout also removes each
    mask); ``pairs``: also lesion every pair of sub-modules; ``extra_nulls``: shuffle methods
    to score against besides ``layer`` (sparse networks: ``layer_nonzero``, ``layer_degree``).
    """

    name: str
    task: str
    train: dict[str, Any]
    clusters: int
    task_params: dict[str, Any] = field(default_factory=dict)
    masks: tuple[str, ...] = ()
    pairs: bool = True
    extra_nulls: tuple[str, ...] = ()

    def key(self, seed: int, device: str = "cpu") -> str:
        """Hash of everything that determines the trained checkpoint (a device's rounding too: the
        CPU's keys stay as they were)."""
        on = [] if device == "cpu" else [device]
        return json_digest([self.task, self.task_params, self.train, seed, __version__, *on])[:16]


def fashion_available(path: str | os.PathLike = FASHION_MNIST_DIR) -> bool:
    """Whether the Fashion-MNIST files (Debian ``dataset-fashion-mnist``) are installed."""
    p = Path(path)
    return p.is_dir() and any(p.glob("train-images*")) and any(p.glob("t10k-images*"))


# Sparse (pruned, BIMT) networks: `layer` shuffles scatter their zeros, an easy null. Also score
# them against one that keeps the sparsity pattern and one that keeps every neuron's degree.
SPARSE_NULLS = ("layer_nonzero", "layer_degree")

# The spectral clusterability regulariser (spec §7) for the 12-cluster score: lam * (mu_2 + ... + mu_12),
# the eigenvectors refreshed every 10 steps. On digits this takes the 12-cluster n-cut from 10.3 to 0.2
# at no accuracy cost, mostly by nearly cutting small groups of units off (experiments/cluster_reg.md).
CLUSTER_REG = {"loss": "spectral", "lam": 0.3, "eigs": 11, "every": 10}


def demo_runs(quick: bool, fashion: bool | None = None) -> list[DemoRun]:
    """The demo's models; ``quick`` trains fewer steps (under 3 minutes on 2 cores in all).

    ``fashion``: add a Fashion-MNIST model (default: when its files are installed).
    """
    steps = {"digits": 1000 if quick else 4000, "halves": 1500 if quick else 4000,
             "formula-independence": 4000 if quick else 20000}
    pruned = {"dropout": 0.2, "prune": 0.9, "prune_steps": steps["digits"]}
    bimt = {"bimt": True}
    halves = ("left", "right")
    # name, task, training besides its steps, clusters, functions to mask, nulls besides `layer`
    table = [
        ("digits-plain", "digits", {}, 12, (), ()),
        ("digits-dropout-pruned", "digits", pruned, 12, (), SPARSE_NULLS),
        ("digits-bimt", "digits", bimt, 12, (), SPARSE_NULLS),
        ("digits-cluster-reg", "digits", {"cluster_reg": CLUSTER_REG}, 12, (), ()),
        ("halves-plain", "halves", {}, 4, halves, ()),
        ("halves-bimt", "halves", bimt, 4, halves, SPARSE_NULLS),
        ("independence-plain", "formula-independence", {}, 2, (), ()),
        ("independence-bimt", "formula-independence", bimt, 2, (), SPARSE_NULLS),
    ]
    runs = [DemoRun(name, task, {"steps": steps[task], **extra}, clusters, masks=masks, extra_nulls=nulls)
            for name, task, extra, clusters, masks, nulls in table]
    if fashion if fashion is not None else fashion_available():
        # quick: a small network on a fifth of the training set (seconds, not minutes); else the
        # paper's 784-256x4-10 network, 20 epochs
        train, task_params = (({"steps": 600, "hidden": [64, 64]}, {"limit": 12000}) if quick
                              else ({"epochs": 20}, {}))
        runs.append(DemoRun("fashion-mnist-plain", "fashion-mnist", train, 12, task_params, pairs=False))
    return runs


@dataclass(frozen=True)
class DemoSettings:
    """How much of each experiment the demo runs."""

    shuffles: int
    mask_steps: int
    knockout_random: int

    @staticmethod
    def for_mode(quick: bool, shuffles: int | None = None) -> DemoSettings:
        return DemoSettings(
            shuffles=shuffles if shuffles is not None else (20 if quick else 50),
            mask_steps=1000 if quick else 10000,
            knockout_random=50 if quick else 100,
        )


@dataclass
class DemoResult:
    """One row per model (training metrics, n-cut against shuffles) plus every result."""

    rows: list[dict[str, Any]]
    out_dir: Path
    scores: dict[str, dict] = field(default_factory=dict)
    masks: dict[str, dict] = field(default_factory=dict)
    knockouts: dict[str, dict] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    nulls: dict[str, dict[str, dict]] = field(default_factory=dict)  # model -> method -> score
    worked: dict[str, dict] = field(default_factory=dict)  # "cnn" / "transformer" -> worked_example()
    notes: list[str] = field(default_factory=list)  # what the demo left out, and why

    @property
    def report(self) -> Path:
        return self.out_dir / "index.html"

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The layout [`build_report()`][modscope.report.html.build_report] reads back (``models`` first):
        every field but ``rows`` (the models) and ``out_dir``, in their order."""
        rest = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("rows", "out_dir")}
        return {"version": __version__, "models": self.rows, **rest}


# -- caching ---------------------------------------------------------------------------------------
def _stage_key(kind: str, ckpt_hash: str, config: dict[str, Any]) -> str:
    return json_digest([kind, ckpt_hash, config, __version__])[:16]


# -- the demo --------------------------------------------------------------------------------------
def run_demo(
    out_dir: str | Path = "modscope-report",
    quick: bool = True,
    seed: int = 0,
    shuffles: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    fashion: bool | None = None,
    runs: list[DemoRun] | None = None,
    settings: DemoSettings | None = None,
    threads: int | None = 1,
    worked: Sequence[str] | None = None,
    device: str = "cpu",
) -> DemoResult:
    """Train, score, mask and knock out the demo's models; write the report to ``out_dir``.

    ``runs`` / ``settings`` replace the demo's models / effort (default:
    [`demo_runs()`][modscope.workflows.demo.demo_runs] and
    [`DemoSettings.for_mode()`][modscope.workflows.demo.DemoSettings.for_mode]). ``threads``: torch
    threads while it runs (``None``:
    leave torch's setting). ``worked``: the worked examples on real architectures to run
    (`modscope.workflows.worked_example`: ``"transformer"`` on addmul, ``"cnn"`` on Fashion-MNIST;
    default: both when the demo's own models run, the CNN only when Fashion-MNIST is installed;
    none when ``runs`` is given). ``device``: where training, masks and knockouts run (``"cpu"``,
    ``"cuda"``, ``"cuda:1"``); scores stay on the CPU, and a GPU's checkpoints are cached apart
    from the CPU's. Returns the results; ``result.report`` is the page.
    """
    from ..runtime.modules import resolve_device

    if threads is not None and int(threads) < 1:
        raise ModscopeError(f"threads must be at least 1, got {threads}")
    device = str(resolve_device(device))  # a missing GPU fails before any work
    with torch_threads(threads):
        has_fashion = fashion if fashion is not None else fashion_available()
        if worked is None:
            worked = () if runs is not None else ("cnn",) * bool(has_fashion) + ("transformer",)
        notes = [] if runs is not None or has_fashion else [left_out_note(fashion is False, "cnn" in worked)]
        runs = runs if runs is not None else demo_runs(quick, has_fashion)
        st = settings or DemoSettings.for_mode(quick, shuffles)
        stages = _Stages(Path(out_dir), quick, st, seed, jobs, progress, device)
        return _run_demo(stages, runs, tuple(worked), notes, log)


def left_out_note(asked: bool, cnn_runs: bool = False) -> str:
    """The sentence saying the demo leaves Fashion-MNIST out: ``asked`` (``--no-fashion``) or
    because its files are not installed; ``cnn_runs``: the CNN worked example runs anyway."""
    what = "the fashion-mnist-plain model" + ("" if cnn_runs else " and the residual CNN worked example")
    if asked:
        return f"Fashion-MNIST left out (--no-fashion): {what} not run."
    return (f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR}: install the Debian package "
            f"dataset-fashion-mnist): {what} left out.")


def _explorer_pages(result: DemoResult, mask_files: dict[str, Path]) -> dict[str, str]:
    """One `modscope explore` page per model under ``result.out_dir/explore/``: ``{model: relative link}``.

    The demo's cached results are the API's ``to_dict()``: the keys the CLI adds for the explorer
    are added here (the knockout lesioned the score's partition; the masks come from their file)."""
    from ..masks.bits import encode_masks
    from ..masks.result import load_masks
    from ..report.explore import explore

    out, scores, knockouts, masks = result.out_dir, result.scores, result.knockouts, result.masks
    links = {}
    for r in result.rows:
        name = r["model"]
        items: list[tuple[str, dict]] = [("score", scores[name])]
        if name in knockouts:
            items.append(("knockout", {**knockouts[name], "lesioned_labels": scores[name]["labels"]}))
        if name in masks and name in mask_files and mask_files[name].exists():
            items.append(
                ("masks", {**masks[name], "weight_masks": encode_masks(load_masks(mask_files[name]))})
            )
        page = explore(*items, network=out / r["checkpoint"], title=f"modscope explore: {name}")
        page.save(out / "explore" / f"{name}.html")
        links[name] = f"explore/{name}.html"
    return links


@dataclass(frozen=True)
class _Stages:
    """What every cached stage of one demo run shares: the output folder, the effort and the seed."""

    out: Path
    quick: bool
    st: DemoSettings
    seed: int
    jobs: int
    progress: bool
    device: str

    @property
    def shared(self) -> dict[str, Any]:
        """What training, the masks and the knockouts all take: the seed, the progress bars, the device."""
        return {"seed": self.seed, "progress": self.progress, "device": self.device}

    def train_stage(self, run: DemoRun) -> tuple[Any, dict, Path, bool]:
        """The trained checkpoint of ``run``, kept under ``checkpoints/`` by `DemoRun.key` (a damaged
        file is trained again): ``(checkpoint, metrics, path, hit)``."""
        from ..tasks import get_task
        from ..training.trainer import train

        path = self.out / "checkpoints" / f"{run.name}-{run.key(self.seed, self.device)}.pt"
        if path.exists():
            try:
                ckpt = load_checkpoint(path)
                return ckpt, dict(ckpt.metrics), path, True
            except ModscopeError:
                path.unlink()  # a damaged cache entry is retrained
        result = train(get_task(run.task, seed=self.seed, **run.task_params), **self.shared, **run.train)
        result.save(path)
        return result.checkpoint, dict(result.metrics), path, False

    def cached(self, kind: str, name: str, h: str, config: dict, compute: Callable[[], dict]
               ) -> tuple[dict, bool]:
        """A stage's result, kept as ``cache/<kind>-<name>-<key>.json``: ``(result, hit)``; a damaged
        cache file is recomputed."""
        path = self.out / "cache" / f"{kind}-{name}-{_stage_key(kind, h, config)}.json"
        if path.exists():
            try:
                return json.loads(path.read_text()), True
            except (OSError, json.JSONDecodeError):
                path.unlink(missing_ok=True)
        write_json(path, compute())
        return json.loads(path.read_text()), False  # as a rerun reads it: the same key order either way

    def score_config(self, run: DemoRun) -> dict[str, Any]:
        """What the score of ``run`` depends on besides the checkpoint (its cache key)."""
        return {"clusters": run.clusters, "shuffles": self.st.shuffles, "seed": self.seed}

    def score_stage(self, run: DemoRun, ckpt: Any, h: str) -> tuple[dict, dict[str, dict], bool]:
        """The score (cached), and the extra nulls' scores of a sparse network: ``(score, nulls, hit)``."""
        from ..scoring.engine import score

        s_cfg = self.score_config(run)
        common = dict(n_clusters=run.clusters, n_shuffles=self.st.shuffles, seed=self.seed, jobs=self.jobs,
                      progress=self.progress)
        s, hit = self.cached("score", run.name, h, s_cfg, lambda: score(ckpt, **common).to_dict())
        nulls: dict[str, dict] = {}
        companion = (s.get("sparse") or {}).get("other") or {}
        for method in run.extra_nulls:
            if companion.get("method") == method:  # the score ran it already (a sparse network)
                extra = {k: v for k, v in s.items() if k not in ("labels", "sparse")} | {"shuffle": companion}
            else:
                extra, _ = self.cached(
                    "score", run.name, h, {**s_cfg, "method": method},
                    lambda method=method: score(ckpt, null=method, compare_nulls=False, **common).to_dict(),
                )
                extra.pop("labels")  # the same clustering as the main score's
            nulls[method] = extra
        return s, nulls, hit

    def masks_stage(self, run: DemoRun, model_task: Callable[[], tuple], h: str
                    ) -> tuple[Path, dict, bool]:
        """The masks of ``run.masks`` (cached, their file beside the JSON): ``(file, result, hit)``."""
        from ..masks.fit import train_masks

        m_cfg = {"functions": list(run.masks), "steps": self.st.mask_steps, "seed": self.seed}
        # the masks' file, beside their JSON
        mask_file = self.out / "cache" / f"masks-{run.name}-{_stage_key('masks', h, m_cfg)}.pt"

        def fit_masks() -> dict:
            res = train_masks(*model_task(), list(run.masks), steps=self.st.mask_steps, threads=self.jobs,
                              **self.shared)  # any jobs: the same masks
            res.save(mask_file)
            return res.to_dict()

        if not mask_file.exists():
            mask_file.with_suffix(".json").unlink(missing_ok=True)  # the JSON alone cannot feed the knockout
        return (mask_file, *self.cached("masks", run.name, h, m_cfg, fit_masks))

    def knockout_stage(self, run: DemoRun, model_task: Callable[[], tuple], h: str, s: dict,
                       mask_file: Path | None) -> tuple[dict, bool]:
        """The knockout of the score's sub-modules (and of each mask), cached: ``(result, hit)``."""
        from ..lesions.knockout import knockout
        from ..masks.result import load_masks

        k_cfg = {"labels_from": _stage_key("score", h, self.score_config(run)),
                 "random": self.st.knockout_random, "pairs": run.pairs, "seed": self.seed,
                 "masks": None if mask_file is None else file_sha256(mask_file)}
        return self.cached(
            "knockout", run.name, h, k_cfg,
            lambda: knockout(
                *model_task(), s["labels"], n_random=self.st.knockout_random, pairs=run.pairs,
                masks=None if mask_file is None else load_masks(mask_file), **self.shared,
            ).to_dict(),
        )

    def worked_stage(self, which: str) -> tuple[dict, bool]:
        """A worked example on a real architecture (cached): ``(result, hit)``."""
        from .worked_example import worked_example

        w_cfg = {"which": which, "quick": bool(self.quick), "seed": self.seed, "version": __version__,
                 **({} if self.device == "cpu" else {"device": self.device})}
        return self.cached(
            "worked", which, which, w_cfg,
            lambda: worked_example(which, quick=self.quick, seed=self.seed, device=self.device),
        )


def _row(run: DemoRun, metrics: dict, s: dict, nulls: dict[str, dict], st: DemoSettings,
         checkpoint: str) -> dict[str, Any]:
    """One model's line of the report's table: training metric, n-cut against each null."""
    metric = "test_accuracy" if "test_accuracy" in metrics else "test_loss"
    sh = s["shuffle"] or {}
    row = {
        "model": run.name, "task": run.task, "widths": "-".join(map(str, s["layer_widths"])),
        "metric": metric, "value": float(metrics[metric]), "sparsity": float(metrics.get("sparsity", 0.0)),
        "clusters": run.clusters, "ncut": s["ncut"], "shuffle_mean": sh.get("mean"),
        "shuffle_std": sh.get("std"), "z": sh.get("z"), "p_value": sh.get("p_value"),
        "shuffles": st.shuffles, "checkpoint": checkpoint,
    }
    for method, extra in nulls.items():
        row[f"z_{method}"] = (extra["shuffle"] or {}).get("z")
        row[f"p_{method}"] = (extra["shuffle"] or {}).get("p_value")
    return row


def _tail(cached: Sequence[str], seconds: float) -> str:
    """The end of a log line: which stages came from the cache, and the wall time."""
    return f"{'  (' + ', '.join(cached) + ')' if cached else ''}  [{seconds:.0f} s]"


def _row_line(row: dict[str, Any], sh: dict, methods: Sequence[str], cached: Sequence[str],
              seconds: float) -> str:
    """The log line of one model: its metric, n-cut against shuffles, z and p per null."""
    nan = float("nan")
    return (
        f"{row['model']:<24} {row['metric']} {row['value']:.4g}  n-cut {row['ncut']:.3f} vs "
        f"{sh.get('mean', nan):.3f} +- {sh.get('std', nan):.3f}  z {z_text(row['z'], '.2f')}  "
        f"p {sh.get('p_value', nan):.3g}"
        + "".join(f"  | {m}: z {z_text(row[f'z_{m}'], '.2f')} p {row[f'p_{m}']:.3g}" for m in methods)
        + _tail(cached, seconds)
    )


def _worked_line(which: str, w: dict, cached: Sequence[str], seconds: float) -> str:
    sh = w["score"].get("shuffle") or {}
    return (
        f"worked-{which:<17} {w['training']['metric_name']} {w['training']['metric']:.4g}  "
        f"n-cut {w['score']['ncut']:.3f} vs {sh.get('mean', float('nan')):.3f}  "
        f"z {z_text(sh.get('z'), '.2f')}  ({w['model']}, {w['graph']['nodes']} units)"
        + _tail(cached, seconds)
    )


def _run_demo(stages: _Stages, runs: list[DemoRun], worked: tuple[str, ...], notes: list[str],
              log: Callable[[str], None] | None) -> DemoResult:
    from tqdm.auto import tqdm

    from ..report.html import build_report, collect

    out, st, progress = stages.out, stages.st, stages.progress
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=sum(3 + bool(r.masks) for r in runs) + len(worked) + 1, desc="demo", unit="stage",
               disable=not progress, file=sys.stderr)
    say = log or (lambda msg: tqdm.write(msg, file=sys.stderr) if progress else print(msg))
    cached: list[str] = []  # the current model's stages that came from the cache, for its log line

    def stage(text: str, note: str, compute: Callable[..., tuple], *args: Any) -> Any:
        """One stage under the bar: ``compute(*args)``'s result without its last item, whether it was
        cached (then ``note`` joins ``cached``); a lone item is returned as it is."""
        bar.set_description(f"demo: {text}")
        *got, hit = compute(*args)
        if hit:
            cached.append(note)
        bar.update()
        return got[0] if len(got) == 1 else got

    for note in notes:
        say(f"note: {note}")
    effort = {"quick": bool(stages.quick), "seed": int(stages.seed), **asdict(st)}
    result = DemoResult([], out, settings=effort, notes=list(notes))
    mask_files: dict[str, Path] = {}
    try:
        for run in runs:
            t0 = time.perf_counter()
            cached.clear()
            ckpt, metrics, path = stage(f"train {run.name}", "model cached", stages.train_stage, run)
            h = file_sha256(path)
            s, run_nulls = stage(f"score {run.name}", "score cached", stages.score_stage, run, ckpt, h)
            result.scores[run.name] = s
            if run_nulls:
                result.nulls[run.name] = run_nulls
            # the network and its task, built once and only when a stage is not cached
            model_task = functools.cache(lambda ckpt=ckpt: (ckpt.model(), task_for_checkpoint(ckpt)))
            if run.masks:
                mask_files[run.name], result.masks[run.name] = stage(
                    f"masks {run.name}", "masks cached", stages.masks_stage, run, model_task, h
                )
            result.knockouts[run.name] = stage(
                f"knockout {run.name}", "knockout cached", stages.knockout_stage, run, model_task, h, s,
                mask_files.get(run.name),
            )
            result.rows.append(_row(run, metrics, s, run_nulls, st, str(path.relative_to(out))))
            write_json(out / "scores" / f"{run.name}.json", s)
            seconds = time.perf_counter() - t0
            say(_row_line(result.rows[-1], s["shuffle"] or {}, list(run_nulls), cached, seconds))

        for which in worked:  # the worked examples: a residual CNN and a transformer, any-network API
            t0 = time.perf_counter()
            cached.clear()
            result.worked[which] = stage(f"worked example: {which}", "cached", stages.worked_stage, which)
            say(_worked_line(which, result.worked[which], cached, time.perf_counter() - t0))

        bar.set_description("demo: report")
        data = collect([("demo", result.to_dict())])
        data.checkpoints = {r["model"]: out / r["checkpoint"] for r in result.rows}
        data.explorers = _explorer_pages(result, mask_files)
        build_report(data, out, title="modscope demo report", cache_dir=out / "cache" / "figures")
        bar.update()
    finally:
        bar.close()
    return result
