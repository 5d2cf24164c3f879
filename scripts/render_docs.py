"""Render every table of results in the docs from the committed receipts.

Reads the JSON receipts under ``experiments/`` and ``benchmarks/results/`` and writes one Markdown
fragment per table set to ``docs/generated/NAME.md`` (the docs pages include them), plus the README
region between ``<!-- generated: score_example -->`` and ``<!-- /generated -->`` when the README
has one. Each fragment ends with a line naming its receipt(s), the command that wrote them, the
version and date, and for speed tables the machine note (CPU, cores, load average).

    python scripts/render_docs.py            # write the fragments (and the README region)
    python scripts/render_docs.py --check    # write nothing; exit 1 listing every fragment that
                                             # differs from what the receipts give

``--root DIR`` reads the receipts under ``DIR`` instead of the repository (``DIR/experiments``,
``DIR/benchmarks/results``); ``--only a,b`` limits the run to those fragments. Only the standard
library is used, and the output depends on nothing but the receipts: sorted, fixed formatting.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- generated: score_example -->"
END = "<!-- /generated -->"
MINUS = "\u2212"
DASH = "–"


# -- formatting ------------------------------------------------------------------------------------
def bad(x: Any) -> bool:
    """No number to show: missing, not a number, or not finite."""
    return x is None or isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)


def num(x: Any, d: int, sign: bool = False) -> str:
    """``x`` with ``d`` decimals, a true minus sign, ``+`` in front of positives when ``sign``."""
    if bad(x):
        return DASH
    s = f"{x:+.{d}f}" if sign else f"{x:.{d}f}"
    if float(s.lstrip("+-")) == 0:  # no "-0.0" or "+0.0"
        s = s.lstrip("+-")
    return s.replace("-", MINUS)


def z_(x: Any, d: int = 1) -> str:
    """A z-score: one decimal, signed; ``undefined`` when the null had no spread."""
    return "undefined" if x is None else num(x, d, sign=True)


def pct(x: Any, d: int = 1) -> str:
    """A fraction as a percentage."""
    return DASH if bad(x) else f"{num(100 * x, d)} %"


def pm(mean: Any, std: Any, d: int) -> str:
    """``mean ± std``."""
    return f"{num(mean, d)} ± {num(std, d)}"


def times(x: Any, d: int = 1) -> str:
    """A ratio, ``11.6×``."""
    return DASH if bad(x) else f"{num(x, d)}×"


def g(x: Any) -> str:
    """A published number as it was published (shortest form)."""
    return DASH if bad(x) else f"{x:g}".replace("-", MINUS)


def sci(x: Any, d: int = 2) -> str:
    """Scientific notation, ``1.13e-3``."""
    if bad(x):
        return DASH
    if x == 0:
        return "0"
    mant, exp = f"{x:.{d}e}".split("e")
    return f"{mant}e{int(exp)}".replace("-", MINUS)


def ms(seconds: Any, d: int = 2) -> str:
    return DASH if bad(seconds) else f"{num(1e3 * seconds, d)} ms"


def sec(seconds: Any, d: int = 3) -> str:
    """Seconds; above an hour with thousands separators and the hours beside them."""
    if bad(seconds):
        return DASH
    if seconds >= 3600:
        return f"{seconds:,.0f} s ({num(seconds / 3600, 1)} h)"
    return f"{num(seconds, d)} s"


def yes(x: Any) -> str:
    return DASH if x is None else ("yes" if x else "no")


def argv_text(argv: Sequence[str]) -> str:
    """A command line with every temporary absolute path shown by its file name alone."""
    return " ".join(Path(a).name if a.startswith("/") else a for a in argv)


def cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; ``|`` inside cells escaped."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ranged(values: Sequence[Any], d: int, sign: bool = False) -> str:
    vals = [v for v in values if not bad(v)]
    if not vals:
        return DASH
    lo, hi = min(vals), max(vals)
    return num(lo, d, sign) if lo == hi else f"{num(lo, d, sign)} to {num(hi, d, sign)}"


def widths_label(widths: Sequence[int]) -> str:
    """``[784, 256, 256, 10]`` -> ``784-256×2-10``."""
    parts: list[str] = []
    i = 0
    while i < len(widths):
        j = i
        while j + 1 < len(widths) and widths[j + 1] == widths[i]:
            j += 1
        n = j - i + 1
        parts.append(f"{widths[i]}×{n}" if n > 1 else str(widths[i]))
        i = j + 1
    return "-".join(parts)


def median_of(t: Any) -> Any:
    """The median of a ``timing`` dict (``{"median", "min", "max", "runs"}``) or a plain number."""
    return t.get("median") if isinstance(t, dict) else t


def spread(t: Any, fmt: Callable[[Any], str]) -> str:
    """``median (min–max, n runs)`` of a ``timing`` dict."""
    if not isinstance(t, dict):
        return fmt(t)
    runs = t.get("runs") or []
    if len(runs) <= 1:
        return fmt(t.get("median"))
    return f"{fmt(t.get('median'))} ({fmt(t.get('min'))} to {fmt(t.get('max'))}, {len(runs)} runs)"


# -- receipts --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Receipt:
    """One JSON file: ``rel`` (its path in the repository) and ``data``."""

    rel: str
    data: dict[str, Any]

    @property
    def results(self) -> Any:
        """``results`` of a receipt; the whole file for the older files that predate receipts."""
        return self.data["results"] if "results" in self.data else self.data


def load(root: Path, rel: str) -> Receipt | None:
    path = root / rel
    if not path.is_file():
        return None
    return Receipt(rel, json.loads(path.read_text(encoding="utf-8")))


def machine_summary(data: dict[str, Any]) -> str:
    m = data.get("machine")
    if not isinstance(m, dict):
        return "no machine note"
    parts = [str(m.get("cpu", "CPU not recorded"))]
    if m.get("logical_cores") is not None:
        parts.append(f"{m['logical_cores']} logical cores")
    if m.get("memory_gib") is not None:
        parts.append(f"{num(m['memory_gib'], 1)} GiB")
    load_avg = m.get("load_average")
    if load_avg:
        parts.append(
            "load average " + " / ".join(num(x, 2) for x in load_avg) + " (1, 5, 15 min, when written)"
        )
    threads = m.get("threads_env") or {}
    if threads:
        parts.append(", ".join(f"{k}={v}" for k, v in sorted(threads.items())))
    return ", ".join(parts)


def footer(receipts: Sequence[Receipt], speed: bool = False) -> str:
    """The last line: receipts, commands, version and date (and the machine, for speed tables)."""
    items = []
    for r in receipts:
        cmd = r.data.get("command")
        s = f"`{r.rel}`, " + (f"written by `{cmd}`" if cmd else "which records no command")
        when = [f"modscope {r.data['version']}"] if r.data.get("version") else []
        if r.data.get("date"):
            when.append(str(r.data["date"]))
        s += f" ({', '.join(when)})" if when else " (no version or date recorded)"
        if speed:
            s += f"; machine: {machine_summary(r.data)}"
        if r.data.get("note"):
            s += f"; note: {r.data['note']}"
        items.append(s)
    return "_Generated by `scripts/render_docs.py` from " + "; ".join(items) + "._"


# -- experiments -----------------------------------------------------------------------------------
VARIANTS = {
    "unpruned": "unpruned",
    "pruned": "pruned to 90 %",
    "dropout": "dropout 0.5",
    "dropout_pruned": "dropout 0.5 + pruned",
    "random_init": "random init (Glorot, untrained)",
}
SELECTIONS = {"reference": "lowest inertia (default)", "ncut": "lowest n-cut"}


def order(key: str, known: Sequence[str]) -> tuple[int, str]:
    return (known.index(key), "") if key in known else (len(known), key)


def paper_table(rs: Sequence[Receipt]) -> str:
    r = rs[0]
    res = r.results
    paper = res.get("paper") or {}
    net = r.data.get("settings", {}).get("net", "fashion-mnist")
    summary = sorted(
        res["summary"],
        key=lambda s: (
            order(s["variant"], list(VARIANTS)),
            order(s["selection"], list(SELECTIONS)),
            order(s["shuffle_method"], ["layer", "layer_nonzero"]),
        ),
    )
    # Two narrow tables instead of one of 13 columns (cut off at 1400 px): modscope beside the paper
    # on the paper's setting (its selection, the `layer` null), then every setting modscope ran.
    def paper_of(s: dict) -> dict | None:
        if s["selection"] != "reference" or s["shuffle_method"] != "layer":
            return None
        if s["variant"] == "random_init":
            return paper.get("random_init") or {}
        return paper.get(net, {}).get(s["variant"]) or {}

    def pair(ours: str, theirs: str) -> str:
        return f"{ours} / {theirs}"

    vs_rows, all_rows = [], []
    for s in summary:
        p = paper_of(s)
        if p is not None:
            vs_rows.append(
                [
                    VARIANTS.get(s["variant"], s["variant"]),
                    pair(pct(s.get("test_accuracy")), pct(p.get("test_accuracy"))),
                    pair(num(s["ncut"], 3), g(p.get("ncut"))),
                    pair(pm(s["shuffle_mean"], s["shuffle_std"], 3),
                         f"{g(p.get('shuffle_mean'))} ± {g(p.get('shuffle_std'))}"),
                    pair(f"{z_(s['z'])} ± {num(s.get('z_sd_over_nets'), 1)}", g(p.get("z"))),
                ]
            )
        all_rows.append(
            [
                VARIANTS.get(s["variant"], s["variant"]),
                SELECTIONS.get(s["selection"], s["selection"]),
                f"`{s['shuffle_method']}`",
                num(s["ncut"], 3),
                pm(s["shuffle_mean"], s["shuffle_std"], 3),
                f"{z_(s['z'])} ± {num(s.get('z_sd_over_nets'), 1)}",
                num(s["p_value"], 4),
            ]
        )
    n_nets = sorted({s["n_nets"] for s in summary})
    settings = r.data.get("settings", {})
    out = [
        f"**{net}**, means over the nets ({'/'.join(map(str, n_nets))} nets: seeds "
        f"{', '.join(map(str, summary[0]['seeds']))}); k = {settings.get('clusters', DASH)}, "
        f"{settings.get('shuffles', DASH)} shuffles per net; z is the mean ± sd over nets.",
        "",
        "modscope / the paper, on the paper's setting (lowest-inertia restart, `layer` shuffles):",
        "",
        table(["network", "test acc", "n-cut", "shuffles (mean ± std)", "z"], vs_rows),
        "",
        "Every setting modscope ran (the restart kept, and for pruned nets the `layer_nonzero` null):",
        "",
        table(["network", "restart kept", "null", "n-cut", "shuffles (mean ± std)", "z", "p"], all_rows),
    ]
    # z of every net
    recs: dict[tuple[str, str, str], list[tuple[int, Any]]] = {}
    for x in res["records"]:
        recs.setdefault((x["variant"], x["selection"], x["shuffle_method"]), []).append((x["seed"], x["z"]))
    zrows = []
    for (v, sel, null), zs in sorted(
        recs.items(),
        key=lambda kv: (
            order(kv[0][0], list(VARIANTS)),
            order(kv[0][1], list(SELECTIONS)),
            order(kv[0][2], ["layer", "layer_nonzero"]),
        ),
    ):
        zs = sorted(zs)
        zrows.append(
            [VARIANTS.get(v, v), SELECTIONS.get(sel, sel), f"`{null}`", " / ".join(z_(z) for _, z in zs)]
        )
    seeds = sorted({x["seed"] for x in res["records"]})
    out += [
        "",
        f"z of each net (seeds {' / '.join(map(str, seeds))}):",
        "",
        table(["network", "restart kept", "null", "z per net"], zrows),
    ]
    mnist = paper.get("mnist")
    if mnist:
        mrows = [
            [
                VARIANTS.get(v, v),
                g(p.get("ncut")),
                f"{g(p.get('shuffle_mean'))} ± {g(p.get('shuffle_std'))}",
                g(p.get("z")),
            ]
            for v, p in sorted(mnist.items(), key=lambda kv: order(kv[0], list(VARIANTS)))
        ]
        out += [
            "",
            "The paper's MNIST rows (no MNIST run is committed here):",
            "",
            table(["network", "paper n-cut", "paper shuffles", "paper z"], mrows),
        ]
    return "\n".join(out)


def _reg_label(cond: str) -> tuple[tuple[Any, ...], str]:
    """``spectral lam 0.3 K 11 every 10`` -> a sort key and ``spectral lam 0.3, K 11, every 10``."""
    tok = cond.split()
    kind = tok[0]
    vals: dict[str, str] = {}
    flags: list[str] = []
    i = 1
    while i < len(tok):
        if tok[i] in ("lam", "K", "C", "every") and i + 1 < len(tok):
            vals[tok[i]] = tok[i + 1]
            i += 2
        else:
            flags.append(tok[i])
            i += 1
    pruned = "pruned" in flags
    kinds = ["plain", "spectral", "golechha", "bimt"]
    key = (
        pruned,
        order(kind, kinds),
        int(vals.get("K", 0)),
        int(vals.get("every", 0)),
        float(vals.get("lam", 0)),
        cond,
    )
    if kind == "spectral":
        parts = [f"spectral lam {vals.get('lam')}", f"K {vals.get('K')}"]
        if "every" in vals:
            parts.append(f"every {vals['every']}")
    elif kind == "golechha":
        parts = [f"Golechha lam {vals.get('lam')}", f"{vals.get('C')} blocks"]
    elif kind == "bimt":
        parts = ["BIMT"]
    else:
        parts = [kind]
    parts += ["weight normalisation" if f == "normalize" else f for f in flags]
    return key, ", ".join(parts)


def cluster_reg(rs: Sequence[Receipt]) -> str:
    r = rs[0]
    summary = r.results["summary"]
    settings = r.data.get("settings", {})
    parts: dict[str, list[tuple[tuple[Any, ...], str, dict]]] = {}
    for key, s in summary.items():
        part, cond = key.split(" / ", 1)
        k, label = _reg_label(cond)
        parts.setdefault(part, []).append((k, label, s))

    def m(s: dict, *path: str) -> Any:
        x: Any = s
        for p in path:
            x = x.get(p) if isinstance(x, dict) else None
        return x.get("mean") if isinstance(x, dict) else None

    def acc(s: dict) -> str:
        a = s["test_accuracy"]
        return f"{num(100 * a['mean'], 2)} ± {num(100 * a['std'], 2)} %"

    def k4(s: dict) -> str:
        return f"{num(m(s, 'k4', 'ncut'), 3)} ({z_(m(s, 'k4', 'z_layer'))})"

    def k12(s: dict) -> str:
        zs = f"{z_(m(s, 'k12', 'z_layer'))} / {z_(m(s, 'k12', 'z_layer_degree'))}"
        return f"{num(m(s, 'k12', 'ncut'), 3)} ({zs})"

    captions = {
        "digits": f"**Digits** ({settings.get('digits_steps', DASH)} training steps)",
        "fashion": f"**Fashion-MNIST** ({settings.get('fashion_steps', DASH)} training steps)",
        "reference": "**The reference's own setting** (7×7 images, "
        f"{num(settings.get('ref_epochs'), 0)} epochs; pruned: to 90 %)",
    }
    out = [
        f"Means over seeds {settings.get('seeds', DASH)} (± the standard deviation over seeds); z against "
        f"{settings.get('shuffles', DASH)} `layer` and `layer_degree` shuffles; knockouts against "
        f"{settings.get('random', DASH)} random same-size lesions.",
    ]
    for part in sorted(parts, key=lambda p: order(p, ["digits", "fashion", "reference"])):
        rows = sorted(parts[part], key=lambda x: x[0])
        out += ["", captions.get(part, f"**{part}**"), ""]
        if part == "reference":
            out.append(
                table(
                    [
                        "model",
                        "test accuracy",
                        "n-cut k=12",
                        "z layer / z degree, k=12",
                        "largest cluster, k=12",
                        "train s",
                    ],
                    [
                        [
                            label,
                            acc(s),
                            pm(m(s, "k12", "ncut"), s["k12"]["ncut"]["std"], 3),
                            f"{z_(m(s, 'k12', 'z_layer'))} / {z_(m(s, 'k12', 'z_layer_degree'))}",
                            num(m(s, "k12", "largest_cluster_share"), 2),
                            num(m(s, "train_seconds"), 1),
                        ]
                        for _, label, s in rows
                    ],
                )
            )
        else:
            out.append(
                table(
                    [
                        "model",
                        "test accuracy",
                        "n-cut k=4 (z layer)",
                        "n-cut k=12 (z layer / z degree)",
                        "largest cluster, k=4",
                        "clusters holding outputs, k=12",
                        "important / sub-modules, k=12",
                        "train s",
                    ],
                    [
                        [
                            label,
                            acc(s),
                            k4(s),
                            k12(s),
                            num(m(s, "k4", "largest_cluster_share"), 2),
                            num(m(s, "k12", "clusters_with_outputs"), 1),
                            f"{num(m(s, 'k12', 'knockout_important'), 1)} / "
                            f"{num(m(s, 'k12', 'knockout_submodules'), 1)}",
                            num(m(s, "train_seconds"), 1),
                        ]
                        for _, label, s in rows
                    ],
                )
            )
    return "\n".join(out)


def _reach(reach: list[list[Any]]) -> str:
    n_out, n_in = len(reach), len(reach[0]) if reach else 0
    if n_out * n_in <= 16:
        return "; ".join(
            f"y{o + 1} ← " + (", ".join(f"x{i + 1}" for i in range(n_in) if reach[o][i]) or "none")
            for o in range(n_out)
        )
    k = sum(bool(v) for row in reach for v in row)
    return f"{k} of {n_out * n_in} output-input pairs ({pct(k / (n_out * n_in), 0)})"


def _task_metric(metrics: dict[str, Any]) -> str:
    if "test_accuracy" in metrics:
        return pct(metrics["test_accuracy"])
    return f"MSE {sci(metrics.get('test_loss'))}"


def bimt_vs_plain(rs: Sequence[Receipt]) -> str:
    out = []
    for r in rs:
        recs = sorted(r.results, key=lambda x: (x["task"], order(x["trainer"], ["plain", "bimt"]), x["seed"]))
        task = recs[0]["task"]
        k = recs[0]["score"]["clusters"]
        opts = r.data.get("options", {})
        out += [
            "" if out else None,
            f"**{task}** (k = {k}, {opts.get('shuffles', DASH)} `layer` shuffles)",
            "",
        ]
        out.append(
            table(
                [
                    "trainer",
                    "seed",
                    "test",
                    "zero weights",
                    "swaps",
                    "n-cut",
                    "shuffles (mean ± std)",
                    "z",
                    "p",
                    "which inputs reach which outputs",
                ],
                [
                    [
                        x["trainer"],
                        x["seed"],
                        _task_metric(x["metrics"]),
                        pct(x["metrics"].get("sparsity")),
                        x["metrics"].get("swaps", DASH),
                        num(x["score"]["ncut"], 4),
                        pm(x["score"]["mean"], x["score"]["std"], 4),
                        z_(x["score"]["z"]),
                        num(x["score"]["p_value"], 4),
                        _reach(x["reach"]),
                    ]
                    for x in recs
                ],
            )
        )
    return "\n".join(x for x in out if x is not None)


def bimt_modules(rs: Sequence[Receipt]) -> str:
    r = rs[0]
    res = r.results
    settings = r.data.get("settings", {})
    rows = []
    for x in sorted(res["records"], key=lambda x: x["seed"]):
        mods = sorted(x["module_sizes"], key=int)
        sizes = " / ".join(
            "+".join(str(x["module_sizes"][c][layer]) for layer in sorted(x["module_sizes"][c], key=int))
            for c in mods
        )
        ko = x.get("knockout", {})
        subs = ko.get("submodules", [])
        rows.append(
            [
                x["seed"],
                pct(x["test_accuracy"]),
                pct(x["sparsity"]),
                x.get("swaps", DASH),
                num(x["ncut"], 3),
                " / ".join(
                    str(x["active_hidden_neurons"][k]) for k in sorted(x["active_hidden_neurons"], key=int)
                ),
                sizes,
                pct(x["modules_knocked_out"]),
                pct(x["only_modules_kept"]),
                " / ".join(pct(x["each_module_knocked_out"][c]) for c in mods),
                " / ".join(pct(x["each_module_kept_alone"][c]) for c in mods),
                f"{sum(s['category'] == 'important' for s in subs)} of {len(subs)}",
            ]
        )
    s = res["summary"]
    p = s.get("paper") or {}
    out = [
        f"k = {settings.get('clusters', DASH)} modules of the thresholded weight graph; module sizes are "
        "hidden "
        "units per hidden layer (layer 1 + layer 2); knockouts of each sub-module against "
        f"{settings.get('random', DASH)} random same-size lesions.",
        "",
        table(
            [
                "seed",
                "test acc",
                "zero weights",
                "swaps",
                "n-cut",
                "active hidden units",
                "module sizes",
                "all modules knocked out",
                "only modules kept",
                "each module knocked out",
                "each module kept alone",
                "important sub-modules",
            ],
            rows,
        ),
        "",
        table(
            ["", "test acc", "all modules knocked out", "only modules kept"],
            [
                [
                    "mean over seeds",
                    pct(s.get("test_accuracy")),
                    pct(s.get("modules_knocked_out")),
                    pct(s.get("only_modules_kept")),
                ],
                [
                    "paper",
                    pct(p.get("test_accuracy")),
                    pct(p.get("modules_knocked_out"), 2),
                    pct(p.get("only_modules_kept")),
                ],
                ["chance", DASH, pct(s.get("chance"), 2), DASH],
            ],
        ),
    ]
    return "\n".join(out)


NULLS = ["layer", "layer_nonzero", "layer_degree"]


def degree_null(rs: Sequence[Receipt]) -> str:
    out: list[str] = []
    for r in rs:
        recs = r.results
        task = recs[0]["task"]
        opts = r.data.get("options", {})
        by = {(x["trainer"], x["seed"]): x for x in recs}
        seeds = sorted({x["seed"] for x in recs})
        methods = sorted({m for x in recs for m in x["scores"]}, key=lambda m: order(m, NULLS))
        if out:
            out.append("")
        out += [
            f"**{task}** (k = {recs[0]['clusters']}, {opts.get('shuffles', DASH)} shuffles per null; "
            f"seeds {' / '.join(map(str, seeds))})",
            "",
        ]
        rows = []
        for m in methods:
            row = [f"`{m}`"]
            for trainer in ("bimt", "plain"):
                xs = [by.get((trainer, s)) for s in seeds]
                zs = [x["scores"][m]["z"] if x and m in x["scores"] else None for x in xs]
                ratios = [x["scores"][m]["ncut_over_mean"] if x and m in x["scores"] else None for x in xs]
                fell = [x["scores"][m]["n_fell_apart"] if x and m in x["scores"] else None for x in xs]
                row += [
                    " / ".join(z_(z) for z in zs),
                    " / ".join(num(q, 3) for q in ratios),
                    " / ".join(DASH if f is None else str(f) for f in fell),
                ]
            rows.append(row)
        out.append(
            table(
                [
                    "null",
                    "BIMT z",
                    "BIMT n-cut / shuffle mean",
                    "BIMT shuffles fallen apart",
                    "plain z",
                    "plain n-cut / shuffle mean",
                    "plain shuffles fallen apart",
                ],
                rows,
            )
        )
        srows = []
        for s in sorted(r.data.get("summary", []), key=lambda s: order(s["method"], NULLS)):
            srows.append(
                [
                    f"`{s['method']}`",
                    z_(s.get("bimt_mean_z")),
                    z_(s.get("plain_mean_z")),
                    z_(s.get("bimt_minus_plain")),
                    num(s.get("bimt_mean_ncut_over_mean"), 3),
                    num(s.get("plain_mean_ncut_over_mean"), 3),
                ]
            )
        if srows:
            out += [
                "",
                table(
                    [
                        "null",
                        "BIMT mean z",
                        "plain mean z",
                        "BIMT − plain",
                        "BIMT mean n-cut / shuffle mean",
                        "plain mean n-cut / shuffle mean",
                    ],
                    srows,
                ),
            ]
        nrows = []
        for x in sorted(recs, key=lambda x: (order(x["trainer"], ["plain", "bimt"]), x["seed"])):
            floors = [z_(x["scores"][m].get("z_floor")) for m in methods if m in x["scores"]]
            nrows.append(
                [
                    x["trainer"],
                    x["seed"],
                    _task_metric(x["metrics"]),
                    pct(x["metrics"].get("sparsity")),
                    x["n_active"],
                    x["n_edges"],
                    num(x["ncut"], 4),
                    " / ".join(floors),
                ]
            )
        out += [
            "",
            table(
                [
                    "trainer",
                    "seed",
                    "test",
                    "zero weights",
                    "active nodes",
                    "edges",
                    "n-cut",
                    "z floor (" + " / ".join(methods) + ")",
                ],
                nrows,
            ),
        ]
    return "\n".join(out)


MEASURES = [
    ("weights", "spectral", "layer", "n-cut, layer"),
    ("weights", "spectral", "layer_nonzero", "n-cut, layer_nonzero"),
    ("weights", "louvain", "layer", "Q, layer"),
    ("weights", "louvain", "layer_nonzero", "Q, layer_nonzero"),
    ("weights", "local", "layer", "local n-cut, layer"),
    ("activations", "spectral", "units", "activation n-cut, units"),
    ("activations", "louvain", "units", "activation Q, units"),
]


def _model_label(model: str) -> str:
    if model.startswith("random:"):
        return f"untrained {model.split(':', 1)[1]} MLP"
    return f"`{Path(model).stem}`"


def measures_compare(rs: Sequence[Receipt]) -> str:
    r = rs[0]
    recs = r.data["records"]
    models = list(dict.fromkeys(x["model"] for x in recs))  # the file's order: the script's model list
    models = sorted(models, key=lambda m: (m.startswith("random:"), m))
    cols = [c for c in MEASURES if any((x["graph"], x["method"], x["null"]) == c[:3] for x in recs)]
    rows = []
    for mdl in models:
        by = {(x["graph"], x["method"], x["null"]): x for x in recs if x["model"] == mdl}
        k = next(iter(by.values()))["k"]
        row = [_model_label(mdl), k]
        for c in cols:
            x = by.get(c[:3])
            row.append(DASH if x is None else f"{num(x['value'], 3)} ({z_(x['z'])})")
        rows.append(row)
    return "\n".join(
        [
            f"Value (z) against {r.data.get('shuffles', DASH)} null samples; n-cut z < 0 and Q z > 0 are "
            "modular.",
            "",
            table(["model", "k"] + [c[3] for c in cols], rows),
        ]
    )


def _funcs(rec: dict) -> list[str]:
    return [f for f in rec["mask_config"]["functions"] if f != "control"]


def _layer_iou(entry: dict, pair: str) -> list[Any]:
    li = entry.get("layer_iou") or {}
    return [li[k] for k in sorted(li, key=lambda k: (len(k), k))]


def masks_addmul(rs: Sequence[Receipt]) -> str:
    out: list[str] = []
    for r in rs:
        d = r.data
        f1, f2 = _funcs(d)
        pair = f"{f1}|{f2}"
        net = d["network"]
        if out:
            out.append("")
        out += [
            f"**{d['task']}, hidden {widths_label(net['hidden'])}** "
            f"({pct(net['metrics'].get('test_accuracy'), 2)} "
            f"test; masks: batch {d['mask_config']['batch_size']}, β {g(d['mask_config']['beta'])}; "
            f"{sec(d.get('seconds', {}).get('masks'), 0)} for {d['mask_config']['steps']:,} mask steps)",
            "",
        ]
        rows = []
        for steps in sorted(d["summary_by_steps"], key=int):
            e = d["summary_by_steps"][steps]
            kf, acc, inv = e["kept_fraction"], e["accuracy"], e["inverted_accuracy"]
            rows.append(
                [
                    f"{int(steps):,}",
                    " / ".join(num(kf[f], 3) for f in (f1, f2, "control")),
                    num(e["iou"][pair], 3),
                    " / ".join(num(v, 2) for v in _layer_iou(e, pair)),
                    f"{num(acc[f1][f1], 3)} / {num(acc[f1][f2], 3)}",
                    f"{num(acc[f2][f2], 3)} / {num(acc[f2][f1], 3)}",
                    f"{num(inv[f1][f1], 3)} / {num(inv[f1][f2], 3)}",
                    f"{num(inv[f2][f2], 3)} / {num(inv[f2][f1], 3)}",
                ]
            )
        out.append(
            table(
                [
                    "mask steps",
                    f"kept {f1} / {f2} / control",
                    f"IoU {pair}",
                    f"IoU {pair} per layer",
                    f"{f1} mask on {f1} / {f2}",
                    f"{f2} mask on {f2} / {f1}",
                    f"inverted {f1} → {f1} / {f2}",
                    f"inverted {f2} → {f2} / {f1}",
                ],
                rows,
            )
        )
        io = d["result"].get("iomin", {}).get(pair)
        if io is not None:
            out += [
                "",
                f"At {d['mask_config']['steps']:,} steps, IoMin {pair} = {num(io, 3)} "
                f"(the share of the smaller mask inside the other).",
            ]
    return "\n".join(out)


def masks_halves(rs: Sequence[Receipt]) -> str:
    rows = []
    for r in rs:
        d = r.data
        net = d["network"]
        f1, f2 = _funcs(d)
        label = widths_label(net["hidden"]) + (" BIMT" if net.get("bimt") else "")
        for steps in sorted(d["summary_by_steps"], key=int):
            e = d["summary_by_steps"][steps]
            li = _layer_iou(e, f"{f1}|{f2}")
            inv, acc = e["inverted_accuracy"], e["accuracy"]
            rows.append(
                [
                    f"`{Path(r.rel).stem}`",
                    f"{label} ({pct(net['metrics'].get('test_accuracy'))})",
                    g(d["mask_config"]["beta"]),
                    f"{int(steps):,}",
                    f"{num(e['kept_fraction'][f1], 3)} / {num(e['kept_fraction'][f2], 3)}",
                    " / ".join(num(v, 2) for v in li[:2]),
                    f"{num(acc[f1][f1], 3)} / {num(acc[f2][f2], 3)}",
                    f"{num(inv[f1][f1], 2)} / {num(inv[f2][f2], 2)}",
                    num(inv[f1][f2], 2),
                    num(inv[f2][f1], 2),
                ]
            )
    return "\n".join(
        [
            "Layer 0 is input → hidden 1, layer 1 is hidden 1 → hidden 2 (the output layer's IoU is 0 by "
            "construction). Accuracies are on the named digit's data.",
            "",
            table(
                [
                    "receipt",
                    "network (test acc)",
                    "β",
                    "mask steps",
                    "kept left / right",
                    "IoU layer 0 / layer 1",
                    "left mask on left / right mask on right",
                    "own digit after removing its mask (left / right)",
                    "right digit after removing the left mask",
                    "left digit after removing the right mask",
                ],
                rows,
            ),
        ]
    )


def masks_digits_classes(rs: Sequence[Receipt]) -> str:
    d = rs[0].data
    masks = sorted(d["class_drop"], key=lambda f: (f != "control", int(f.split("-")[1]) if "-" in f else -1))
    rows = []
    own_drops, other_moves = [], []
    for f in masks:
        drops = d["class_drop"][f]
        if f == "control":
            own, c = None, None
        else:
            c = f.split("-", 1)[1]
            own = drops.get(c)
            own_drops.append(own)
        others = [abs(v) for k, v in drops.items() if k != c and v is not None]
        if f != "control":
            other_moves.append(max(others) if others else None)
        rows.append(
            [
                f"`{f}`",
                num(d["kept_fraction"][f], 3),
                num(own, 3) if c else DASH,
                num(max(others) if others else None, 3),
                num(d["accuracy"][f][f], 3),
                num(d["full_accuracy"][f], 3),
            ]
        )
    return "\n".join(
        [
            f"Each `not-c` mask is trained on every class but c. Over the {len(own_drops)} class masks, "
            "class c's "
            f"accuracy drops by {ranged(own_drops, 2)} and no other class moves by more than "
            f"{num(max(v for v in other_moves if v is not None), 3)}.",
            "",
            table(
                [
                    "mask",
                    "kept",
                    "drop of its class",
                    "largest change of another class",
                    "mask on its data",
                    "full network on that data",
                ],
                rows,
            ),
        ]
    )


def families(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    s = res["summary"]
    rows, controls = [], []
    for c in res["cases"]:
        rows.append(
            [
                f"`{c['case']}`",
                c["family"],
                f"{c['nodes']:,}",
                f"{c['edges']:,}",
                c["groups"],
                c["blocks"],
                c.get("mlp_blocks", DASH),
                yes(c["equal"]),
                g(c.get("max_abs_difference")),
            ]
        )
        if c.get("control"):
            controls.append(
                [f"`{c['case']}`", c["control"].get("wrong", DASH), yes(c["control"].get("equal_to_real"))]
            )
    out = [
        f"{s['equal']} of {s['cases']} graphs read from the saved tensors alone equal the traced real model "
        f"({len(s.get('families', []))} families); negative controls differ: "
        f"{yes(s.get('controls_differ'))}.",
        "",
        table(
            [
                "case",
                "family",
                "nodes",
                "edges",
                "unit groups",
                "blocks",
                "MLP blocks",
                "equal",
                "max abs difference",
            ],
            rows,
        ),
    ]
    if controls:
        out += [
            "",
            "Negative controls (a wrong number taken from `config.json`):",
            "",
            table(["case", "what was wrong", "graph equal to the real one"], controls),
        ]
    return "\n".join(out)


def real_weights(rs: Sequence[Receipt]) -> str:
    r = rs[0]
    readings = [
        "traced",
        "traced_channel_major",
        "state_dict_channel_last",
        "state_dict_channel_major",
        "state_dict_one_head_channel_last",
        "state_dict_one_head_channel_major",
    ]
    rows = []
    for net in sorted(r.results):
        for how in sorted(r.results[net], key=lambda h: order(h, readings)):
            x = r.results[net][how]
            if "refused" in x:
                rows.append([net, f"`{how}`", f"refused: {x['refused']}", DASH, DASH, DASH, DASH, DASH, DASH])
                continue
            diffs = x.get("max_rel_diff_vs_traced") or {}
            rows.append(
                [
                    net,
                    f"`{how}`",
                    x.get("reading", DASH),
                    x["nodes"],
                    num(x["ncut"], 3),
                    pm(x["null_mean"], x["null_std"], 3),
                    z_(x["z"], 2),
                    num(x["p_value"], 4),
                    num(max(diffs.values()), 3) if diffs else DASH,
                ]
            )
    st = r.data.get("settings", {})
    return "\n".join(
        [
            f"n-cut at k = {st.get('n_clusters', DASH)} against {st.get('n_shuffles', DASH)} "
            f"`{st.get('null', 'layer')}` "
            "shuffles. `traced` reads the flatten the code uses; the others read it channel-major or from "
            "the "
            "state dict alone (largest relative block difference from the traced graph in the last column).",
            "",
            table(
                [
                    "network",
                    "read as",
                    "how",
                    "nodes",
                    "n-cut",
                    "shuffles (mean ± std)",
                    "z",
                    "p",
                    "max rel. difference vs traced",
                ],
                rows,
            ),
        ]
    )


def worked_example(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    rows, krows, mrows = [], [], []
    for which in sorted(res):
        x = res[which]
        t, sc, gr = x["training"], x["score"], x["graph"]
        sh = sc.get("shuffle") or {}
        rows.append(
            [
                which,
                x["model"],
                f"{x['parameters']:,}",
                f"{t['metric_name']} {num(t['metric'], 4)}",
                f"{gr['nodes']:,}",
                f"{gr['edges']:,}",
                sc.get("n_clusters", DASH),
                num(sc.get("ncut"), 4),
                pm(sh.get("mean"), sh.get("std"), 4),
                z_(sh.get("z"), 2),
                num(sh.get("p_value"), 4),
                sec(x.get("seconds"), 0),
            ]
        )
        cats = x["knockout"]["categories"]
        krows.append(
            [
                which,
                len(x["knockout"].get("submodules", [])),
                x["knockout"].get("n_random", DASH),
                num(x["knockout"].get("intact_accuracy"), 4),
            ]
            + [cats.get(c, 0) for c in ("important", "sig-but-small", "prunable", "not-significant")]
        )
        mk = x["masks"]
        for f in mk["functions"]:
            mrows.append(
                [
                    which,
                    f"`{f}`",
                    num(mk["kept_fraction"][f], 3),
                    " / ".join(f"{h} {num(mk['accuracy'][f][h], 3)}" for h in mk["functions"]),
                    " / ".join(f"{h} {num(mk['inverted_accuracy'][f][h], 3)}" for h in mk["functions"]),
                    num(mk["full_accuracy"].get(f), 3),
                ]
            )
    return "\n".join(
        [
            table(
                [
                    "example",
                    "model",
                    "parameters",
                    "test",
                    "nodes",
                    "edges",
                    "k",
                    "n-cut",
                    "shuffles (mean ± std)",
                    "z",
                    "p",
                    "run",
                ],
                rows,
            ),
            "",
            "Knockouts (sub-modules by category):",
            "",
            table(
                [
                    "example",
                    "sub-modules",
                    "random lesions each",
                    "intact",
                    "important",
                    "sig-but-small",
                    "prunable",
                    "not-significant",
                ],
                krows,
            ),
            "",
            "Masks (metric of each mask on each function's data; inverted: the mask's weights removed):",
            "",
            table(
                ["example", "mask", "kept", "mask on", "inverted mask on", "full network on its data"], mrows
            ),
        ]
    )


def score_example(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    return "\n".join(["```console", f"$ {res['command_line']}", res["stdout"].rstrip("\n"), "```"])


# The user guide's commands (experiments/guide_commands.py), one fragment each: cmd_<name>.md
GUIDE_COMMANDS = (
    "score", "score_nonzero", "knockout", "masks", "train", "train_bimt", "plot_network",
    "plot_histogram", "plot_lesions", "plot_masks", "report", "model_score", "model_knockout",
    "model_masks", "blocks", "dask_score",
)


def guide_command(name: str) -> Callable[[Sequence[Receipt]], str]:
    """The renderer of one guide command: the line as typed, then what it printed."""

    def render(rs: Sequence[Receipt]) -> str:
        c = rs[0].results["commands"][name]
        return "\n".join(["```console", f"$ {c['command_line']}", c["stdout"].rstrip("\n"), "```"])

    return render


# -- benchmarks ------------------------------------------------------------------------------------
def bench_startup(rs: Sequence[Receipt]) -> str:
    cmds = rs[0].results["commands"]
    rows = []
    for label in sorted(cmds, key=lambda k: (k != "python -c pass", k)):
        x = cmds[label]
        rows.append(
            [
                f"`{label}`",
                spread(x["seconds"], lambda v: num(v, 3)),
                num(x["above_bare_python"], 3),
                num(x.get("target_seconds"), 1) if x.get("target_seconds") else DASH,
                yes(x.get("meets_target")),
                ", ".join(x.get("heavy_modules_loaded") or []) or "none",
            ]
        )
    return "\n".join(
        [
            "Wall seconds per fresh process (spawn to exit), median (min to max); `python -c pass` is the "
            "floor "
            "every command pays.",
            "",
            table(
                [
                    "command",
                    "seconds",
                    "above bare python",
                    "target s",
                    "meets target",
                    "heavy modules loaded",
                ],
                rows,
            ),
        ]
    )


def bench_cli_vs_script(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    rows = []
    for t in sorted(res["by_threads"], key=lambda t: (t != "env", t)):
        x = res["by_threads"][t]
        m, p = x["modscope"], x["plain_sklearn"]
        rows.append(
            [
                "as the environment sets them" if t == "env" else f"{t} (thread variables)",
                spread(m["seconds"], lambda v: num(v, 2)),
                spread(p["seconds"], lambda v: num(v, 2)),
                times(x["ratio_plain_over_modscope"]),
                f"{num(m['ncut'], 4)} ({z_(m['z'], 2)})",
                f"{num(p['ncut'], 4)} ({z_(p['z'], 2)})",
                f"{yes(m.get('same_result_every_repeat'))} / {yes(p.get('same_result_every_repeat'))}",
            ]
        )
    return "\n".join(
        [
            f"Whole processes on a Glorot {res['network']} MLP: `{argv_text(res['modscope_argv'])}` against "
            f"`{argv_text(res['plain_argv'])}`; wall seconds, median (min to max).",
            "",
            table(
                [
                    "threads",
                    "modscope s",
                    "plain scikit-learn s",
                    "plain / modscope",
                    "modscope n-cut (z)",
                    "scikit-learn n-cut (z)",
                    "same result every repeat",
                ],
                rows,
            ),
            "",
            f"Headline ({res['headline_threads']}): {times(res['ratio_plain_over_modscope'])} against a "
            "target of "
            f"{times(res['target_ratio'], 0)}; meets it: {yes(res['meets_target'])}.",
        ]
    )


def bench_score_vs_sklearn(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    names = {
        "modscope": "modscope (default: 25 restarts, lowest inertia)",
        "modscope_select_ncut": "modscope, lowest n-cut kept",
        "modscope_10_restarts": "modscope, 10 restarts",
    }
    rows = []
    for name in sorted(res["clusterings"], key=lambda n: (n.startswith("sklearn"), order(n, list(names)))):
        x = res["clusterings"][name]
        label = names.get(name) or (
            "scikit-learn, threads as they are"
            if name.endswith("_env")
            else f"scikit-learn, {name.rsplit('_', 1)[1]} thread"
        )
        lower = x.get("modscope_ncut_lower_or_equal")
        rows.append(
            [
                label,
                spread(x["seconds"], lambda v: num(v, 3)),
                times(x.get("ratio_over_modscope")),
                num(x["ncut_mean"], 4),
                DASH if lower is None else f"{lower} of {len(x['ncut'])}",
            ]
        )
    h = res["headline"]
    gr = res.get("graph", {})
    out = [
        f"One k = {res['k']} clustering of the {res['network']} graph ({gr.get('n_nodes', DASH)} nodes, "
        f"{gr.get('n_edges', DASH):,} edges) in one process; seconds per clustering, median (min to max).",
        "",
        table(
            [
                "clustering",
                "seconds",
                "scikit-learn / modscope",
                "n-cut (mean)",
                "modscope n-cut lower or equal",
            ],
            rows,
        ),
        "",
        f"Headline against `{h['baseline']}`: {times(h['ratio'])} (target {times(h['target_ratio'], 0)}), "
        "n-cut "
        f"{num(h['ncut_modscope_mean'], 4)} against {num(h['ncut_sklearn_mean'], 4)}; no worse: "
        f"{yes(h['ncut_no_worse'])}; meets the target: {yes(h['meets_target'])}.",
    ]
    w = res.get("whole_score")
    if w:
        out += [
            "",
            f"A whole `score` with {w['shuffles']} `layer` shuffles, `--jobs {w['jobs']}`: "
            f"{sec(w['seconds'], 1)} ({sec(w['seconds_per_shuffle'], 3)} per shuffle); n-cut "
            f"{num(w['ncut'], 4)} against {pm(w['shuffle_mean'], w['shuffle_std'], 4)}, z {z_(w['z'], 2)}.",
        ]
    return "\n".join(out)


def bench_community(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    names = {
        "modscope_leiden": "modscope Leiden (igraph)",
        "modscope_louvain": "modscope Louvain (igraph)",
        "networkx_louvain": "networkx Louvain",
    }
    rows = []
    for name in sorted(res["methods"], key=lambda n: order(n, list(names))):
        x = res["methods"][name]
        rows.append(
            [
                names.get(name, name),
                spread(x["seconds"], lambda v: num(v, 3)),
                times(x.get("networkx_over_this")),
                num(x["q_mean"], 4),
                num(statistics.median(x["n_communities"]), 0),
                yes(x.get("q_no_lower")),
                yes(x.get("meets_target")) if "meets_target" in x else DASH,
            ]
        )
    nx_ = res["methods"].get("networkx_louvain", {})
    gr = res.get("graph", {})
    out = [
        f"Newman's Q communities of the {res['network']} graph ({gr.get('n_nodes', DASH)} nodes, "
        f"{gr.get('n_edges', DASH):,} edges); seconds, median (min to max); target: "
        f"{times(res['target_ratio'], 0)} faster than networkx with Q no lower.",
        "",
        table(
            [
                "method",
                "seconds",
                "networkx / this",
                "Q (mean)",
                "communities (median)",
                "Q no lower",
                "meets target",
            ],
            rows,
        ),
    ]
    if "graph_construction_seconds" in nx_:
        out += [
            "",
            "networkx's time includes building its graph: "
            f"{sec(median_of(nx_['graph_construction_seconds']))} "
            f"(search {sec(median_of(nx_['search_seconds']))}), medians.",
        ]
    w = res.get("whole_score")
    if w:
        out += [
            "",
            f"A whole modularity `score` with {w['shuffles']} shuffles, `--jobs {w['jobs']}`: "
            f"{sec(w['seconds'], 1)}, Q {num(w['q'], 4)} against "
            f"{pm(w['shuffle_mean'], w['shuffle_std'], 4)}, "
            f"z {z_(w['z'], 1)}; networkx estimate {sec(w['networkx_estimate_seconds'], 0)} "
            f"({w['networkx_estimate']}), {times(w['networkx_estimate_over_this'], 0)}.",
        ]
    return "\n".join(out)


def bench_training_steps(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    out: list[str] = []
    st = res.get("steps")
    if st:
        threads = sorted(
            {
                t
                for row in st["tasks"].values()
                for mode in ("plain", "bimt")
                for t in row[mode]["by_threads"]
            },
            key=int,
        )
        rows = []
        for task in sorted(st["tasks"], key=lambda t: order(t, ["formula-independence", "modadd", "digits"])):
            row = st["tasks"][task]
            for mode in ("plain", "bimt"):
                x = row[mode]
                bt = x["by_threads"]
                rows.append(
                    [task, mode, widths_label(x["widths"]), f"{x['multiply_adds_per_step']:,}"]
                    + [num(median_of(bt[t]["ms_per_step"]), 3) if t in bt else DASH for t in threads]
                    + [num(median_of(bt[t]["cpu_per_wall"]), 2) if t in bt else DASH for t in threads]
                    + [
                        x["auto_threads"],
                        x["fastest_threads"],
                        times(x["auto_over_fastest"], 2),
                        times(row["bimt_over_plain_one_thread"], 2) if mode == "bimt" else "",
                    ]
                )
        out += [
            f"Training steps, median wall ms per step; torch's default is {st['default_threads']} thread(s); "
            "the "
            f"automatic choice takes one thread below {st['small_work']:,} multiply-adds per step.",
            "",
            table(
                ["task", "mode", "widths", "multiply-adds per step"]
                + [f"ms/step, {t} thread(s)" for t in threads]
                + [f"CPU s / wall s, {t}" for t in threads]
                + ["auto threads", "fastest", "auto / fastest", "BIMT / plain (1 thread)"],
                rows,
            ),
        ]
    sw = res.get("swap_search")
    if sw:
        rows = [
            [
                name,
                x["top_k"],
                spread(x["vectorised_seconds"], lambda v: num(v, 4)),
                spread(x["bruteforce_seconds"], lambda v: num(v, 3)),
                times(x["speed_up"], 0),
                yes(x["same_cost"]),
                yes(x["same_permutations"]),
            ]
            for name, x in sorted(sw.items())
        ]
        out += [
            "" if out else None,
            "BIMT swap search: one pass, vectorised against the reference's brute force "
            "(seconds, median (min to max)).",
            "",
            table(
                [
                    "network: what",
                    "top-k",
                    "vectorised s",
                    "brute force s",
                    "speed-up",
                    "same cost",
                    "same permutations",
                ],
                rows,
            ),
        ]
    return "\n".join(x for x in out if x is not None)


def bench_cluster_reg(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    rows = []
    for t in sorted(res["steps"]["threads"], key=int):
        row = res["steps"]["threads"][t]
        rows.append([t, "plain", spread(row["plain_ms_per_step"], lambda v: num(v, 2)), times(1.0, 2), DASH])
        for mode in sorted((k for k in row if k.startswith("every_")), key=lambda k: int(k.split("_")[1])):
            x = row[mode]
            rows.append(
                [
                    t,
                    f"spectral, eigenproblem every {mode.split('_')[1]} step(s)",
                    spread(x["ms_per_step"], lambda v: num(v, 2)),
                    times(x["over_plain"], 2),
                    yes(x["meets_1_5x"]),
                ]
            )
    parts = res.get("parts", {})
    labels = {
        "refresh_eigenproblem_float32": "refresh: the eigenproblem (float32)",
        "gradient_given_eigenvectors": "gradient with given eigenvectors",
        "autograd_eigh_float32": "exact penalty, autograd through eigh (float32)",
        "autograd_eigh_float64": "exact penalty, autograd through eigh (float64)",
    }
    prow = [
        [labels.get(k, k), spread(v, lambda s: num(1e3 * s, 2) if not bad(s) else DASH)]
        for k, v in sorted(parts.items(), key=lambda kv: order(kv[0], list(labels)))
    ]
    ref = res["reference"]
    rrow = [
        ["build the sparse Laplacian", sec(ref["build_laplacian_s"])],
        ["eigsh, shift-invert", sec(ref["eigsh_s"])],
        ["outer products", sec(ref["outer_products_s"])],
        [
            "weight loop, per weight",
            f"{num(1e6 * ref['loop_seconds_per_weight'], 1)} µs "
            f"(timed on {ref['loop_weights_timed']:,} weights)",
        ],
        [
            f"weight loop, all {ref['total_weights']:,} weights (extrapolated)",
            sec(ref["loop_all_weights_s_extrapolated"], 1),
        ],
        ["extra per step, one process", sec(ref["step_extra_s_one_process"], 1)],
        ["extra per step, 4 ideal workers", sec(ref["step_extra_s_4_workers_ideal"], 1)],
    ]
    cmp_rows = [
        [
            k.replace("every_", "every "),
            ms(v["modscope_extra_s"], 2),
            sec(v["reference_extra_s_one_process"], 1),
            times(v["reference_over_modscope"], 0),
        ]
        for k, v in sorted(
            res.get("reference_vs_modscope_extra_per_step", {}).items(),
            key=lambda kv: int(kv[0].split("_")[1]),
        )
    ]
    return "\n".join(
        [
            f"Training steps of {res['network']} at batch {res['batch_size']}, K = {res['eigs']}; ms per "
            "step, median "
            "(min to max); target: a regularised step at most 1.5× a plain one.",
            "",
            table(["torch threads", "mode", "ms per step", "× plain", "≤ 1.5×"], rows),
            "",
            "Parts, one thread, ms (median (min to max)):",
            "",
            table(["part", "ms"], prow),
            "",
            "The reference's step, re-created from its algorithm (one process):",
            "",
            table(["part", "time"], rrow),
            "",
            table(
                [
                    "modscope mode",
                    "modscope extra per step (1 thread)",
                    "reference extra per step",
                    "reference / modscope",
                ],
                cmp_rows,
            ),
        ]
    )


def step_order(name: str) -> tuple[int, str]:
    """Plain step, one mask, K masks in one step (vmap), K masks split over threads."""
    if name == "plain_step":
        return (0, name)
    if name == "one_mask_step":
        return (1, name)
    if name.endswith("_one_step"):
        return (2, name)
    if name.endswith("_one_step_vmap"):
        return (3, name)
    return (4, name)


def step_label(name: str) -> str:
    """``k3_masks_on_2_threads`` -> ``K = 3 masks split over 2 threads``."""
    m = re.fullmatch(r"k(\d+)_masks_(one_step|one_step_vmap|on_(\d+)_threads)", name)
    if name == "plain_step":
        return "plain training step"
    if name == "one_mask_step":
        return "one mask step (K = 1)"
    if m is None:
        return name.replace("_", " ")
    if m.group(3):
        return f"K = {m.group(1)} masks split over {m.group(3)} threads"
    return f"K = {m.group(1)} masks in one {'vmap ' if m.group(2).endswith('vmap') else ''}step"


def bench_masks_speed(rs: Sequence[Receipt]) -> str:
    out: list[str] = []
    for m in rs[0].results["models"]:
        k = m["k"]
        if out:
            out.append("")
        out += [
            f"**{widths_label(m['widths'])}** ({m['masked_weights']:,} masked weights, batch {m['batch']}, "
            f"K = {k}); ms per step, median (min to max):",
            "",
        ]
        rows = []
        for name, t in sorted(m["steps"].items(), key=lambda kv: step_order(kv[0])):
            rows.append(
                [
                    step_label(name),
                    spread(t["cpu_seconds_per_step"], lambda v: num(1e3 * v, 3)),
                    spread(t["wall_seconds_per_step"], lambda v: num(1e3 * v, 3)),
                ]
            )
        out.append(table(["step", "CPU ms", "wall ms"], rows))
        rr = m["ratios"]
        out += [
            "",
            table(
                ["ratio", "CPU time", "wall time"],
                [
                    [
                        "one mask step / plain step",
                        times(rr["cpu"]["one_mask_over_plain"], 2),
                        times(rr["wall"]["one_mask_over_plain"], 2),
                    ],
                    [
                        f"K = {k} together / {k} one-mask steps",
                        times(rr["cpu"]["k_together_over_k_separate"], 2),
                        times(rr["wall"]["k_together_over_k_separate"], 2),
                    ],
                    [
                        f"K = {k} together / plain step",
                        times(rr["cpu"]["k_together_over_plain"], 2),
                        times(rr["wall"]["k_together_over_plain"], 2),
                    ],
                    [
                        f"K = {k} split over threads / {k} one-mask steps",
                        DASH,
                        times(rr["wall"].get("k_on_threads_over_k_separate"), 2),
                    ],
                ],
            ),
        ]
    return "\n".join(out)


def bench_knockout_speed(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    rows = []
    for layer in sorted(res["layers"], key=int):
        x = res["layers"][layer]
        rows.append(
            [
                layer,
                x["size"],
                spread(x["batched_seconds"], lambda v: num(v, 3)),
                spread(x["loop_seconds"], lambda v: num(v, 3)),
                times(x["ratio_loop_over_batched"]),
                sci(x["max_abs_metric_difference"], 1),
            ]
        )
    t = res["total"]
    rows.append(
        [
            "all",
            "",
            spread(t["batched_seconds"], lambda v: num(v, 3)),
            spread(t["loop_seconds"], lambda v: num(v, 3)),
            times(t["ratio_loop_over_batched"]),
            sci(t["max_abs_metric_difference"], 1),
        ]
    )
    st = rs[0].data.get("settings", {})
    return "\n".join(
        [
            f"One sub-module per hidden layer of a {widths_label(res['widths'])} MLP, "
            f"{st.get('examples', DASH):,} examples, "
            f"N = {st.get('random', DASH)} random lesions (+1 true), device {res['device']}, "
            f"{res['torch_threads']} torch "
            f"thread(s); seconds, median (min to max). The intact activations (once per knockout run) took "
            f"{sec(res['intact_activations_seconds'], 2)}.",
            "",
            table(
                ["layer", "size", "batched s", "loop s", "loop / batched", "max |metric difference|"], rows
            ),
        ]
    )


def bench_tracing(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    gr = res["graph"]
    labels = [
        ("imports_s", "`import torch, modscope`"),
        ("first_export_s", "`torch.export.export` (first call)"),
        ("load_graph_s", "`load_graph(model, example_input=...)`"),
        ("fx_symbolic_trace_s", "`torch.fx.symbolic_trace` (for scale)"),
    ]
    rows = [[label, spread(res[k], lambda v: num(v, 2))] for k, label in labels if k in res]
    return "\n".join(
        [
            f"ResNet-18's shape, traced in fresh processes: {gr['nodes']:,} nodes, {gr['edges']:,} edges, "
            f"{gr['groups']} unit groups, {gr['blocks']} blocks; seconds, median (min to max). Target: the "
            "graph "
            f"under 5 s; met: {yes(res.get('target_load_graph_under_5_s'))}.",
            "",
            table(["step", "seconds"], rows),
        ]
    )


def bench_transformer_graphs(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    sh = res["shape"]
    rows = []

    def status(x: dict) -> str:
        if x.get("finished"):
            return "finished"
        if "killed_after_s" in x:
            return f"killed after {x['killed_after_s']} s"
        return "failed: " + " ".join(x.get("error") or ["?"])

    w = res.get("whole", {})
    if w:
        rows.append(
            [
                "modscope: read the file into the whole graph",
                status(w),
                sec(w.get("read_s"), 1),
                num(w.get("read_peak_gib"), 2),
                f"{w.get('nodes', 0):,} nodes, {w.get('edges', 0):,} edges",
                "",
            ]
        )
        rows.append(
            [
                "modscope: one k = 12 clustering of the whole graph",
                status(w),
                sec(w.get("cluster_s"), 1),
                num(w.get("peak_gib"), 2),
                "",
                num(w.get("ncut"), 4),
            ]
        )
    b = res.get("blocks", {})
    if b:
        rows.append(
            [
                f"modscope: `score_blocks`, {b['n_blocks']} blocks"
                if "n_blocks" in b
                else "modscope: `score_blocks`, every block",
                status(b),
                sec(b.get("blocks_s"), 1),
                num(b.get("peak_gib"), 2),
                f"z {ranged(b['z'], 1, sign=True)}" if b.get("z") else "",
                ranged(b["ncut"], 4) if b.get("ncut") else "",
            ]
        )
    for key, label in (
        ("sklearn_block", "scikit-learn: one block's graph"),
        ("sklearn_whole", "scikit-learn: the whole graph"),
    ):
        x = res.get(key)
        if x:
            size = f"{x['nodes']:,} nodes, {x['edges']:,} edges" if "nodes" in x else ""
            rows.append(
                [
                    label,
                    status(x),
                    sec(x.get("cluster_s"), 1),
                    num(x.get("peak_gib"), 2),
                    size,
                    num(x.get("ncut"), 4),
                ]
            )
    out = [
        f"GPT-2-small-sized random weights ({sh['layers']} blocks, d {sh['d']}, d_ff {sh['f']}; a "
        f"{num(res.get('file_mib'), 0)} MiB safetensors file); each part in a fresh process.",
        "",
        table(["part", "status", "seconds", "peak GiB", "graph / z", "n-cut"], rows),
    ]
    extra = []
    if "sklearn_blocks_estimate_s" in res:
        extra.append(
            f"scikit-learn on every block and its shuffles, estimated from one block: "
            f"{sec(res['sklearn_blocks_estimate_s'], 0)} ({times(res['blocks_ratio_estimate'], 0)} "
            "modscope's)"
        )
    if "whole_ratio" in res:
        extra.append(f"the whole graph, scikit-learn / modscope: {times(res['whole_ratio'], 1)}")
    if extra:
        out += ["", "; ".join(extra) + "."]
    tg = res.get("targets", {})
    if tg:
        out += [
            "",
            "Targets: blocks under 600 s " + yes(tg.get("blocks_under_600_s")) + "; whole-graph clustering "
            "under 60 s "
            + yes(tg.get("whole_cluster_under_60_s"))
            + "; its peak under 4 GiB "
            + yes(tg.get("whole_peak_under_4_gib"))
            + ".",
        ]
    return "\n".join(out)


def bench_knockout_any(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    c, m = res["cost"], res["memory"]
    st = rs[0].data.get("settings", {})
    ext = c["every_submodule_extrapolated_s"]
    out = [
        f"ResNet-18-sized CNN (32 × 32 inputs): {c['nodes']:,} nodes, {c['edges']:,} edges, "
        f"{c['submodules']} "
        "sub-modules at k = 12.",
        "",
        table(
            ["what", "measured or extrapolated", "seconds"],
            [
                ["intact pass", "measured", sec(c["intact_s"], 2)],
                [
                    f"one sub-module's 101 lesions, batched ({st.get('lesion_examples', DASH)} examples)",
                    "measured",
                    sec(c["one_submodule_batched_s"], 2),
                ],
                [
                    f"one sub-module's 101 lesions, one forward each ({st.get('lesion_examples', DASH)} "
                    "examples)",
                    "measured",
                    sec(c["one_submodule_loop_s"], 2),
                ],
                [
                    f"every sub-module, batched ({st.get('examples', DASH):,} examples)",
                    "extrapolated",
                    sec(ext.get("batched"), 0),
                ],
                [
                    f"every sub-module, one forward each ({st.get('examples', DASH):,} examples)",
                    "extrapolated",
                    sec(ext.get("loop"), 0),
                ],
            ],
        ),
        "",
        f"Batched / loop speed-up {times(c['batched_speedup'])}; the same metrics on both paths: "
        f"{yes(c['same_metrics'])}.",
        "",
        "Memory of a knockout streaming a memory-mapped `.npz` (784-32-32-10 MLP, k = 2, 20 random lesions):",
        "",
    ]
    anon = "anon_growth_mib" in m  # receipts before the anonymous-memory sampler have RSS only
    rows = [
        [
            f"{int(n):,}",
            num(x["file_mib"], 1),
            num(x["before_mib"], 0),
            num(x["peak_mib"], 0),
            *([num(x["anon_before_mib"], 0), num(x["anon_peak_mib"], 0)] if anon else []),
            sec(x["seconds"], 1),
            x["submodules"],
        ]
        for n, x in sorted(((k, v) for k, v in m.items() if isinstance(v, dict)), key=lambda kv: int(kv[0]))
    ]
    header = ["examples", "file MiB", "RSS before MiB", "RSS peak MiB"]
    header += ["anonymous before MiB", "anonymous peak MiB"] if anon else []
    out += [
        table([*header, "seconds", "sub-modules"], rows),
        "",
        f"Peak RSS growth {num(m['peak_growth_mib'], 1)} MiB, {num(m['growth_over_file'], 3)} × the "
        "larger file (RSS counts the mapped file's pages the kernel keeps: page cache, not copies).",
    ]
    if anon:
        out.append(
            f"What the run itself allocates (anonymous memory, sampled every 2 ms) grew by "
            f"{num(m['anon_growth_mib'], 1)} MiB, {num(m['anon_growth_over_file'], 3)} × the larger file."
        )
    return "\n".join(out)


def bench_gpu_models(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    d = res.get("device", {})
    gpu = d.get("device", "?")
    name = d.get("name") or gpu
    out = [
        f"Device: {name} ({gpu}; driver {d.get('driver') or DASH}, torch {d.get('torch', DASH)}, "
        f"CUDA {d.get('torch_cuda') or DASH}); the CPU with {d.get('cpu_threads', DASH)} torch threads."
        + (" A `--quick` check, not a measurement." if res.get("quick") else ""),
        "",
    ]
    rows = []
    st = res.get("steps") or {}
    steps = (("train_step", "training step (fit_model)"), ("mask_step", "mask step (2 functions)"))
    for what, label in steps:
        x = st.get(what)
        if not x:
            continue
        cpu = (x.get("cpu") or {}).get("seconds_per_step")
        on = [v for k, v in x.items() if k not in ("cpu", "gpu_over_cpu")]
        dev = on[0].get("seconds_per_step") if on else None
        rows.append([f"{label}, {st.get('model', DASH)}, batch {st.get('batch', DASH)}", "measured",
                     sec(cpu, 4), sec(dev, 4), times(x.get("gpu_over_cpu"))])
    k = res.get("knockout_cnn") or {}
    if "device_whole_knockout_s" in k:
        rows.append([
            f"knockout of that CNN ({k['units']} units, k {k['clusters']}, {k['n_random']} random lesions, "
            f"{k['images']:,} images): the {len(k['measured_submodules'])} sub-modules measured on both",
            "measured", sec(k["measured_cpu_s"], 2), sec(k["measured_device_s"], 2),
            times(k["measured_cpu_over_device"]),
        ])
        rows.append([
            f"the whole knockout ({k['submodules']} sub-modules)",
            "CPU extrapolated, device measured", sec(k["cpu_whole_knockout_extrapolated_s"], 1),
            sec(k["device_whole_knockout_s"], 2), times(k["cpu_over_device_whole"]),
        ])
    if rows:
        out += [table(["work", "measured or extrapolated", "CPU", "device", "device speed-up"], rows), ""]
    r = res.get("knockout_resnet18") or {}
    if "whole_knockout_extrapolated_s" in r:
        out += [
            f"ResNet-18-sized knockout ({r['image_size']} × {r['image_size']} images, {r['units']:,} units, "
            f"{r['submodules']} sub-modules at k = {r['clusters']}, {r['n_random']} random lesions, "
            f"{r['images']:,} images) on the device: the intact pass on every image took "
            f"{sec(r['intact_all_images_s'], 2)} (measured); {len(r['measured_submodules'])} sub-modules "
            f"measured on {r['images_measured']:,} images; every sub-module on every image extrapolated to "
            f"**{sec(r['whole_knockout_extrapolated_s'], 0)}** (target {sec(r['target_s'], 0)})."
            + (f" Groups not measured (their time is the mean of the measured): {r['groups_not_measured']}."
               if r.get("groups_not_measured") else ""),
            "",
            f"One late sub-module (group {r['late_submodule'][0]}): the replayed prefix "
            f"{sec(r['late_prefix_s'], 2)} against the whole forward per lesion "
            f"{sec(r['late_whole_forward_s'], 2)} ({times(r['late_prefix_speedup'])}; the same metrics: "
            f"{yes(r['late_same_metrics_prefix_vs_whole'])}); bf16 autocast {sec(r['late_bf16_s'], 2)}, "
            f"its metrics at most {num(r['late_bf16_max_metric_change'], 4)} from fp32's.",
        ]
    failed = [f"`{p}`: {v['error']}" for p, v in res.items() if isinstance(v, dict) and "error" in v]
    if failed:
        out += ["", "Parts that failed in this run: " + "; ".join(failed)]
    return "\n".join(out)


RATIOS = {
    "one_mask_over_plain_cpu": "one mask step / plain step, CPU time",
    "one_mask_over_plain_wall": "one mask step / plain step, wall time",
    "k_together_over_k_single_cpu": "K masks in one step / K one-mask steps, CPU time",
    "k_vmap_over_k_single_cpu": "K masks in one vmap step / K one-mask steps, CPU time",
    "k_on_threads_over_k_single_wall": "K masks split over threads / K one-mask steps, wall time",
}


def bench_bimt_any(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    rows = []
    for key, label in (("cnn", "residual CNN"), ("transformer", "transformer")):
        x = res[key]
        rows.append([
            f"{label} ({x['parameters']:,} parameters, {len(x['groups'])} permutable groups)",
            spread(x["plain_step_s"], lambda v: num(1e3 * v, 1)),
            spread(x["bimt_step_s"], lambda v: num(1e3 * v, 1)),
            spread(x["swap_pass_s"], lambda v: num(1e3 * v, 1)),
            times(x["ratio"], 2),
        ])
    load = res["load_average"]["before"][0]
    return "\n".join([
        table(["model", "plain step, ms", "BIMT step, ms", "swap pass, ms", "BIMT / plain"], rows),
        "",
        f"*BIMT / plain: the BIMT step plus a swap pass every 200 steps, over the plain step (target "
        f"at most 1.5×). Load average {num(load, 1)} on {res['cpu_count']} cores when it ran.*",
    ])


def bench_masks_any(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    out: list[str] = []
    for key in ("cnn", "lstm"):
        x = res.get(key)
        if not x:
            continue
        if out:
            out.append("")
        out += [
            f"**{x['model']}** ({x['masked_weights']:,} masked weights, batch {x['batch']}, K = {x['k']}, "
            f"{x['path']} path, split over {x['threads']} threads); ms per step, median (min to max):",
            "",
        ]
        rows = [
            [
                step_label(name),
                spread(t["cpu_seconds_per_step"], lambda v: num(1e3 * v, 2)),
                spread(t["wall_seconds_per_step"], lambda v: num(1e3 * v, 2)),
            ]
            for name, t in sorted(x["steps"].items(), key=lambda kv: step_order(kv[0]))
        ]
        out.append(table(["step", "CPU ms", "wall ms"], rows))
        out += [
            "",
            table(
                ["ratio", "value"],
                [
                    [RATIOS.get(k, k.replace("_", " ")), times(v, 2)]
                    for k, v in sorted(x["ratios"].items(), key=lambda kv: order(kv[0], list(RATIOS)))
                ],
            ),
        ]
    mem = res.get("memory")
    if mem:
        mib = 2**20
        out += [
            "",
            f"**Memory** of a mask run on a memory-mapped `.npz` ({mem['examples']['train']:,} train + "
            f"{mem['examples']['test']:,} test examples, {mem['steps']} steps):",
            "",
            table(
                ["quantity", "value"],
                [
                    ["data on disk", f"{num(mem['data_bytes'] / mib, 0)} MiB"],
                    ["read as", f"`{mem['memory_mapped_as']}`"],
                    ["anonymous memory before", f"{num(mem['anon_before_bytes'] / mib, 0)} MiB"],
                    ["anonymous memory, peak", f"{num(mem['anon_peak_bytes'] / mib, 0)} MiB"],
                    [
                        "growth",
                        f"{num(mem['anon_growth_bytes'] / mib, 1)} MiB = "
                        f"{num(mem['anon_growth_over_data'], 3)} × the data",
                    ],
                    [
                        "peak RSS (file pages)",
                        f"{num(mem['rss_peak_bytes'] / mib, 0)} MiB "
                        f"({num(mem['rss_file_peak_bytes'] / mib, 0)} MiB)",
                    ],
                    ["run", sec(mem["run_seconds"], 1)],
                ],
            ),
        ]
    s = res.get("summary")
    if s:
        out += [
            "",
            f"CNN: one mask step / plain step {times(s['cnn_one_mask_over_plain_cpu'], 2)} CPU time "
            f"(target {s['cnn_target'].replace('<=', '≤')}).",
        ]
    return "\n".join(out)


def bench_scaling(rs: Sequence[Receipt]) -> str:
    res = rs[0].results
    cap = res.get("cap")

    def ok(x: Any) -> bool:
        return isinstance(x, dict) and "error" not in x

    def c(x: Any, key: str, d: int) -> str:
        if x is None:
            return f"> {num(cap, 0)} s cap"
        if "error" in x:
            return x["error"]
        return num(x[key], d)

    rows = []
    for row in res["rows"]:
        m, s, b = row.get("modscope"), row.get("sklearn"), row.get("base")
        if "ratio" in row:
            ratio = times(row["ratio"])
        elif ok(m) and s is None and cap:
            ratio = f"> {num(cap / m['seconds'], 0)}×"
        else:
            ratio = DASH
        rows.append(
            [
                row["network"],
                f"{row.get('nodes', 0):,}",
                f"{row.get('edges', 0):,}",
                c(m, "seconds", 2),
                c(s, "seconds", 2),
                ratio,
                c(m, "peak_mb", 0),
                c(s, "peak_mb", 0),
                c(b, "peak_mb", 0),
                c(m, "ncut", 4),
                c(s, "ncut", 4),
            ]
        )
    out = [
        f"One k = {res['clusters']} clustering per fresh process, one thread, first call included; seconds "
        "are "
        "medians over the repeats, peak resident memory the largest.",
        "",
        table(
            [
                "network",
                "nodes",
                "edges",
                "modscope s",
                "scikit-learn s",
                "ratio",
                "modscope peak MB",
                "scikit-learn peak MB",
                "graph only MB",
                "n-cut modscope",
                "n-cut scikit-learn",
            ],
            rows,
        ),
    ]
    w = res.get("score")
    if w:
        out += [
            "",
            f"A whole `score` of {w['network']} (k = {res['clusters']}, {w['shuffles']} `layer` shuffles, "
            f"`--jobs {w['jobs']}`): {sec(w['seconds'], 1)}, n-cut {num(w['ncut'], 4)} against shuffles at "
            f"{num(w['shuffle_mean'], 4)}, z {z_(w['z'], 2)}.",
        ]
    if res.get("load_after"):
        out += ["", "Load average after the run: " + " / ".join(num(x, 2) for x in res["load_after"]) + "."]
    return "\n".join(out)


def bench_gpu_scoring(rs: Sequence[Receipt]) -> str:
    """The spectral path on a GPU against the same machine's cores: one row per part."""
    res = rs[0].results
    m = res.get("machine", {})
    t = res.get("targets", {})
    head = (
        f"Device: {m.get('gpu') or m.get('device', '?')} (driver {m.get('driver') or 'not recorded'}), "
        f"torch {m.get('torch', '?')} (CUDA {m.get('cuda_build') or 'none'}), {m.get('cpu_cores', '?')} CPU "
        "cores beside it"
        + (" — a `--quick` run (small shapes): not the targets' sizes." if res.get("quick") else ".")
    )

    def state(part: dict) -> str:
        if not part:
            return "not run"
        if not part.get("finished", True):
            if part.get("killed_after_s"):
                return "killed at its cap"
            return "failed: " + " ".join(part.get("error", []))
        return ""

    rows = []
    a = res.get("layer", {})
    rows.append([
        f"`layer` shuffles of {a.get('network', '?')}, k {a.get('k', '?')}: {a.get('shuffles', '?')}",
        sec(a.get("device_s"), 2), f"{sec(a.get('cpu_s'), 2)} (`jobs={a.get('cpu_jobs', '?')}`)",
        times(a.get("ratio")), f"≥ {num(t.get('layer_ratio'), 0)}×; " + (state(a) or (
            f"samples equal to 1e-9: {a.get('samples_equal_1e9')} of {a.get('shuffles')}")),
    ])
    b = res.get("blocks", {})
    rows.append([
        f"`score_blocks`, {b.get('blocks', '?')} blocks {b.get('d_model', '?')}-{b.get('d_ff', '?')}-"
        f"{b.get('d_model', '?')} × {b.get('shuffles', '?')} shuffles",
        sec(b.get("device_s"), 1) + ("" if b.get("device_s_is") == "measured" else " (extrapolated)"),
        sec(b.get("cpu_s"), 1) + (" (extrapolated)" if b.get("cpu_s") is not None else ""),
        times(b.get("ratio")),
        f"≤ {num(t.get('blocks_s'), 0)} s; " + (state(b) or str(b.get("device_s_is", ""))),
    ])
    c, cc = res.get("whole", {}), res.get("whole_cpu", {})
    ratio = cc["cpu_s"] / c["device_s"] if c.get("device_s") and cc.get("cpu_s") else None
    rows.append([
        f"whole merged-stream graph ({c.get('nodes', '?')} units), one k 12 reference clustering",
        sec(c.get("device_s"), 2), sec(cc.get("cpu_s"), 1), times(ratio),
        f"≤ {num(t.get('whole_s'), 0)} s; " + (state(c) or state(cc) or (
            f"n-cut {num(c.get('ncut'), 4)} vs {num(cc.get('ncut'), 4)}; labels "
            + ("equal" if c.get("labels_sha") == cc.get("labels_sha") else "differ"))),
    ])
    d = res.get("llama", {})
    shape = d.get("shape", {})
    rows.append([
        f"LLaMA-shaped, {shape.get('layers', '?')} blocks d {shape.get('d', '?')}, SwiGLU d_ff "
        f"{shape.get('f', '?')} × {d.get('shuffles', '?')} shuffles, streamed",
        sec(d.get("seconds"), 1) + ("" if d.get("seconds_is") == "measured" else " (extrapolated)"),
        "–", "–",
        f"≤ {num(t.get('llama_s'), 0)} s, host ≤ {num(t.get('llama_host_gib'), 0)} GiB: "
        + (state(d) or f"host peak {num(d.get('host_peak_gib'), 1)} GiB; {d.get('seconds_is', '')}"),
    ])
    return head + "\n\n" + table(["work", "device", "CPU (all cores there)", "ratio", "target; note"], rows)


# -- the fragments ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fragment:
    """``docs/generated/NAME.md``: rendered by ``render`` from ``sources`` (receipt paths, or one glob)."""

    name: str
    sources: tuple[str, ...]
    render: Callable[[Sequence[Receipt]], str]
    make: str
    speed: bool = False

    def receipts(self, root: Path) -> tuple[list[Receipt], list[str]]:
        found, missing = [], []
        for src in self.sources:
            if any(ch in src for ch in "*?["):
                paths = sorted(p.relative_to(root).as_posix() for p in root.glob(src))
                if not paths:
                    missing.append(src)
                for p in paths:
                    found.append(load(root, p))
            else:
                r = load(root, src)
                if r is None:
                    missing.append(src)
                else:
                    found.append(r)
        return [r for r in found if r is not None], missing

    def text(self, root: Path) -> str:
        found, missing = self.receipts(root)
        if missing:
            return (
                f"_No receipt committed yet: {', '.join(f'`{m}`' for m in missing)}. It is made by "
                f"`{self.make}`._\n"
            )
        return self.render(found).rstrip("\n") + "\n\n" + footer(found, self.speed) + "\n"


def bench_explore(rs: Sequence[Receipt]) -> str:
    """The explorer page of GPT-2 small's whole graph: size, build, first paint, interactions."""
    res = rs[0].results
    sh = res["shape"]
    met = res.get("met", {})

    def ok(key: str) -> str:
        return "met" if met.get(key) else "not met"

    rows = [
        ["the graph read from the file", sec(res.get("read_s"), 1),
         f"{res['n_nodes']:,} units, {res['n_edges']:,} edges"],
        ["one k = 12 clustering (the partition shown)", sec(res.get("cluster_s"), 1),
         "from an earlier run of the script (--labels-cache)" if res.get("cluster_cached") else ""],
        ["the page built and written", sec(res.get("build_s"), 1),
         f"{num(res['file_mb'], 1)} MB (target 50: {ok('file_mb')}); "
         f"{res['embedded_edges']:,} single edges embedded"],
        ["first paint in headless Chromium, wall clock", sec(res.get("first_paint_s"), 2),
         f"target 3 s: {ok('first_paint_s')}; Plotly alone {sec(res.get('plotly_alone_s'), 2)}"],
        ["first paint, the renderer main thread's CPU time", sec(res.get("first_paint_cpu_s"), 2),
         f"Plotly alone {sec(res.get('plotly_alone_cpu_s'), 2)}"],
        ["threshold slider moved", f"{num(res.get('slider_ms'), 0)} ms", ""],
        ["zoom into one group", f"{num(res.get('zoom_ms'), 0)} ms",
         f"then {res.get('zoom_edges', 0):,} {res.get('zoom_mode', '')} drawn"],
    ]
    return "\n".join([
        f"GPT-2-small-sized random weights ({sh['layers']} blocks, d {sh['d']}, d_ff {sh['f']}); the "
        f"median of the browser runs; load average {num(res.get('load_average'), 1)} when the browser "
        "started (the wall-clock times wait for the machine's other processes, the CPU times do not).",
        "",
        table(["step", "time", ""], rows),
    ])


E = "experiments/"
B = "benchmarks/results/"
PY = "OMP_NUM_THREADS=1 .venv/bin/python"


def _bench(name: str, render: Callable[[Sequence[Receipt]], str], make: str) -> Fragment:
    return Fragment(f"bench_{name}", (f"{B}{name}.json",), render, make, speed=True)


FRAGMENTS: tuple[Fragment, ...] = (
    Fragment(
        "paper_table_fashion",
        (f"{E}paper_table_fashion.json",),
        paper_table,
        f"{PY} experiments/paper_table.py --net fashion-mnist --seeds 0,1,2,3,4 --random-init-seeds "
        "0,1,2,3,4 "
        "--out experiments/paper_table_fashion.json",
    ),
    Fragment(
        "cluster_reg",
        (f"{E}cluster_reg.json",),
        cluster_reg,
        f"{PY} experiments/cluster_reg.py --seeds 0,1,2 --shuffles 20 --random 50 --out "
        "experiments/cluster_reg.json",
    ),
    Fragment(
        "bimt_vs_plain",
        (f"{E}bimt_vs_plain_independence.json", f"{E}bimt_vs_plain_modadd.json"),
        bimt_vs_plain,
        f"{PY} experiments/bimt_vs_plain.py (the commands are in the receipts)",
    ),
    Fragment(
        "bimt_modadd_modules",
        (f"{E}bimt_modadd_modules.json",),
        bimt_modules,
        f"{PY} experiments/bimt_modules.py --seeds 0,1,2 --out experiments/bimt_modadd_modules.json",
    ),
    Fragment(
        "degree_null",
        (f"{E}degree_null_independence.json", f"{E}degree_null_modadd.json"),
        degree_null,
        f"{PY} experiments/degree_null.py (the commands are in the receipts)",
    ),
    Fragment(
        "measures_compare",
        (f"{E}measures_compare.json",),
        measures_compare,
        f"{PY} experiments/measures_compare.py --shuffles 50 --out experiments/measures_compare.json",
    ),
    Fragment(
        "masks_addmul",
        (f"{E}masks_addmul.json", f"{E}masks_addmul_800.json"),
        masks_addmul,
        f"{PY} experiments/masks_addmul.py --part addmul --out experiments/masks_addmul.json",
    ),
    Fragment(
        "masks_halves",
        (f"{E}masks_halves*.json",),
        masks_halves,
        f"{PY} experiments/masks_addmul.py --part halves --out experiments/masks_halves.json",
    ),
    Fragment(
        "masks_digits_classes",
        (f"{E}masks_digits_classes.json",),
        masks_digits_classes,
        ".venv/bin/modscope masks CKPT --classes --steps 10000 --json experiments/masks_digits_classes.json",
    ),
    Fragment(
        "families_vs_reference",
        (f"{E}families_vs_reference.json",),
        families,
        "python experiments/families_vs_reference.py --full --out experiments/families_vs_reference.json",
    ),
    Fragment(
        "real_weights_flatten",
        (f"{E}real_weights_flatten.json",),
        real_weights,
        f"{PY} experiments/real_weights_flatten.py",
    ),
    Fragment(
        "worked_example",
        (f"{E}worked_example.json",),
        worked_example,
        "OMP_NUM_THREADS=2 .venv/bin/python experiments/worked_example.py --out "
        "experiments/worked_example.json",
    ),
    Fragment(
        "score_example",
        (f"{E}score_example.json",),
        score_example,
        ".venv/bin/python experiments/score_example.py",
    ),
    *(
        Fragment(f"cmd_{name}", (f"{E}guide_commands.json",), guide_command(name),
                 ".venv/bin/python experiments/guide_commands.py")
        for name in GUIDE_COMMANDS
    ),
    _bench("startup", bench_startup, ".venv/bin/python benchmarks/startup.py --repeats 15"),
    _bench("cli_vs_script", bench_cli_vs_script, ".venv/bin/python benchmarks/cli_vs_script.py --repeats 3"),
    _bench(
        "score_vs_sklearn",
        bench_score_vs_sklearn,
        ".venv/bin/python benchmarks/score_vs_sklearn.py --repeats 9 --shuffles 200 --jobs 2",
    ),
    _bench(
        "community",
        bench_community,
        ".venv/bin/python benchmarks/community.py --repeats 5 --nx-repeats 3 --shuffles 50",
    ),
    _bench(
        "training_steps",
        bench_training_steps,
        ".venv/bin/python benchmarks/training_steps.py --steps 2000 --repeats 3",
    ),
    _bench(
        "cluster_reg", bench_cluster_reg, ".venv/bin/python benchmarks/cluster_reg.py --steps 300 --repeats 5"
    ),
    _bench(
        "masks_speed", bench_masks_speed, ".venv/bin/python benchmarks/masks_speed.py --repeats 30 --rounds 5"
    ),
    _bench(
        "knockout_speed", bench_knockout_speed, ".venv/bin/python benchmarks/knockout_speed.py --repeats 3"
    ),
    _bench("tracing", bench_tracing, ".venv/bin/python benchmarks/tracing.py --repeats 5"),
    _bench(
        "transformer_graphs", bench_transformer_graphs, ".venv/bin/python benchmarks/transformer_graphs.py"
    ),
    _bench("knockout_any", bench_knockout_any, ".venv/bin/python benchmarks/knockout_any.py"),
    _bench("masks_any", bench_masks_any, ".venv/bin/python benchmarks/masks_any.py"),
    _bench("bimt_any", bench_bimt_any, ".venv/bin/python benchmarks/bimt_any.py"),
    _bench(
        "gpu_models", bench_gpu_models, "PYTHONPATH=. .venv/bin/python benchmarks/gpu_models.py --device cuda"
    ),
    _bench("scaling", bench_scaling, ".venv/bin/python benchmarks/scaling.py --repeats 3"),
    _bench("gpu_scoring", bench_gpu_scoring, "OUT=DIR bash benchmarks/device/run.sh (on a GPU machine)"),
    _bench("explore", bench_explore, ".venv/bin/python benchmarks/explore.py --repeats 3"),
)


def render_one(f: Fragment, root: Path) -> str:
    """One fragment's Markdown; a receipt without the keys its table needs raises `RuntimeError`."""
    try:
        return f.text(root)
    except Exception as e:
        raise RuntimeError(
            f"{f.name}: cannot render from {', '.join(f.sources)}: {type(e).__name__}: {e}"
        ) from e


def render_all(root: Path, only: set[str] | None = None) -> dict[str, str]:
    """Fragment name -> its Markdown, in a fixed order."""
    return {f.name: render_one(f, root) for f in FRAGMENTS if only is None or f.name in only}


def readme_region(readme: str, body: str) -> str | None:
    """``readme`` with the text between the marker lines replaced by ``body``; None without markers."""
    lines = readme.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    if not starts:
        return None
    i = starts[0]
    ends = [j for j in range(i + 1, len(lines)) if lines[j].strip() == END]
    if not ends:
        raise RuntimeError(f"README has {BEGIN!r} but no {END!r} after it")
    j = ends[0]
    return "".join(lines[: i + 1]) + body.rstrip("\n") + "\n" + "".join(lines[j:])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a fragment differs")
    ap.add_argument(
        "--root",
        type=Path,
        default=REPO,
        help="where experiments/ and benchmarks/results/ are read (default: the repository)",
    )
    ap.add_argument("--docs", type=Path, default=REPO / "docs" / "generated", help="fragments folder")
    ap.add_argument(
        "--readme", default=str(REPO / "README.md"), help="README with the marker region ('' skips)"
    )
    ap.add_argument("--only", default="", help="comma-separated fragment names (default: all)")
    ap.add_argument("--list", action="store_true", help="print the fragment names and their receipts")
    args = ap.parse_args(argv)
    if args.list:
        for f in FRAGMENTS:
            print(f"{f.name}.md  <- {', '.join(f.sources)}")
        return 0
    only = {n.strip().removesuffix(".md") for n in args.only.split(",") if n.strip()} or None
    unknown = sorted((only or set()) - {f.name for f in FRAGMENTS})
    if unknown:
        print(f"render_docs: unknown fragment(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    root = args.root.resolve()
    texts: dict[str, str] = {}
    differs: list[str] = []
    errors: list[str] = []
    for f in FRAGMENTS:
        if only is None or f.name in only:
            try:
                texts[f.name] = render_one(f, root)
            except RuntimeError as e:  # listed, and the fragment left as it is
                errors.append(f"{args.docs / f'{f.name}.md'} (not rendered: {e})")
    for name, text in texts.items():
        path = args.docs / f"{name}.md"
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        differs.append(str(path))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    readme = Path(args.readme) if args.readme else None
    if readme is not None and readme.is_file() and "score_example" in texts:
        old = readme.read_text(encoding="utf-8")
        new = readme_region(old, texts["score_example"])
        if new is not None and new != old:
            differs.append(f"{readme} (region {BEGIN})")
            if not args.check:
                readme.write_text(new, encoding="utf-8")
    if args.check:
        if differs or errors:
            print(
                "render_docs: these differ from what the receipts give (run python scripts/render_docs.py):",
                file=sys.stderr,
            )
            for d in differs + errors:
                print(f"  {d}", file=sys.stderr)
            return 1
        print(f"render_docs: {len(texts)} fragment(s) agree with their receipts")
        return 0
    for d in differs:
        print(f"wrote {d}")
    for e in errors:
        print(f"render_docs: {e}", file=sys.stderr)
    print(f"render_docs: {len(texts)} fragment(s) rendered, {len(differs)} changed, {len(errors)} failed")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
