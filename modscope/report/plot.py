"""Figures for papers. Each function draws into a ``matplotlib.figure.Figure`` on an Agg canvas
(no pyplot, no global backend switch, no display needed); [`save()`][modscope.report.plot.save] writes it
atomically.

``network``: the BIMT picture ([spec §6][spec-6]). Neurons at their positions, each connection a line
of width proportional to ``|w| / max |w|`` of its layer, blue for positive weights and red
for negative ones; neurons optionally coloured by cluster. Any other unit graph (residual blocks,
attention) is drawn in the layers of [`modscope.report.layout`][modscope.report.layout], each merged
residual stream once per block boundary.

The result figures take a result object (``ScoreResult``, ``MaskResult``, ``KnockoutResult``)
or the dict its ``to_dict()`` gives, so saved JSON can be drawn again:

- ``shuffle_histogram``: the shuffled n-cuts with the trained network's marked, z and p;
- ``cluster_sizes``: each layer's neurons split by cluster (stacked bars);
- ``mask_overlap``: IoU / IoMin of the function masks, overall and per layer;
- ``lesion_effects``: the metric change of each sub-module's lesion against random lesions;
- ``double_lesion``: the interaction of every pair of lesions.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import nn

from ..errors import ModscopeError
from ..graphs.names import natural_key
from ..graphs.network import Network
from ..graphs.stacks import linear_layers
from ..graphs.weight_graph import WeightGraph
from ..runtime.atomic import write_atomic
from ..stats.flags import z_text
from ..training.bimt import layout
from ..training.checkpoint import Checkpoint, load_checkpoint

__all__ = [
    "CATEGORY_COLORS",
    "DEFAULT_MAX_EDGES",
    "NEGATIVE",
    "POSITIVE",
    "UNCLUSTERED",
    "cluster_sizes",
    "double_lesion",
    "lesion_effects",
    "mask_overlap",
    "network",
    "save",
    "shuffle_histogram",
]

POSITIVE = "#1f5fbf"  # blue
NEGATIVE = "#d62728"  # red
UNCLUSTERED = "#9a9a9a"
_MIN_FRACTION = 0.005  # lines thinner than this fraction of the layer's widest are invisible
DEFAULT_MAX_EDGES = 100_000  # lines a non-chain graph draws at most (the strongest): seconds to render
_LEGEND_RIGHT = {"loc": "upper left", "bbox_to_anchor": (1.0, 1.0), "frameon": False}  # beside the axes


def _placed(source) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    """Weights ``(n_{l+1}, n_l)`` per layer, node coordinates ``(n_l, d)`` per layer (both in graph
    order: inputs / outputs in task order, hidden neurons in position order) and whether the
    coordinates were learned (BIMT) rather than laid out."""
    if isinstance(source, Network):  # one network object: its unit graph
        source = source.graph
    if isinstance(source, str | os.PathLike):
        source = load_checkpoint(source)
    if isinstance(source, Checkpoint):
        sd = source.task_ordered_state_dict()
        weights = [sd[f"layers.{i}.weight"].double().numpy()
                   for i in range(len(source.architecture.widths) - 1)]
        bimt = source.bimt or {}
        coords = bimt.get("coordinates")
        if coords is None:
            return _laid_out(weights)
        coords = [torch.as_tensor(c).double() for c in coords]
        perms = bimt.get("permutations")
        if perms:  # position of each task-ordered input / output
            coords[0] = coords[0][torch.argsort(torch.as_tensor(perms[0]))]
            coords[-1] = coords[-1][torch.argsort(torch.as_tensor(perms[-1]))]
        return weights, [c.numpy() for c in coords], True
    if isinstance(source, WeightGraph):  # a chain (a non-chain graph is drawn by _network_graph)
        return _laid_out(list(source.weights))
    if isinstance(source, nn.Module):
        layers = linear_layers(source)
        if not layers:
            raise ModscopeError("the model has no nn.Linear layers to draw")
        linear = {id(p) for layer in layers for p in layer.parameters()}
        other = [n for n, p in source.named_parameters() if p.ndim >= 2 and id(p) not in linear]
        if other:  # drawing its Linear layers alone would leave out these weights
            raise ModscopeError(f"the model has weights outside nn.Linear layers ({other[0]}): pass "
                                "modscope.network(model, example_input=...) to draw its traced unit graph")
        return _laid_out([layer.weight.detach().cpu().double().numpy() for layer in layers])
    raise ModscopeError(f"cannot draw a {type(source).__name__}: give a checkpoint, a model or a WeightGraph")


def _laid_out(weights: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
    """`_placed` of a stack of weights ``(n_{l+1}, n_l)`` without learned positions: one row per layer."""
    widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    return weights, [c.numpy() for c in layout(widths)], False


def _project(c: np.ndarray, level: float) -> np.ndarray:
    """Layer coordinates -> 2-D drawing coordinates; a 2-D layer becomes an oblique plane."""
    if c.shape[1] == 1:
        return np.stack([c[:, 0], np.full(len(c), level)], 1)
    depth = c[:, 1] - 0.5  # a grid is a plane seen obliquely: rows recede up and right
    return np.stack([0.06 + 0.88 * c[:, 0] + 0.12 * depth, level + 0.55 * depth], 1)


def _palette(n: int) -> list:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _seated(x: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Positions ``x`` (``(n,)`` or ``(n, 1)``) given out again in cluster order (unclustered last,
    then index order): the i-th unit of that order gets the i-th smallest position, so a cluster's
    units sit side by side."""
    order = np.lexsort((np.arange(len(x)), np.where(lab < 0, lab.max(initial=0) + 1, lab)))
    seated = np.empty_like(x)
    seated[order] = np.sort(x, axis=0)
    return seated


def _bundled(a: np.ndarray, b: np.ndarray, ca: np.ndarray, cb: np.ndarray, pull: float = 0.85,
             n: int = 12) -> np.ndarray:
    """``(E, n, 2)`` cubic Bezier curves from points ``a`` to ``b`` (each ``(E, 2)``) whose
    control points are pulled towards ``ca`` / ``cb`` (the centres of the end points' clusters in
    their layers): edges between the same two clusters gather into one bundle."""
    dy = (b[:, 1:] - a[:, 1:]) * 0.4
    p1 = np.concatenate([a[:, :1] + pull * (ca[:, :1] - a[:, :1]), a[:, 1:] + dy], 1)
    p2 = np.concatenate([b[:, :1] + pull * (cb[:, :1] - b[:, :1]), b[:, 1:] - dy], 1)
    t = np.linspace(0.0, 1.0, n)[None, :, None]
    return ((1 - t) ** 3 * a[:, None] + 3 * (1 - t) ** 2 * t * p1[:, None]
            + 3 * (1 - t) * t**2 * p2[:, None] + t**3 * b[:, None])


def _centres(xy: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Each node's cluster centre within its layer (its own position when unclustered)."""
    out = xy.copy()
    for c in np.unique(lab[lab >= 0]):
        sel = lab == c
        out[sel] = xy[sel].mean(0)
    return out


def network(source: Checkpoint | Network | WeightGraph | nn.Module | str | os.PathLike,
            labels: Sequence[int] | np.ndarray | None = None, ax: Axes | None = None, *,
            max_width: float = 2.5, title: str | None = None, quantile: float | None = None,
            bundle: bool = False, max_edges: int = DEFAULT_MAX_EDGES) -> Figure:
    """Draw a network in layers: units at their (BIMT) positions, connections as lines.

    ``source``: a [`Checkpoint`][modscope.training.checkpoint.Checkpoint] (BIMT coordinates and permutations
    honoured), its path, a model made of ``nn.Linear`` layers, or a `Network` / `WeightGraph`. A
    chain (a plain stack) is drawn one row per layer, ``x_j = (2j + 1) / (2n)``; any other unit graph
    (a traced CNN with residual blocks, a transformer) in the layout `modscope explore` uses
    ([`unit_layout`][modscope.report.layout.unit_layout]): each unit group a row at its depth, the
    groups of one row side by side, rows labelled by group name, and each merged residual stream
    drawn once per block boundary (every block reads the copy below it and writes the one above);
    a recurrent group's own weights are arcs above its row.
    ``labels``: one cluster per graph node (input, hidden, output layers; inputs and
    outputs in task order, as [`modscope.load_graph()`][modscope.graphs.load.load_graph] orders them),
    -1 = none; a stream's copies share its units' colours.
    Line width is ``max_width * |w| / max |w|`` points within each layer (edge set); lines below
    0.5 % of the layer's widest are left out. ``quantile`` (0..1): draw only the connections
    whose ``|w|`` is at least this quantile of the layer's non-zero ``|w|`` (0.9: the strongest
    10 %), so a dense network's structure shows. ``bundle`` (with ``labels``): seat each line
    layer's neurons in cluster order (learned BIMT positions are kept), curve each connection
    through the centres of its end points' clusters so edges between two clusters form one
    bundle, and colour a connection by its cluster when both ends share one (grey between
    clusters) instead of by sign. ``max_edges``: a non-chain graph draws at most this many lines,
    the strongest by ``|w| / max |w|`` of their edge set (the figure says so). Returns the figure
    (``ax.figure`` if given).
    """
    graph = source.graph if isinstance(source, Network) else source
    bundle = bundle and labels is not None
    if isinstance(graph, WeightGraph) and not graph.is_chain:
        return _network_graph(graph, labels, ax, max_width=max_width, title=title, quantile=quantile,
                              bundle=bundle, max_edges=max_edges)
    weights, coords, learned = _placed(source)
    labels = _checked(labels, quantile, sum(len(c) for c in coords))
    n_layers = len(coords)
    fig, ax = _axes(ax, (7.0, max(2.5, 1.3 * n_layers)))
    layer_labels = np.split(labels, np.cumsum([len(c) for c in coords])[:-1]) if labels is not None else []
    if bundle and not learned:  # line layouts re-seated in cluster order; grids are kept
        coords = [_seated(c, lab) if c.shape[1] == 1 else c
                  for c, lab in zip(coords, layer_labels, strict=True)]
    pos = [_project(c, float(l)) for l, c in enumerate(coords)]
    palette = _cluster_palette(labels)
    for l, w in enumerate(weights):  # the lines of weight matrix l, ``(n_{l+1}, n_l)``
        mag = np.abs(w)
        top = mag.max() if mag.size else 0.0
        if top == 0:
            continue
        frac = mag / top
        keep = frac >= _MIN_FRACTION
        if quantile is not None:
            keep &= mag >= np.quantile(mag[mag > 0], quantile)
        k, j = np.nonzero(keep)
        f = frac[k, j]
        order = np.argsort(f)  # strong lines on top
        k, j, f = k[order], j[order], f[order]
        la = lb = None
        if bundle:  # through the cluster centres, coloured by cluster
            la, lb = layer_labels[l][j], layer_labels[l + 1][k]
            segs = _bundled(pos[l][j], pos[l + 1][k], _centres(pos[l], layer_labels[l])[j],
                            _centres(pos[l + 1], layer_labels[l + 1])[k])
        else:
            segs = np.stack([pos[l][j], pos[l + 1][k]], 1)
        _add_lines(ax, segs, max_width * f, _line_colors(f, w[k, j] < 0, la, lb, palette))
    _draw_nodes(ax, pos, labels, palette, float(np.clip(1500.0 / max(len(c) for c in coords), 4, 40)))
    _frame(ax, _layer_names(n_layers), title)
    return fig


def _checked(labels: Sequence[int] | np.ndarray | None, quantile: float | None,
             n_nodes: int) -> np.ndarray | None:
    """``labels`` as an array of one entry per graph node; the quantile in [0, 1). One-line errors."""
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n_nodes,):
            raise ModscopeError(
                f"labels must have one entry per graph node ({n_nodes}), got shape {labels.shape}")
    if quantile is not None and not 0.0 <= quantile < 1.0:
        raise ModscopeError(f"quantile must be in [0, 1), got {quantile}")
    return labels


def _cluster_palette(labels: np.ndarray | None) -> dict[int, Any]:
    """``{cluster: colour}`` in cluster order (-1, no edges, has none)."""
    clusters = sorted(int(c) for c in set(labels.tolist()) if c >= 0) if labels is not None else []
    return dict(zip(clusters, _palette(len(clusters)), strict=True))


def _frame(ax: Axes, row_names: Sequence[str], title: str | None) -> None:
    """One y tick per row, named; no x axis; the drawing's limits."""
    ax.set_yticks(range(len(row_names)), row_names)
    ax.set_xticks([])
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.5, len(row_names) - 0.5)
    ax.spines[["top", "right", "bottom"]].set_visible(False)
    if title:
        ax.set_title(title)


def _line_colors(f: np.ndarray, negative: np.ndarray, la: np.ndarray | None, lb: np.ndarray | None,
                 palette: dict[int, Any]) -> np.ndarray:
    """``(E, 4)`` RGBA of lines of strength ``f``: blue / red by sign, fading with ``f``; with the
    clusters of their ends (``la``, ``lb``), the cluster's colour inside one, faint grey between two."""
    if la is None:
        rgba = np.array([matplotlib.colors.to_rgba(POSITIVE), matplotlib.colors.to_rgba(NEGATIVE)])
        colors = rgba[negative.astype(int)]
        colors[:, 3] = 0.1 + 0.9 * f  # weak lines fade, so dense layers stay readable
        return colors
    same = (la == lb) & (la >= 0)
    table = np.array([matplotlib.colors.to_rgba(palette.get(c, UNCLUSTERED))
                      for c in range(max(palette, default=0) + 1)])
    colors = np.tile(matplotlib.colors.to_rgba(UNCLUSTERED), (len(f), 1))
    colors[same] = table[la[same]]
    colors[:, 3] = np.where(same, 0.25 + 0.75 * f, 0.08 + 0.3 * f)
    return colors


def _add_lines(ax: Axes, segs: np.ndarray, widths: np.ndarray, colors: np.ndarray) -> None:
    """Every line at once (one LineCollection: no Python loop over edges), below the units."""
    ax.add_collection(LineCollection(segs, linewidths=widths, colors=colors, capstyle="round", zorder=1))


# -- any unit graph ------------------------------------------------------------------------------
def _network_graph(graph: WeightGraph, labels: Sequence[int] | np.ndarray | None, ax: Axes | None, *,
                   max_width: float, title: str | None, quantile: float | None, bundle: bool,
                   max_edges: int) -> Figure:
    """`network` of a non-chain unit graph: the shared layout, streams unrolled (see `network`)."""
    from .layout import edge_list, group_name, unit_layout

    labels = _checked(labels, quantile, graph.n_nodes)
    if max_edges < 1:
        raise ModscopeError(f"max_edges must be at least 1, got {max_edges}")
    lay = unit_layout(graph, unroll_streams=True)
    pos, nodes = _points(graph, lay, labels if bundle else None)
    point_of = np.concatenate([[0], np.cumsum([len(p) for p in pos])])  # first point of each placement
    edges = edge_list(graph)
    keep = _kept_edges(edges, len(graph.weights), quantile, max_edges)
    ends = np.asarray(lay.ends, dtype=np.int64).reshape(-1, 2)[edges.block[keep]]
    u, v, f = edges.u[keep], edges.v[keep], edges.f[keep].astype(np.float64)
    layer = graph.node_layer
    a = point_of[ends[:, 0]] + u - graph.offsets[layer[u]]  # the points each line joins
    b = point_of[ends[:, 1]] + v - graph.offsets[layer[v]]
    xy = np.concatenate(pos)
    node_labels = None if labels is None else labels[nodes]
    palette = _cluster_palette(labels)
    rows = lay.n_rows
    fig, ax = _axes(ax, (7.0, float(np.clip(1.3 * rows if rows <= 8 else 0.6 * rows + 5.6, 2.5, 40.0))))
    if bundle:
        centre = np.concatenate([_centres(p, node_labels[s:e])
                                 for p, s, e in zip(pos, point_of[:-1], point_of[1:], strict=True)])
        segs = _bundled(xy[a], xy[b], centre[a], centre[b])
        colors = _line_colors(f, edges.w[keep] < 0, node_labels[a], node_labels[b], palette)
    else:
        segs = np.stack([xy[a], xy[b]], 1)
        colors = _line_colors(f, edges.w[keep] < 0, None, None, palette)
    _add_lines(ax, _lift_loops(segs, ends[:, 0] == ends[:, 1]), max_width * f, colors)
    per_row = np.bincount([p.row for p in lay.placements], weights=[len(p) for p in pos])
    _draw_nodes(ax, pos, node_labels, palette, float(np.clip(1500.0 / per_row.max(), 4, 40)))
    names = [[] for _ in range(rows)]
    for pl in lay.placements:
        copies = pl.group in lay.streams
        names[pl.row].append(group_name(graph, pl.group) + (f" [{pl.copy}]" if copies else ""))
    _frame(ax, [", ".join(n) if len(n) <= 2 else f"{n[0]} +{len(n) - 1}" for n in names], title)
    if keep.size == max_edges < edges.u.size:  # below the drawing, inside the figure's layout
        ax.set_xlabel(f"the strongest {keep.size:,} of {edges.u.size:,} edges drawn", fontsize=8,
                      color="#555555")
    return fig


def _lift_loops(segs: np.ndarray, loop: np.ndarray) -> np.ndarray:
    """Lines ``(E, n, 2)`` with those joining two units of one row (``loop``: a recurrent group's
    own weights) lifted into arcs above the row (up to 0.4 of a row, by their span), not along it."""
    if not loop.any():
        return segs
    if segs.shape[1] == 2:  # straight lines as polylines, so an arc can bend
        t = np.linspace(0.0, 1.0, 12)[None, :, None]
        segs = segs[:, :1] + t * (segs[:, 1:] - segs[:, :1])
    t = np.linspace(0.0, 1.0, segs.shape[1])
    span = np.abs(segs[loop, -1, 0] - segs[loop, 0, 0])
    segs[loop, :, 1] += np.minimum(0.4, 1.5 * span)[:, None] * 4 * t * (1 - t)
    return segs


def _points(graph: WeightGraph, lay: Any, labels: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray]:
    """``(each placement's (size, 2) unit positions, the graph node of every point)``. With
    ``labels`` (bundling), each group's units are seated in cluster order, the same in every copy."""
    pos, nodes = [], []
    for p, pl in enumerate(lay.placements):
        sl = graph.group_nodes(pl.group)
        x = lay.unit_x(p) if labels is None else _seated(lay.unit_x(p), labels[sl])
        pos.append(np.stack([x, np.full(x.size, float(pl.row))], 1))
        nodes.append(np.arange(sl.start, sl.stop))
    return pos, np.concatenate(nodes)


def _kept_edges(edges: Any, n_sets: int, quantile: float | None, max_edges: int) -> np.ndarray:
    """Indices of the edges to draw, weakest first (strong lines on top): at least 0.5 % of their
    edge set's largest |w|, at least ``quantile`` of its non-zero |w|, the strongest ``max_edges``."""
    keep = edges.f >= _MIN_FRACTION
    if quantile is not None:
        for blk in range(n_sets):  # one quantile per edge set, as for a chain's layers
            sel = edges.block == blk
            if sel.any():
                keep &= ~sel | (edges.f >= np.quantile(edges.f[sel], quantile))
    idx = np.flatnonzero(keep)
    if idx.size > max_edges:  # O(n) selection first, as the explorer embeds its strongest edges
        idx = idx[np.argpartition(-edges.f[idx], max_edges - 1)[:max_edges]]
    return idx[np.argsort(edges.f[idx], kind="stable")]


def _draw_nodes(ax: Axes, pos: Sequence[np.ndarray], labels: np.ndarray | None, palette: dict[int, Any],
                size: float) -> None:
    """The neurons: black without labels, else coloured by cluster (grey: no edges), with a legend."""
    xy = np.concatenate(pos)
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c="black", zorder=2, linewidths=0)
        return
    none = labels < 0
    if none.any():
        ax.scatter(xy[none, 0], xy[none, 1], s=size, c=UNCLUSTERED, zorder=2,
                   linewidths=0, label="no edges")
    for c in palette:
        sel = labels == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size * 1.6, color=palette[c], zorder=3,
                   edgecolors="black", linewidths=0.3, label=f"cluster {c}")
    ax.legend(fontsize=8, ncols=2 if len(palette) > 8 else 1, **_LEGEND_RIGHT)


def save(fig: Figure, path: str | os.PathLike, dpi: int = 200) -> Path:
    """Write ``fig`` atomically; the format follows the suffix (png, pdf, svg, ...)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        raise ModscopeError(f"{path}: unsupported figure format {fmt!r} (use png, pdf or svg)")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return write_atomic(path, lambda fh: fh.write(buf.getvalue()))


# -- result figures ------------------------------------------------------------------------------
# Sizes for a paper column: fonts stay >= 8 pt when a figure is printed at its own size.
_STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "xtick.labelsize": 8,
          "ytick.labelsize": 8, "legend.fontsize": 8, "axes.spines.top": False, "axes.spines.right": False,
          "axes.grid": False}
CATEGORY_COLORS = {"important": "#c0392b", "sig-but-small": "#e39b2d", "prunable": "#4f9a5b",
                   "not-significant": "#a5a5a5", "whole-group": "#5b7fa6"}


def _result_dict(result: Any, kind: str, required: Sequence[str]) -> dict:
    """``result.to_dict()`` or the dict itself, checked for the keys a figure needs."""
    d = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(d, Mapping):
        raise ModscopeError(f"expected a {kind} result or its JSON dict, got {type(result).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise ModscopeError(f"not a {kind} result: missing {', '.join(missing)}")
    return dict(d)


def _axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _layer_names(n_layers: int) -> list[str]:
    return ["input"] + [f"hidden {i}" for i in range(1, n_layers - 1)] + ["output"]


def shuffle_histogram(result: Any, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """Histogram of the shuffled networks' n-cuts with the trained network's n-cut as a red line.

    ``result``: a [`ScoreResult`][modscope.scoring.result.ScoreResult] or its ``to_dict()`` (with shuffles).
    The title gives the n-cut, the shuffles' mean ± std (ddof 0), z and the one-sided p.
    """
    d = _result_dict(result, "score", ("ncut", "shuffle"))
    s = d["shuffle"]
    if not s or not s.get("ncuts"):
        raise ModscopeError("the score result has no shuffles (n_shuffles = 0): no histogram to draw")
    ncuts = np.asarray(s["ncuts"], dtype=np.float64)
    x = float(d["ncut"])
    with matplotlib.rc_context(_STYLE):
        fig, ax = _axes(ax, (4.6, 3.0))
        lo, hi = min(ncuts.min(), x), max(ncuts.max(), x)
        pad = 0.05 * (hi - lo) if hi > lo else 0.01 * max(1.0, abs(hi))
        bins = np.linspace(lo - pad, hi + pad, int(np.clip(2 * np.sqrt(ncuts.size), 8, 40)) + 1)
        ax.hist(ncuts, bins=bins, color="#9ecae1", edgecolor="white",
                label=f"{ncuts.size} shuffles ({s.get('method', '?')})")
        ax.axvline(x, color=NEGATIVE, lw=2, label="trained network")
        ax.set_xlabel("n-cut (lower = more modular)")
        ax.set_ylabel("shuffled networks")
        head = f"{title}\n" if title else ""
        ax.set_title(f"{head}n-cut {x:.3f} vs {s['mean']:.3f} ± {s['std']:.3f}:  "
                     f"z = {z_text(s.get('z'), '.2f')}, p = {s['p_value']:.3g}")
        ax.legend(frameon=False)
    return fig


def cluster_sizes(result: Any, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """Each layer's neurons split by cluster, as stacked bars of the share of the layer.

    ``result``: a score result or its dict (``labels`` per graph node, ``layer_widths``,
    ``n_clusters``). Grey: neurons without edges (label -1). Tick labels give the widths.
    """
    d = _result_dict(result, "score", ("labels", "layer_widths", "n_clusters"))
    labels = np.asarray(d["labels"], dtype=np.int64)
    widths = [int(w) for w in d["layer_widths"]]
    k = int(d["n_clusters"])
    if labels.size != sum(widths):
        raise ModscopeError(f"{labels.size} labels for layers of {sum(widths)} neurons in all")
    if labels.size and labels.max() >= k:
        raise ModscopeError(f"label {labels.max()} is not below n_clusters = {k}")
    layer = np.repeat(np.arange(len(widths)), widths)
    counts = np.zeros((len(widths), k + 1))  # last column: neurons without edges
    np.add.at(counts, (layer, np.where(labels < 0, k, labels)), 1)
    share = counts / np.maximum(np.asarray(widths, dtype=np.float64)[:, None], 1)
    with matplotlib.rc_context(_STYLE):
        fig, ax = _axes(ax, (max(3.6, 0.75 * len(widths) + 2.2), 3.0))
        xs = np.arange(len(widths))
        bottom = np.zeros(len(widths))
        for c, color in enumerate(_palette(k)):
            ax.bar(xs, share[:, c], bottom=bottom, color=color, width=0.75, label=f"{c}",
                   edgecolor="white", linewidth=0.3)
            bottom += share[:, c]
        if counts[:, k].any():
            ax.bar(xs, share[:, k], bottom=bottom, color=UNCLUSTERED, width=0.75, label="no edges")
        ax.set_xticks(xs, [f"{n}\n({w})" for n, w in zip(_layer_names(len(widths)), widths, strict=True)])
        ax.set_ylabel("share of the layer's neurons")
        ax.set_ylim(0, 1)
        ax.legend(title="cluster", ncol=1 if k <= 12 else 2, **_LEGEND_RIGHT)
        ax.set_title(title or f"cluster sizes per layer (k = {k})")
    return fig


def _heatmap(data: np.ndarray, **kwargs) -> None:
    """seaborn's heatmap, without its matplotlib deprecation notice (Colormap.set_bad)."""
    import seaborn as sns

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        sns.heatmap(data, **kwargs)


def _pair_matrix(names: Sequence[str], values: Mapping[str, float | None]) -> np.ndarray:
    """``{"f|g": v}`` -> symmetric ``(K, K)`` matrix, 1 on the diagonal, NaN where undefined."""
    idx = {n: i for i, n in enumerate(names)}
    m = np.full((len(names), len(names)), np.nan)
    np.fill_diagonal(m, 1.0)
    for key, v in values.items():
        f, g = key.split("|", 1)
        if f in idx and g in idx and v is not None:
            m[idx[f], idx[g]] = m[idx[g], idx[f]] = float(v)
    return m


def mask_overlap(result: Any, *, title: str | None = None) -> Figure:
    """Four heatmaps of function masks: IoU and IoMin of every pair (all weights), IoU of each
    pair per weight matrix, and each mask's kept fraction per weight matrix.

    ``result``: a [`MaskResult`][modscope.masks.result.MaskResult] or its ``to_dict()``. Values in [0, 1];
    blank cells are undefined (an empty mask).
    """
    d = _result_dict(result, "masks", ("functions", "iou", "iomin", "kept_fraction", "layers"))
    fns = list(d["functions"])
    # the order of the functions, and natural layer order: a key-sorted JSON draws the same
    layer_names = sorted(d["layers"], key=natural_key)
    # short column names: ``layers.0.weight`` -> ``W1`` (the weights into hidden layer 1)
    cols = [f"W{i + 1}" if n.endswith("weight") else n for i, n in enumerate(layer_names)]
    pairs = [f"{a}|{b}" for i, a in enumerate(fns) for b in fns[i + 1:] if f"{a}|{b}" in d["iou"]]
    # float arrays: a missing (None) value becomes NaN, a blank cell
    per_layer = np.array([[d["layers"][ln]["iou"].get(p) for ln in layer_names] for p in pairs], dtype=float)
    kept = np.array([[d["layers"][ln]["kept_fraction"].get(f) for ln in layer_names] for f in fns],
                    dtype=float)
    kw = dict(vmin=0.0, vmax=1.0, cmap="viridis", annot=True, fmt=".2f", cbar=False,
              annot_kws={"fontsize": 8}, linewidths=0.5, linecolor="white")
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(7.2, 2.2 + 0.9 * max(len(fns), len(pairs), 2)), layout="constrained")
        FigureCanvasAgg(fig)
        axs = fig.subplots(2, 2)
        panels = (  # (axes, values, column and row labels, title); no values: one mask, no pairs
            (axs[0, 0], _pair_matrix(fns, d["iou"]), fns, fns, "IoU, all weights"),
            (axs[0, 1], _pair_matrix(fns, d["iomin"]), fns, fns, "IoMin, all weights"),
            (axs[1, 0], per_layer if pairs else None, cols, pairs, "IoU per weight matrix"),
            (axs[1, 1], kept, cols, fns, "kept fraction per weight matrix"),
        )
        for ax, values, xlabels, ylabels, name in panels:
            if values is None:
                ax.text(0.5, 0.5, "one mask: no pairs", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
            else:
                _heatmap(values, ax=ax, xticklabels=xlabels, yticklabels=ylabels, **kw)
                ax.tick_params(axis="y", rotation=0)
            ax.set_title(name)
        fig.colorbar(axs[0, 1].collections[0], ax=axs[:, 1], shrink=0.6, label="fraction")
        if title:
            fig.suptitle(title)
    return fig


def _submodule_names(subs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [f"L{s['layer']}:c{s['cluster']}" for s in subs]


def lesion_effects(result: Any, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """One bar per sub-module: the metric change when it is lesioned (lesioned - intact), coloured
    by category; black: mean ± std of the same-size random lesions; ``*``: p < alpha.

    ``result``: a [`KnockoutResult`][modscope.lesions.results.KnockoutResult] or its ``to_dict()``. MSE
    changes spanning orders of magnitude are drawn on a symmetric log axis.
    """
    d = _result_dict(result, "knockout", ("submodules", "intact_accuracy", "metric"))
    subs = d["submodules"]
    if not subs:
        raise ModscopeError("the knockout result has no sub-modules to draw")
    intact = float(d["intact_accuracy"])
    alpha = float(d.get("alpha", 0.05))
    metric = d["metric"]
    delta = np.array([s["delta"] for s in subs], dtype=np.float64)  # None -> NaN
    rand = np.array([s["random_mean"] for s in subs], dtype=np.float64) - intact
    rstd = np.array([0.0 if s["random_std"] is None else s["random_std"] for s in subs])
    n = len(subs)
    with matplotlib.rc_context(_STYLE):
        fig, ax = _axes(ax, (float(np.clip(0.24 * n + 3.2, 6.0, 14.0)), 3.4))
        xs = np.arange(n)
        colors = [CATEGORY_COLORS.get(s["category"], UNCLUSTERED) for s in subs]
        ax.bar(xs, np.nan_to_num(delta), color=colors, width=0.8)
        ax.errorbar(xs, rand, yerr=rstd, fmt="_", color="black", ms=7, lw=1, capsize=0,
                    label="random lesions (mean ± std)")
        top = np.nanmax(np.abs(np.concatenate([delta, rand + rstd, rand - rstd, [1e-12]])))
        for x, s, v in zip(xs, subs, delta, strict=True):
            if s["p_value"] < alpha and np.isfinite(v):
                ax.annotate("*", (x, v), xytext=(0, 1 if v >= 0 else -9), textcoords="offset points",
                            ha="center", fontsize=10, fontweight="bold")
        ax.axhline(0, color="black", lw=0.6)
        if metric != "accuracy" and top > 0:
            finite = np.abs(delta[np.isfinite(delta) & (delta != 0)])
            if finite.size and finite.max() / finite.min() > 100:
                ax.set_yscale("symlog", linthresh=max(top * 1e-3, 1e-12))
        for i in np.flatnonzero(np.diff([s["layer"] for s in subs])):  # dotted: between hidden layers
            ax.axvline(i + 0.5, color="#555555", lw=0.6, ls=":")
        ax.set_xticks(xs, _submodule_names(subs), rotation=90 if n > 6 else 0)
        ax.set_xlim(-0.7, n - 0.3)
        ax.set_ylabel(f"Δ {metric} (lesioned − intact)")
        ax.set_xlabel("sub-module (hidden layer : cluster)")
        from matplotlib.patches import Patch

        present = {s["category"] for s in subs}
        handles = [Patch(color=color, label=c) for c, color in CATEGORY_COLORS.items() if c in present]
        handles += ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, **_LEGEND_RIGHT)
        ax.set_title(title or f"single lesions (intact {metric} {intact:.4g})\n"
                     f"{d.get('n_random', '?')} random lesions each, * p < {alpha:g}")
    return fig


def double_lesion(result: Any, ax: Axes | None = None, *, title: str | None = None) -> Figure:
    """Heatmap of the pair interactions ``D_ij - (D_i + D_j)`` (D = damage, the metric's loss):
    red above 0 (together worse than apart), blue below. Diagonal blank.

    ``result``: a knockout result or its dict, run with pairs.
    """
    d = _result_dict(result, "knockout", ("submodules",))
    pairs = d.get("pairs")
    if not pairs:
        raise ModscopeError("the knockout result has no pairs: run knockout with pairs=True (--pairs)")
    subs = d["submodules"]
    idx = {(s["layer"], s["cluster"]): i for i, s in enumerate(subs)}
    n = len(subs)
    m = np.full((n, n), np.nan)
    for p in pairs:
        i, j = idx[(p["layer_a"], p["cluster_a"])], idx[(p["layer_b"], p["cluster_b"])]
        if p["interaction"] is not None:
            m[i, j] = m[j, i] = p["interaction"]
    lim = (float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 0.0) or 1.0
    names = _submodule_names(subs)
    with matplotlib.rc_context(_STYLE):
        side = float(np.clip(0.2 * n + 2.2, 3.6, 6.5))
        fig, ax = _axes(ax, (side + 1.0, side))
        _heatmap(m, ax=ax, cmap="RdBu_r", center=0.0, vmin=-lim, vmax=lim,
                    xticklabels=names, yticklabels=names, square=True, annot=n <= 8, fmt=".2g",
                    annot_kws={"fontsize": 7}, cbar_kws={"label": "interaction (damage)"})
        for l in np.flatnonzero(np.diff([s["layer"] for s in subs])):
            ax.axvline(l + 1, color="#333333", lw=0.8)
            ax.axhline(l + 1, color="#333333", lw=0.8)
        ax.set_title(title or "double lesions: D(i and j) − (D(i) + D(j))")
    return fig
