"""Plain-text tables for the terminal: one function per kind of result."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._version import __version__
from ..stats.flags import VERDICT_WORDS

if TYPE_CHECKING:  # only the types: printing a score needs neither torch nor the other layers
    from ..lesions.results import KnockoutResult
    from ..masks.result import MaskResult
    from ..scoring.blocks import BlockRows, BlockScores
    from ..scoring.result import ScoreResult

__all__ = [
    "format_blocks",
    "format_knockout",
    "format_masks",
    "format_measure",
    "format_score",
    "format_sweep",
    "clustering_text",
    "flags_text",
    "sparse_text",
    "score_table",
    "widths_text",
]


def widths_text(widths: Sequence[int], times: str = "×") -> str:
    """Layer widths with runs folded: ``[784, 256, 256, 10]`` -> ``784-256×2-10`` (``times="x"``
    for file names)."""
    runs = [(w, len(list(run))) for w, run in itertools.groupby(widths)]
    return "-".join(f"{w}{times}{n}" if n > 1 else str(w) for w, n in runs)


def _fmt(x: float | None, spec: str, none: str = "n/a") -> str:
    return none if x is None else format(x, spec)


def clustering_text(c: dict) -> str:
    """How a partition was made, in words: ``k-means, 25 restarts, lowest inertia kept (the
    reference's procedure)``."""
    if c.get("assign_labels") == "cluster_qr":
        return "labels by cluster-QR (deterministic)"
    if c.get("method"):
        return f"{c['method']} communities"
    if not c:
        return "clustering settings not recorded"
    restarts = c.get("restarts")
    restarts = "/".join(map(str, restarts)) if isinstance(restarts, list) else restarts
    kept = ("lowest inertia kept (the reference's procedure)" if c.get("select") == "inertia"
            else "lowest n-cut kept")
    return f"k-means, {restarts} restarts, {kept}"


def flags_text(flags: Sequence[Any]) -> list[str]:
    """The ``warnings`` lines that end a table: one ``! message`` line per flag
    (`modscope.stats.flags`); none without flags."""
    lines = ["", "warnings"] if flags else []
    for f in flags:
        lines += textwrap.wrap(str(f), 100, initial_indent="! ", subsequent_indent="  ")
    return lines


def sparse_text(sparse: dict | None, shuffle: dict | None = None) -> list[str]:
    """A sparse network's two nulls (``sparse`` and ``shuffle``: the blocks of a score's JSON):
    its zero fraction, each null's z, p, verdict and what it tests."""
    if not sparse:
        return []
    lines = ["", f"sparse    {100 * sparse['zero_fraction']:.1f} % of the weights are zero "
             f"(>= {100 * sparse['threshold']:.0f} %): scored against a null that",
             "          scatters the zeros and one that keeps them"]
    blocks = {b["method"]: b for b in (shuffle, sparse["other"]) if b}
    for name, tests in sparse["tests"].items():
        b = blocks.get(name)
        z = "" if b is None else f"z {_fmt(b['z'], '+.2f'):>6}, p {b['p_value']:<7.4g} "
        said = VERDICT_WORDS.get(sparse["verdicts"][name], "?").removesuffix(" than")
        lines.append(f"  {name:<14} {z}{said}")
        lines += textwrap.wrap(tests, 96, initial_indent=" " * 17, subsequent_indent=" " * 17)
    return lines


def _opening(d: dict, source: str, removed: str = "") -> list[str]:
    """A score's first lines: the version and source, the network's size (``removed``: what else to
    say of its nodes), how it was read."""
    widths = "-".join(map(str, d["layer_widths"]))
    return [
        f"modscope {d['version']}  {source}".rstrip(),
        f"network   {widths}  ({d['n_nodes']} nodes, {d['n_edges']} edges{removed})",
        *([f"read as   {d['reading']}"] if d.get("reading") else []),
    ]


def _p_line(s: dict) -> str:
    """The p-value line of a score's null (``s``: its ``shuffle`` block)."""
    return f"p         {s['p_value']:.4g}   (one-sided, floor 1/{s['n'] + 1} = {1 / (s['n'] + 1):.4g})"


def score_table(result: ScoreResult, source: str = "") -> str:
    """The `modscope score` summary: n-cut, baseline, z, p and cluster sizes per layer."""
    d = result.to_dict()
    removed = int((result.partition.labels < 0).sum())
    lines = [
        *_opening(d, source, f", {removed} isolated nodes removed"),
        f"clusters  k = {d['n_clusters']}, seed {d['seed']}; {clustering_text(d.get('clustering') or {})}",
        f"n-cut     {d['ncut']:.4f}   (range 0..{d['n_clusters']}, lower = more modular)",
    ]
    s = d["shuffle"]
    if s is not None:
        lines += [
            f"shuffles  {s['n']} x {s['method']}: mean {s['mean']:.4f} +- {s['std']:.4f} (std, ddof 0)",
            f"z         {_fmt(s['z'], '.2f')}   (floor {_fmt(result.z_floor, '.2f')} = -mean/std)",
            f"ratio     {d['ncut'] / s['mean']:.4g}   (n-cut / shuffle mean)"
            if s["mean"] > 0
            else "ratio     n/a   (every shuffle has n-cut 0)",
            _p_line(s),
        ]
    lines += sparse_text(d.get("sparse"), s)
    sizes = result.cluster_sizes
    col = max(4, len(str(sizes.max())) + 1)
    if result.graph.is_chain:  # layers by index, right-aligned
        names, first, second, w, align, title = list(range(len(sizes))), "layer", "width", 5, ">", "layer"
    else:
        names = [g["name"] for g in d["groups"]]
        first, second, align, title = "group", "units", "<", "unit group"
        w = min(40, max(5, *(len(n) for n in names)))
    header = f"{first:{align}{w}}  {second} |" + "".join(f"{c:>{col}}" for c in range(sizes.shape[1]))
    lines += ["", f"cluster sizes per {title}", header, "-" * len(header)]
    for name, width, row in zip(names, d["layer_widths"], sizes, strict=True):
        label = name if len(str(name)) <= w else "..." + name[-(w - 3) :]
        lines.append(f"{label:{align}{w}}  {width:>5} |" + "".join(f"{v:>{col}}" for v in row))
    totals = "".join(f"{v:>{col}}" for v in sizes.sum(0))  # a giant cluster or slivers show here
    lines.append(f"{'all':{align}{w}}  {sum(d['layer_widths']):>5} |" + totals)
    return "\n".join(lines + flags_text(result.flags))


def format_measure(result: ScoreResult, source: str = "") -> str:
    """The terminal summary of a `MeasureResult`."""
    d = result.to_dict()
    better = "higher" if result.higher_is_modular else "lower"
    lines = [
        *_opening(d, source),
        f"measure   {result.measure} = {result.value:.4f}   ({better} = more modular)",
    ]
    part = result.partition
    if result.measure == "modularity":
        method = (d.get("clustering") or {}).get("method", "communities")
        lines.append(f"{method:<9} {part.n_clusters} communities, n-cut {part.ncut:.4f}")
    elif result.measure == "local_ncut":
        per = ", ".join(f"layer {l}: {c:.4f}" for l, c in zip(part.layers, part.ncuts, strict=True))
        lines.append(f"local     k = {part.n_clusters} per layer; n-cut {per}")
        lines.append(f"clusters  {clustering_text(d.get('clustering') or {})}")
    s = d["shuffle"]
    if s is not None:
        lines += [
            f"null      {s['n']} x {s['method']}: mean {s['mean']:.4f} +- {s['std']:.4f} (std, ddof 0)",
            f"z         {_fmt(s['z'], '.2f')}   ({'positive' if result.higher_is_modular else 'negative'} "
            "= more modular)",
            _p_line(s),
        ]
    return "\n".join(lines + sparse_text(d.get("sparse"), s) + flags_text(result.flags))


def format_score(result: ScoreResult, source: str = "") -> str:
    """`score_table` for the n-cut, `format_measure` for the other measures."""
    return score_table(result, source) if result.measure == "ncut" else format_measure(result, source)


def format_blocks(scores: BlockScores | BlockRows, source: str = "") -> str:
    """The per-block table for the terminal (of `score_blocks` or of a streamed run)."""
    df = scores.to_frame()
    measure = df["measure"].iloc[0] if len(df) else "ncut"
    lines = [
        f"modscope {__version__}  {source}".rstrip(),
        f"{len(df)} MLP blocks, method {scores.method} ({measure}; "
        f"{'higher' if measure == 'modularity' else 'lower'} = more modular)",
        *([f"read as   {scores.reading}"] if scores.reading else []),
        "",
    ]
    width = max([5, *(len(b) for b in df["block"])])
    header = f"{'block':<{width}}  d_model   d_ff  {measure:>10}  null mean +- std     z       p"
    lines += [header, "-" * len(header)]
    for _, r in df.iterrows():
        null = "n/a".ljust(18) if np.isnan(r["null_mean"]) else f"{r['null_mean']:.4f} +- {r['null_std']:.4f}"
        z = "n/a" if np.isnan(r["z"]) else f"{r['z']:.2f}"
        p = "n/a" if np.isnan(r["p_value"]) else f"{r['p_value']:.4g}"
        lines.append(
            f"{r['block']:<{width}}  {r['d_model']:>7} {r['d_ff']:>6}  {r['value']:>10.4f}  "
            f"{null}  {z:>6}  {p:>6}"
        )
    if scores.whole is not None:  # the whole network's unit graph: its own table
        lines += ["", "whole network (its unit graph, spec §1b):", format_score(scores.whole)]
    return "\n".join(lines)


def format_knockout(result: KnockoutResult, max_pairs: int = 20) -> str:
    """A plain-text table for a terminal: one line per sub-module, then the top pairs."""
    m = result.metric
    # a few functions (left / right, y1 / y2): show which one each sub-module serves
    fns = list(result.intact_per_function) if len(result.intact_per_function) <= 6 else []
    lines = [
        f"knockout: {len(result.submodules)} sub-modules, {result.n_random} random lesions each, "
        f"seed {result.seed}",
        *([f"clusters: k = {result.clustering['n_clusters']}, {clustering_text(result.clustering)}"]
          if result.clustering else []),
        f"intact {m}: {result.intact_accuracy:.4f}"
        + "".join(f", {f} {result.intact_per_function[f]:.4g}" for f in fns),
        "",
        f"{'layer':>5} {'cluster':>7} {'size':>5} {m:>9} {'delta':>9} {'p':>7} {'z':>7}  "
        f"{'category':<15}" + "".join(f" {f[:10]:>10}" for f in fns),
    ]
    lines += [
        f"{s.layer:>5} {s.cluster:>7} {s.size:>5} {s.accuracy:>9.4f} {s.delta:>+9.4f} "
        f"{s.p_value:>7.4f} {'-' if s.z is None else f'{s.z:.2f}':>7}  {s.category:<15}"
        + "".join(f" {s.per_function[f]:>10.4g}" for f in fns)
        for s in result.submodules
    ]
    if result.group_names is not None:  # a traced network: say which unit group each number is
        used = sorted({s.layer for s in result.submodules})
        labels = result.group_labels or result.group_names
        lines += ["", "unit groups: " + ", ".join(f"{g} = {labels[g]}" for g in used)]
    whole = [s for s in result.submodules if s.category == "whole-group"]
    cats = ("important", "sig-but-small", "prunable", "not-significant") + (("whole-group",) if whole else ())
    counts = {c: sum(s.category == c for s in result.submodules) for c in cats}
    if whole:
        lines += [
            "",
            "whole-group: "
            + ", ".join(f"layer {s.layer} cluster {s.cluster} ({s.size} units)" for s in whole)
            + " is all of its unit group: every random lesion of that size is the same units, so no "
            "p-value can compare them; its delta is the effect of silencing the whole group",
        ]
    lines += [
        "",
        "categories: " + ", ".join(f"{c} {n}" for c, n in counts.items()),
        f"Fisher combined p over sub-modules: {result.fisher_p:.3g}"
        + f"  (alpha {result.alpha}, min effect {result.min_effect})",
    ]
    if result.pairs:
        top = sorted(result.pairs, key=lambda p: -abs(p.interaction))[:max_pairs]
        lines += ["", f"pairs (top {len(top)} of {len(result.pairs)} by |interaction|):",
                  f"{'a':>7} {'b':>7} {m:>9} {'delta':>9} {'p':>7} {'interact':>9}  category"]
        lines += [
            f"{p.layer_a:>3}:{p.cluster_a:<3} {p.layer_b:>3}:{p.cluster_b:<3} "
            f"{p.accuracy:>9.4f} {p.delta:>+9.4f} {p.p_value:>7.4f} {p.interaction:>+9.4f}  "
            f"{p.category}"
            for p in top
        ]
    if result.functions is not None:
        fk = result.functions
        lines += ["", f"function masks removed ({fk.metric} of each function):",
                  f"{'removed':>12} " + " ".join(f"{g:>12}" for g in fk.functions)]
        lines += [f"{name:>12} " + " ".join(f"{row[g]:>12.4f}" for g in fk.functions)
                  for name, row in [("none", fk.intact), *fk.removed.items()]]
    return "\n".join(lines) + "\n"


def format_masks(result: MaskResult) -> str:
    """A plain-text summary: per mask its size and metric on every function's data, intact and
    inverted; overlaps overall and per layer."""
    data = list(result.full_accuracy)
    w = max(8, *(len(f) for f in result.functions)) + 2
    col = max(9, *(len(g) + 2 for g in data))
    heads = "".join(g.rjust(col) for g in data)

    def on_data(metric: dict[str, float]) -> str:  # a mask's metric on each function's data, in columns
        return "".join(f"{metric[g]:>{col}.4f}" for g in data)

    lines = [
        f"masks: {result.config.get('task', '?')}, {result.config.get('steps', '?')} steps, "
        f"seed {result.config.get('seed', '?')}   (metric on each function's test data)",
        "",
        f"{'mask':<{w}}{'kept':>8}{'shared':>8}  | {heads}  | inverted: {heads}",
        f"{'full':<{w}}{'':16}  | {on_data(result.full_accuracy)}",
    ]
    lines += [
        f"{f:<{w}}{_fmt(result.kept_fraction[f], '.1%', '-'):>8}{_fmt(result.shared[f], '.1%', '-'):>8}  | "
        f"{on_data(result.accuracy[f])}  |           {on_data(result.inverted_accuracy[f])}"
        for f in result.functions
    ]
    if result.iou:
        lines += ["", "pair".ljust(2 * w) + "IoU".rjust(8) + "IoMin".rjust(8) + "   IoU per layer"]
        for key, v in result.iou.items():
            per_layer = " ".join(_fmt(lv["iou"][key], ".3f", "-") for lv in result.layers.values())
            iomin = _fmt(result.iomin[key], ".3f", "-")
            lines.append(f"{key:<{2 * w}}{_fmt(v, '.3f', '-'):>8}{iomin:>8}   {per_layer}")
    if result.class_drop:
        lines += ["", "per-class accuracy drop (intact - masked) of each not-<c> mask on its class"]
        for f, row in result.class_drop.items():
            own = f[4:] if f.startswith("not-") else None
            others = [v for c, v in row.items() if c != own and v is not None]
            mean_other = sum(others) / len(others) if others else float("nan")
            if own is not None and own in row:
                lines.append(f"{f.ljust(w)} own class {row[own]:+.3f}   others (mean) "
                             f"{mean_other:+.3f}")
    return "\n".join(lines + flags_text(result.flags)) + "\n"


def format_sweep(result: Any) -> str:
    """A short text summary: counts and the main columns."""
    t = result.table
    head = f"sweep: {len(t)} rows ({result.computed} computed, {result.reused} reused) -> {result.path}"
    shown = t[["checkpoint", "clusters", "shuffle_method", "shuffles", "seed", "ncut", "z", "p_value"]].copy()
    shown["checkpoint"] = shown["checkpoint"].map(lambda p: Path(p).name)
    return head + "\n" + shown.to_string(index=False, float_format=lambda x: f"{x:.4g}") + "\n"
