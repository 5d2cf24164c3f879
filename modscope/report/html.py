"""The HTML report: every figure and number of saved results in one self-contained page.

[`build_report()`][modscope.report.html.build_report] takes results — ``score``, ``masks`` and ``knockout``
JSON files (or their ``to_dict()`` dicts) and the demo's combined ``results.json`` — and writes to a folder:

- ``index.html``: one file, figures embedded as base64 PNG, inline CSS, no script, no
  external font or style sheet, so it opens anywhere (also offline, also as an attachment);
- ``results.json``: everything combined, in the demo's layout (``models``, ``scores``,
  ``masks``, ``knockouts``);
- ``results.csv``: every number of ``results.json`` in long form (``section, name, field,
  value``), plus tidy tables ``models.csv``, ``submodules.csv``, ``pairs.csv``, ``masks.csv``;
- ``figures/*.png``: each figure at print resolution.

A JSON file's kind is recognised by its keys ([`result_kind()`][modscope.report.html.result_kind]).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ModscopeError
from ..runtime.atomic import write_atomic, write_json, write_text
from ..runtime.hashing import file_sha256, json_digest
from ..runtime.jsonable import read_json_file

__all__ = [
    "DPI",
    "KINDS",
    "NETWORK_DENSE_EDGES",
    "NETWORK_QUANTILE",
    "build_report",
    "collect",
    "kind_by_keys",
    "load_result",
    "long_rows",
    "pick_result",
    "read_result",
    "render_html",
    "ReportData",
    "result_kind",
    "score_row",
    "tables",
]

KINDS = ("score", "masks", "knockout", "demo")
_SECTIONS = {"score": "scores", "masks": "masks", "knockout": "knockouts"}  # a kind's section of a demo
_SIGNATURES = {  # the keys by which a JSON file's kind is recognised
    "score": ("ncut", "labels", "layer_widths"),
    "masks": ("functions", "iou", "kept_fraction"),
    "knockout": ("submodules", "intact_accuracy"),
}
DPI = 130  # one PNG per figure, embedded and in figures/: sharp on screen, fine for a draft
# Network drawings of networks with more edges than this show only each layer's connections at or
# above this quantile of |w|: a 64-64-64-10 MLP has 9000 lines, which hide every structure.
NETWORK_DENSE_EDGES = 1000
NETWORK_QUANTILE = 0.9
# The page's style sheet (report.css) and its "how to read this report" section (how_to_read.html)
_PAGE = Path(__file__).with_name("report_page")


def kind_by_keys(d: Any, signatures: Mapping[str, Sequence[str]], expected: str) -> str:
    """The first kind of ``signatures`` whose keys ``d`` holds all of; else a one-line error saying
    which results were ``expected`` (the report's and the explorer's recognition)."""
    if isinstance(d, Mapping):
        for kind, keys in signatures.items():
            if all(k in d for k in keys):
                return kind
    raise ModscopeError(f"not a modscope result: expected {expected}")


def read_result(path: str | os.PathLike, kind: Callable[[Any], str]) -> tuple[str, dict]:
    """Read a result JSON file: ``(kind(d), d)``; a one-line error naming the file."""
    path = Path(path)
    d = read_json_file(path)
    try:
        return kind(d), d
    except ModscopeError as exc:
        raise ModscopeError(f"{path}: {exc}") from None


def result_kind(d: Any) -> str:
    """``"score"``, ``"masks"``, ``"knockout"`` or ``"demo"``, from the keys of a result dict."""
    if isinstance(d, Mapping) and isinstance(d.get("models"), list):
        return "demo"
    return kind_by_keys(d, _SIGNATURES, "the JSON of `score`, `masks`, `knockout` or `demo`")


def load_result(path: str | os.PathLike) -> tuple[str, dict]:
    """Read a result JSON file: ``(kind, dict)``."""
    return read_result(path, result_kind)


# -- collecting results ----------------------------------------------------------------------------
@dataclass
class ReportData:
    """Results by model name; the demo's ``results.json`` layout
    (``to_dict()``)."""

    models: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, dict] = field(default_factory=dict)
    masks: dict[str, dict] = field(default_factory=dict)
    knockouts: dict[str, dict] = field(default_factory=dict)
    nulls: dict[str, dict[str, dict]] = field(default_factory=dict)  # model -> shuffle method -> score
    checkpoints: dict[str, Path] = field(default_factory=dict)  # for the network drawings
    extra: dict[str, Any] = field(default_factory=dict)  # the demo's settings, kept as they are
    worked: dict[str, dict] = field(default_factory=dict)  # the demo's worked examples on real architectures
    explorers: dict[str, str] = field(default_factory=dict)  # model -> its explorer page (relative link)

    def add(self, kind: str, d: Mapping[str, Any], name: str, base: Path | None = None) -> None:
        """Add one result; ``base``: the folder that relative checkpoint paths are relative to."""
        if kind == "demo":
            self.models.extend(dict(r) for r in d["models"])
            merged = ("scores", "masks", "knockouts", "nulls", "worked", "explorers")
            for key in merged:
                getattr(self, key).update(d.get(key) or {})
            self.extra.update({k: v for k, v in d.items() if k not in (*merged, "models", "version")})
            for row in d["models"]:
                if row.get("checkpoint"):  # relative to ``base``; an absolute path stays as it is
                    self.checkpoints[row["model"]] = Path(base or "", row["checkpoint"])
            return
        target = getattr(self, _SECTIONS[kind])
        unique = name
        i = 2
        while unique in target:  # two files of one kind with one name: keep both
            unique, i = f"{name}-{i}", i + 1
        target[unique] = dict(d)
        if kind == "score" and not any(r.get("model") == unique for r in self.models):
            self.models.append(score_row(unique, d))

    def to_dict(self) -> dict[str, Any]:
        d = {**self.extra, "version": __version__,
             **{k: getattr(self, k) for k in ("models", "scores", "masks", "knockouts")}}
        # nulls: scores of the same clustering against other shuffle methods; each only when there is any
        d.update({k: getattr(self, k) for k in ("nulls", "worked", "explorers") if getattr(self, k)})
        return d


def score_row(name: str, d: Mapping[str, Any]) -> dict[str, Any]:
    """The summary-table row of a score result."""
    s = d.get("shuffle") or {}
    row = {
        "model": name,
        "widths": "-".join(map(str, d["layer_widths"])),
        "clusters": d.get("n_clusters"),
        "ncut": d["ncut"],
        "shuffle_method": s.get("method"),
        "shuffles": s.get("n"),
        "shuffle_mean": s.get("mean"),
        "shuffle_std": s.get("std"),
        "z": s.get("z"),
        "p_value": s.get("p_value"),
    }
    other = (d.get("sparse") or {}).get("other")
    if other:  # z_<null>, p_<null> of a sparse network's second null (`modscope.stats.flags`)
        row.update({f"z_{other['method']}": other.get("z"), f"p_{other['method']}": other.get("p_value")})
    return row


def collect(results: Sequence[str | os.PathLike | tuple[str, Mapping[str, Any]]]) -> ReportData:
    """Results from JSON paths (named by file stem) or ``(name, dict)`` pairs."""
    data = ReportData()
    if not results:
        raise ModscopeError("no results to report")
    for item in results:
        if isinstance(item, tuple):
            name, d = item
            data.add(result_kind(d), d, name)
        else:
            path = Path(item)
            data.add(*load_result(path), path.stem, base=path.parent)
    return data


# -- numbers as tables -----------------------------------------------------------------------------
def _flatten(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted.path, number)`` for every number (bools and strings left out) in nested JSON."""
    if isinstance(obj, Mapping | list | tuple):
        for k, v in obj.items() if isinstance(obj, Mapping) else enumerate(obj):
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield prefix, obj


def long_rows(data: ReportData) -> list[tuple[str, str, str, Any]]:
    """Every number: ``(section, name, field, value)``."""
    rows = [("models", str(row.get("model")), f, v) for row in data.models
            for f, v in _flatten({k: v for k, v in row.items() if k != "model"})]
    for section in ("scores", "masks", "knockouts", "nulls"):
        for name, d in getattr(data, section).items():
            rows.extend((section, name, f, v) for f, v in _flatten(d))
    return rows


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)  # None is written as an empty cell
    return buf.getvalue()


def _scalar_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    """Flattened per-function / per-class values as columns; other nested values left out."""
    out = {}
    for k, v in d.items():
        if k == "per_function" and isinstance(v, Mapping):
            out.update({f"fn_{f}": x for f, x in v.items()})
        elif k == "per_class" and isinstance(v, list):
            out.update({f"class_{c}": x for c, x in enumerate(v)})
        elif not isinstance(v, Mapping | list):
            out[k] = v
    return out


def _data_order(masks: Mapping[str, Any]) -> list[str]:
    """The functions whose data the masks were scored on, in the masks' order (a key-sorted
    JSON file loses the order of ``full_accuracy``)."""
    scored = list(masks["full_accuracy"])
    return [f for f in masks["functions"] if f in scored] + [g for g in scored
                                                             if g not in masks["functions"]]


def tables(data: ReportData) -> dict[str, str]:
    """Tidy CSV tables: ``{file name: text}``."""
    subs = [{"model": n, **_scalar_fields(s)} for n, k in data.knockouts.items() for s in k["submodules"]]
    pairs = [{"model": n, **_scalar_fields(p)} for n, k in data.knockouts.items()
             for p in k.get("pairs") or []]
    masks = [
        {"model": n, "mask": f, "data": g, "accuracy": m["accuracy"][f][g],
         "inverted_accuracy": m["inverted_accuracy"][f][g], "full_accuracy": m["full_accuracy"][g],
         "kept_fraction": m["kept_fraction"][f], "shared": (m.get("shared") or {}).get(f)}
        for n, m in data.masks.items() for f in m["functions"] for g in _data_order(m)
    ]
    out = {"results.csv": _csv(("section", "name", "field", "value"), long_rows(data))}
    for fname, rows in (("models.csv", data.models), ("submodules.csv", subs), ("pairs.csv", pairs),
                        ("masks.csv", masks)):
        if rows:  # a table only when there is any row
            header = list(dict.fromkeys(k for r in rows for k in r))  # every key, in order of first use
            out[fname] = _csv(header, [[r.get(k) for k in header] for r in rows])
    return out


# -- figures ---------------------------------------------------------------------------------------
@dataclass
class _Figures:
    """Draws figures once: a figure's PNGs are cached under ``cache_dir`` by a hash of its input."""

    out_dir: Path
    cache_dir: Path | None
    pending: dict[str, bytes] = field(default_factory=dict)  # written by `write`, once the whole page is made

    def draw(self, slug: str, caption: str, key: Any,
             make: Callable[[], Any]) -> tuple[str, str, bytes] | None:
        """``(slug, caption, PNG)`` of the figure ``make`` draws; None when there is nothing to draw."""
        digest = json_digest([slug, key, __version__])[:20]
        cached = self.cache_dir / f"{slug}-{digest}.png" if self.cache_dir else None
        if cached and cached.exists():
            png = cached.read_bytes()
        else:
            try:
                fig = make()
            except ModscopeError:
                return None  # nothing to draw (e.g. no shuffles, no pairs)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI)
            png = buf.getvalue()
            if cached:
                write_atomic(cached, lambda fh: fh.write(png))
        self.pending[slug] = png
        return slug, caption, png

    def write(self) -> None:
        for slug, png in self.pending.items():
            write_atomic(self.out_dir / "figures" / f"{slug}.png", lambda fh, png=png: fh.write(png))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "figure"


# -- HTML ------------------------------------------------------------------------------------------
def _fmt(v: Any, spec: str = ".4g") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool | int):
        return str(v)
    if isinstance(v, float):
        return format(v, spec)
    return html.escape(str(v))


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned text."""
    def cells(tag: str, texts: Iterable[str]) -> str:  # a row's cells, the first ``left`` of class "l"
        return "".join(f'<{tag} class="{"l" if i < left else ""}">{t}</{tag}>' for i, t in enumerate(texts))

    th = cells("th", map(html.escape, header))
    body = "".join(f"<tr>{cells('td', map(_fmt, r))}</tr>" for r in rows)
    return (f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def _figures_html(figs: Sequence[tuple[str, str, bytes] | None], wide: bool = False) -> str:
    """A grid of figures (`_Figures.draw`'s; two or three per row; ``wide``: one per row, for wide
    figures)."""
    parts = [
        f'<figure id="fig-{slug}"><img src="data:image/png;base64,{base64.b64encode(png).decode()}" '
        f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)} '
        f'(<code>figures/{slug}.png</code>)</figcaption></figure>'
        for slug, caption, png in filter(None, figs)  # None: nothing to draw
    ]
    cls = "figs wide" if wide else "figs"
    return f'<div class="{cls}">{"".join(parts)}</div>' if parts else ""


_MODEL_COLUMNS = {  # a models row's key: its column's header
    "model": "model", "task": "task", "widths": "widths", "metric": "metric",
    "value": "test value", "sparsity": "sparsity", "clusters": "k", "ncut": "n-cut",
    "shuffle_mean": "shuffle mean", "shuffle_std": "shuffle std", "z": "z",
    "p_value": "p", "shuffles": "N",
}


def _models_html(models: Sequence[Mapping[str, Any]]) -> str:
    cols = {k: h for k, h in _MODEL_COLUMNS.items() if any(k in r for r in models)}
    other = sorted({k for r in models for k in r if k.startswith(("z_", "p_")) and k not in _MODEL_COLUMNS},
                   key=lambda k: (k[2:], k[0] == "p"))
    cols.update({k: f"{k[0]} ({k[2:]})" for k in other})  # other shuffle methods
    rows = [[r.get(k) for k in cols] for r in models]
    return _table(list(cols.values()), rows, left=4 if any("task" in r for r in models) else 2)


def _null_summary(s: Mapping[str, Any]) -> str:
    verdict = ("<span class='good'>more modular than its shuffles</span>"
               if s["p_value"] < 0.05 else "not more modular than its shuffles")
    summary = (f"{s['n']} {html.escape(str(s['method']))} shuffles: "
               f"{_fmt(s['mean'])} &plusmn; {_fmt(s['std'])}, z = {_fmt(s.get('z'), '.2f')}, "
               f"p = {_fmt(s['p_value'])}: {verdict}.")
    n_zero = sum(1 for x in s.get("ncuts") or [] if x <= 1e-12)
    if n_zero:  # the same caveat `modscope score` prints as a warning
        summary += (f" <span class='bad'>{n_zero} of {s['n']} shuffled graphs fell apart "
                    "(n-cut 0): the network is too sparse for this null; compare with "
                    "<code>--shuffle-method layer_degree</code>.</span>")
    return summary


def _score_html(name: str, d: Mapping[str, Any], figs: _Figures, ckpt: Path | None,
                nulls: Mapping[str, Mapping[str, Any]] | None = None,
                zero_fraction: float | None = None) -> str:
    from . import plot
    from .summary import score_flags

    s = d.get("shuffle") or {}
    nulls = dict(nulls or {})
    companion = (d.get("sparse") or {}).get("other")
    if companion and companion["method"] not in nulls:  # a sparse network's second null
        nulls[companion["method"]] = {"ncut": d["ncut"], "shuffle": companion}
    summary = (f"n-cut <b>{_fmt(d['ncut'])}</b> with k = {d['n_clusters']} on a "
               f"{'-'.join(map(str, d['layer_widths']))} network ({d.get('n_edges', '?')} edges)")
    if s:
        summary += "; " + _null_summary(s)
    summary += "".join("<br>Against " + _null_summary(other["shuffle"])
                       for other in nulls.values() if other.get("shuffle"))
    summary += "".join(f"<br><span class='bad'>&#9888; {html.escape(f.message)}</span>"
                       for f in score_flags(d, nulls, zero_fraction))
    key = {k: d[k] for k in ("ncut", "labels", "layer_widths", "n_clusters", "shuffle") if k in d}
    slug = _slug(name)
    # (slug part, against what, cache key, result, title): the score's own null, then each other one
    hists = [("histogram", "shuffled networks", key, d, name)]
    hists += [(f"histogram-{_slug(m)}", f"{m} shuffles", other, other, f"{name}, {m} shuffles")
              for m, other in nulls.items()]
    row = [figs.draw(f"{slug}-{part}", f"{name}: n-cut against {what}", cache_key,
                     partial(plot.shuffle_histogram, result, title=title))
           for part, what, cache_key, result, title in hists]
    row.append(figs.draw(f"{slug}-sizes", f"{name}: cluster sizes per layer", key, lambda: plot.cluster_sizes(
        d, title=f"{name}: cluster sizes (k = {d['n_clusters']})")))
    if ckpt is not None and ckpt.exists():
        quantile = NETWORK_QUANTILE if d.get("n_edges", 0) > NETWORK_DENSE_EDGES else None
        shown = ("the strongest " + f"{100 * (1 - quantile):.0f} % of each layer's connections"
                 if quantile is not None else "every connection")
        row.append(figs.draw(
            f"{slug}-network", f"{name}: the network, neurons seated and coloured by cluster, {shown}, "
            "bundled by cluster (a connection inside a cluster in its colour, between clusters grey)",
            [key, file_sha256(ckpt), "bundled", quantile], lambda: _network(ckpt, d, name, quantile)))
    return f'<h3 id="score-{slug}">{html.escape(name)}</h3><p>{summary}</p>' + _figures_html(row)


def _network(ckpt: Path, d: Mapping[str, Any], name: str, quantile: float | None = None):
    """The network drawing at the size of the other figures of a row."""
    import matplotlib

    from . import plot

    with matplotlib.rc_context(plot._STYLE):
        fig, ax = plot._axes(None, (5.0, min(3.6, 0.75 * len(d["layer_widths"]) + 0.8)))
        plot.network(ckpt, d["labels"], ax=ax, max_width=1.6,
                     title=f"{name} (k = {d['n_clusters']})", quantile=quantile, bundle=True)
    return fig


def _masks_html(name: str, d: Mapping[str, Any], figs: _Figures, steps: int | None = None) -> str:
    from ..stats.flags import mask_flags
    from . import plot

    fns = list(d["functions"])
    data = _data_order(d)
    header = ["mask", "kept", "shared"] + [f"on {g}" for g in data] + [f"inverted, on {g}" for g in data]
    rows = [["intact", None, None] + [d["full_accuracy"][g] for g in data] + [None] * len(data)]
    rows += [[f, d["kept_fraction"].get(f), (d.get("shared") or {}).get(f)]
             + [d["accuracy"][f][g] for g in data]
             + [d["inverted_accuracy"][f][g] for g in data] for f in fns]
    slug = _slug(name)
    fig = figs.draw(f"{slug}-masks", f"{name}: mask overlaps (IoU, IoMin), overall and per weight "
                    "matrix, and each mask's kept fraction", d, lambda: plot.mask_overlap(d, title=name))
    caveats = "".join(f"<p class='bad'>&#9888; {html.escape(f.message)}</p>"
                      for f in mask_flags(d.get("kept_fraction") or {}, steps, d.get("functions")))
    ran = f"{steps} steps; " if steps else ""
    return (f'<h3 id="masks-{slug}">{html.escape(name)}</h3>' + caveats
            + f"<p class='note'>{ran}metric of the network under each mask on each function's test "
            "data; 'inverted': with exactly the mask's weights removed.</p>"
            + _table(header, rows) + _figures_html([fig]))


def _knockout_html(name: str, d: Mapping[str, Any], figs: _Figures) -> str:
    from . import plot

    cats = [s["category"] for s in d["submodules"]]
    # every category, in the figures' order; whole-group (a whole unit group lesioned) only when there is one
    counts = {c: cats.count(c) for c in plot.CATEGORY_COLORS if c != "whole-group" or c in cats}
    fns = sorted(d.get("intact_per_function") or {})  # sorted: as a key-sorted JSON gives them
    fns = fns if len(fns) <= 6 else []
    slug = _slug(name)
    out = [
        f'<h3 id="knockout-{slug}">{html.escape(name)}</h3>',
        f"<p>intact {html.escape(d['metric'])} <b>{_fmt(d['intact_accuracy'])}</b>"
        + "".join(f", {html.escape(f)} {_fmt(d['intact_per_function'][f])}" for f in fns)
        + f"; {len(d['submodules'])} sub-modules, {d.get('n_random', '?')} random lesions each; "
        + ", ".join(f"{c} {n}" for c, n in counts.items())
        + f"; Fisher combined p {_fmt(d.get('fisher_p'), '.3g')}.</p>",
    ]
    header = ["layer", "cluster", "size", d["metric"], "delta", "random mean", "p", "z",
              "category"] + fns
    columns = ("layer", "cluster", "size", "accuracy", "delta", "random_mean", "p_value", "z", "category")
    rows = [[s[k] for k in columns] + [s["per_function"].get(f) for f in fns] for s in d["submodules"]]
    key = {k: d[k] for k in ("submodules", "pairs", "intact_accuracy", "metric") if k in d}
    drawn = [("lesions", "single lesions against random lesions", plot.lesion_effects)]
    if d.get("pairs"):
        drawn.append(("pairs", "interaction of double lesions", plot.double_lesion))
    drawings = [figs.draw(f"{slug}-{part}", f"{name}: {caption}", key, partial(draw, d))
                for part, caption, draw in drawn]
    out.append(_figures_html(drawings, wide=True))
    out.append("<details><summary>all sub-modules</summary>" + _table(header, rows, left=0)
               + "</details>")
    fk = d.get("functions")
    if fk:
        out.append(f"<p class='note'>Function masks removed ({html.escape(fk['metric'])} of each "
                   "function):</p>")
        frows = [["none"] + [fk["intact"].get(g) for g in fk["functions"]]]
        removed = fk["removed"]
        names = [f for f in fk["functions"] if f in removed] + sorted(set(removed) - set(fk["functions"]))
        frows += [[f] + [removed[f].get(g) for g in fk["functions"]] for f in names]
        out.append(_table(["removed"] + list(fk["functions"]), frows))
    return "".join(out)


def _worked_html(name: str, w: Mapping[str, Any], figs: _Figures) -> str:
    """One worked example: the model and its training, the unit graph, the score, then the
    knockout and masks sections as for any model."""
    sh = w["score"].get("shuffle") or {}
    g, t = w["graph"], w["training"]
    shuffles = f"{_fmt(sh.get('mean'))} ± {_fmt(sh.get('std'))}"
    columns = [  # (header, value)
        ("model", w["model"]), ("parameters", w["parameters"]), (t["metric_name"], t["metric"]),
        ("units", g["nodes"]), ("edges", g["edges"]), ("clusters", w["score"].get("n_clusters")),
        ("n-cut", w["score"]["ncut"]), ("shuffles (mean ± std)", shuffles), ("z", sh.get("z")),
        ("p", sh.get("p_value")),
    ]
    label = f"worked-{name}"
    reading = html.escape(str(g.get("reading", "")))
    return (f'<h3 id="worked-{_slug(name)}">{html.escape(name)}</h3>'
            + f"<p class='note'>{html.escape(worked_ran(w))}</p>"
            + _table([h for h, _ in columns], [[v for _, v in columns]])
            + f"<details><summary>how the network was read</summary><pre>{reading}</pre></details>"
            + _knockout_html(label, w["knockout"], figs)
            + _masks_html(label, w["masks"], figs, (w.get("settings") or {}).get("mask_steps")))


def worked_ran(w: Mapping[str, Any]) -> str:
    """What a worked example's sections ran, in one paragraph: its settings are its own, not the
    demo's (fewer shuffles, lesions and mask steps; the knockout on the first test examples)."""
    st, t = w.get("settings") or {}, w.get("training") or {}
    sh = (w.get("score") or {}).get("shuffle") or {}
    ko = w.get("knockout") or {}
    metric = t.get("metric_name", "metric")
    parts = [
        f"Trained {t.get('steps', st.get('steps', '?'))} steps: {metric} {_fmt(t.get('metric'))} on "
        "the test set (the table)",
        f"scored with k = {w['score'].get('n_clusters', st.get('n_clusters', '?'))} against "
        f"{sh.get('n', st.get('n_shuffles', '?'))} {sh.get('method', 'layer')} shuffles",
        f"knockout: {ko.get('n_random', st.get('n_random', '?'))} random lesions per sub-module on the "
        f"first {st.get('knockout_examples', '?')} test examples (intact {ko.get('metric', metric)} "
        f"{_fmt(ko.get('intact_accuracy'))} there)",
        f"masks: {st.get('mask_steps', '?')} steps",
    ]
    quick = " (quick settings)" if w.get("quick") else ""
    return "This example's own settings" + quick + ": " + "; ".join(parts) + "."


def _summary_html(data: ReportData, sparsity: Mapping[str, float],
                  ordered: Callable[[Mapping[str, dict]], list[tuple[str, dict]]]) -> str:
    """What was found, in sentences (`modscope.report.summary`): the models against each null and
    their caveats, the clusters that matter, the functions that share weights; then the notes."""
    from .summary import knockout_sentences, mask_sentences, score_sentences

    scores, knockouts, masks = (dict(ordered(items)) for items in (data.scores, data.knockouts, data.masks))
    for section, key in ((scores, "score"), (knockouts, "knockout"), (masks, "masks")):
        # the worked examples read like any model
        section.update({f"worked-{name}": w[key] for name, w in sorted(data.worked.items())})
    parts = [
        ("Modularity", score_sentences(scores, data.nulls, sparsity)),
        ("Do the clusters matter?", knockout_sentences(knockouts)),
        ("Which functions share weights?", mask_sentences(masks)),
        ("Left out", [str(n) for n in data.extra.get("notes") or []]),
    ]

    def para(text: str) -> str:
        cls = " class='bad'" if any(w in text for w in _CAVEAT_WORDS) else ""
        escaped = html.escape(text)
        # `name` -> <code>name</code>, as the sentences quote nulls and options
        escaped = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(escaped.split("`")))
        return f"<li{cls}>{escaped}</li>"

    out = ['<h2 id="summary">What was found</h2>']
    for head, sentences in parts:
        if sentences:
            out.append(f"<h4>{html.escape(head)}</h4><ul>" + "".join(para(t) for t in sentences) + "</ul>")
    if len(out) == 1:
        out.append("<p class='note'>No result to summarise.</p>")
    return "".join(out)


_CAVEAT_WORDS = ("disagree", "degenerate partition", "not converged", "identity shortcuts", "not installed",
                 "left out (--no-fashion)")


def render_html(data: ReportData, figs: _Figures, title: str = "modscope report") -> str:
    """The whole page (drawing every figure through ``figs``)."""
    nav = ['<a href="#how">how to read</a>', '<a href="#models">models</a>']
    body = [(_PAGE / "how_to_read.html").read_text(encoding="utf-8")]
    rank = {r.get("model"): i for i, r in enumerate(data.models)}

    def ordered(items: Mapping[str, dict]) -> list[tuple[str, dict]]:
        """The models' order (JSON files sort their keys), then the rest by name."""
        return sorted(items.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))

    sparsity = {r["model"]: r["sparsity"] for r in data.models if r.get("sparsity") is not None}
    mask_steps = (data.extra.get("settings") or {}).get("mask_steps")
    if data.models:
        body.append('<h2 id="models">Models: n-cut against shuffles</h2>' + _models_html(data.models))
    if data.explorers:
        nav.append('<a href="#explore">explore</a>')
        body.append('<h2 id="explore">Explore interactively</h2><p>One page per network (opens offline): '
                    "click a cluster or a unit, toggle each function's mask, move the |w| threshold: "
                    + ", ".join(f'<a href="{html.escape(href)}">{html.escape(name)}</a>'
                                for name, href in data.explorers.items()) + ".</p>")
    if data.scores:
        body.append('<h2 id="scores">Structure: spectral clusters</h2>')
        body.extend(_score_html(name, d, figs, data.checkpoints.get(name), data.nulls.get(name),
                                sparsity.get(name)) for name, d in ordered(data.scores))
    sections = (  # (anchor, link text, heading, a note under it, its results in order, one result's HTML)
        ("masks", "masks", "Function: weight masks", "", ordered(data.masks),
         lambda name, d: _masks_html(name, d, figs, mask_steps)),
        ("knockouts", "knockouts", "Do the modules matter? Knockouts", "", ordered(data.knockouts),
         lambda name, d: _knockout_html(name, d, figs)),
        ("worked", "real architectures", "Real architectures: the worked example",
         "<p class='note'>Any <code>nn.Module</code>: traced into its unit graph (spec §1b), "
         "scored against shuffles, its clusters knocked out where the model reads their units, "
         "a weight mask learned per function. The committed full run: "
         "<code>experiments/worked_example.json</code>.</p>", sorted(data.worked.items()),
         lambda name, d: _worked_html(name, d, figs)),
    )
    for anchor, link, heading, note, items, section_html in sections:
        if items:
            nav.append(f'<a href="#{anchor}">{link}</a>')
            body.append(f'<h2 id="{anchor}">{heading}</h2>{note}')
            body.extend(section_html(name, d) for name, d in items)
    settings = ""
    shown = {k: v for k, v in data.extra.get("settings", data.extra).items() if k != "notes"}
    if shown:
        whose = "the demo's models" if data.worked else "these results"
        own = "; the worked examples ran their own, said in their section" if data.worked else ""
        settings = (f"<p class='note'>settings of {whose}: " + ", ".join(
            f"{html.escape(str(k))} {_fmt(v)}" for k, v in sorted(shown.items())) + f"{own}.</p>")
    body.insert(0, _summary_html(data, sparsity, ordered))
    nav.insert(0, '<a href="#summary">summary</a>')
    css = (_PAGE / "report.css").read_text(encoding="utf-8")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body><main>"
        f"<h1>{html.escape(title)}</h1><p class='note'>modscope {__version__}. "
        "Is this trained network modular, how much more than chance, and which parts do which "
        f"job?</p>{settings}<nav>{' '.join(nav)}</nav>{''.join(body)}</main></body></html>\n"
    )


def build_report(
    results: Sequence[str | os.PathLike | tuple[str, Mapping[str, Any]]] | ReportData,
    out_dir: str | os.PathLike = "modscope-report",
    *,
    title: str = "modscope report",
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """Write ``index.html``, ``results.json``, the CSV tables and ``figures/`` to ``out_dir``.

    ``results``: result JSON paths, ``(name, dict)`` pairs, or a
    [`ReportData`][modscope.report.html.ReportData]. ``cache_dir``: keep drawn figures there (keyed by their
    input) so a rebuild only draws what changed. Returns the path of ``index.html``.
    """
    out = Path(out_dir)
    figs = _Figures(out, Path(cache_dir) if cache_dir is not None else None)
    try:  # everything is made before anything is written: a malformed result leaves no half report
        data = results if isinstance(results, ReportData) else collect(results)
        page = render_html(data, figs, title)
        table_texts = tables(data)
        numbers = data.to_dict()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        if isinstance(exc, ModscopeError):
            raise
        what = f"missing key {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else str(exc)
        what = (what.splitlines() or [""])[0][:200]
        raise ModscopeError(
            f"a result file is malformed ({type(exc).__name__}: {what}); nothing written") from None
    figs.write()
    write_json(out / "results.json", numbers)
    for fname, text in table_texts.items():
        write_text(out / fname, text)
    return write_text(out / "index.html", page)


def pick_result(path: str | os.PathLike, kind: str, model: str | None = None) -> dict:
    """The ``kind`` result in a JSON file: the file itself, or one model's entry of a demo's
    ``results.json`` (``model``: its name; may be left out when only one model has one)."""
    found, d = load_result(path)
    if found == kind:
        return d
    if found != "demo":
        raise ModscopeError(f"{path}: a {found} result, this figure needs a {kind} result")
    items = d.get(_SECTIONS[kind]) or {}
    if model is None:
        if len(items) != 1:
            raise ModscopeError(
                f"{path}: a demo result; pick a model with --model ({', '.join(items) or 'none'})")
        return next(iter(items.values()))
    if model not in items:
        raise ModscopeError(f"{path}: no {kind} result for model {model!r} ({', '.join(items) or 'none'})")
    return items[model]
