"""Figures for papers. Each function draws into a ``matplotlib.figure.Figure`` on an Agg canvas
(no pyplot, no global backend switch, no display needed); :func:`save` writes it atomically.

``network``: the BIMT picture (spec §6). Neurons at their positions, each connection a line
of width proportional to ``|w| / max |w|`` of its layer, blue for positive weights and red
for negative ones; neurons optionally coloured by cluster.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import nn

from ._atomic import write_atomic
from .bimt import layout
from .checkpoint import Checkpoint, load_checkpoint
from .errors import ModscopeError
from .models import linear_layers

POSITIVE = "#1f5fbf"  # blue
NEGATIVE = "#d62728"  # red
UNCLUSTERED = "#9a9a9a"
_MIN_FRACTION = 0.005  # lines thinner than this fraction of the layer's widest are invisible


def _geometry(source) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Weights ``(n_{l+1}, n_l)`` per layer and node coordinates ``(n_l, d)`` per layer, both in
    graph order (inputs / outputs in task order, hidden neurons in position order)."""
    if isinstance(source, str | os.PathLike):
        source = load_checkpoint(source)
    if isinstance(source, Checkpoint):
        sd = source.task_ordered_state_dict()
        n = len(source.architecture.widths) - 1
        weights = [sd[f"layers.{i}.weight"].double().numpy() for i in range(n)]
        widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
        bimt = source.bimt or {}
        coords = bimt.get("coordinates")
        if coords is None:
            return weights, [c.numpy() for c in layout(widths)]
        coords = [torch.as_tensor(c).double() for c in coords]
        perms = bimt.get("permutations")
        if perms:  # position of each task-ordered input / output
            coords[0] = coords[0][torch.argsort(torch.as_tensor(perms[0]))]
            coords[-1] = coords[-1][torch.argsort(torch.as_tensor(perms[-1]))]
        return weights, [c.numpy() for c in coords]
    if isinstance(source, nn.Module):
        layers = linear_layers(source)
        if not layers:
            raise ModscopeError("the model has no nn.Linear layers to draw")
        weights = [layer.weight.detach().cpu().double().numpy() for layer in layers]
        widths = [weights[0].shape[1]] + [w.shape[0] for w in weights]
        return weights, [c.numpy() for c in layout(widths)]
    raise ModscopeError(f"cannot draw a {type(source).__name__}: give a checkpoint or a model")


def _project(c: np.ndarray, level: float) -> np.ndarray:
    """Layer coordinates -> 2-D drawing coordinates; a 2-D layer becomes an oblique plane."""
    if c.shape[1] == 1:
        return np.stack([c[:, 0], np.full(len(c), level)], 1)
    depth = c[:, 1] - 0.5  # a grid is a plane seen obliquely: rows recede up and right
    return np.stack([0.06 + 0.88 * c[:, 0] + 0.12 * depth, level + 0.55 * depth], 1)


def _palette(n: int) -> list:
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def network(source: Checkpoint | nn.Module | str | os.PathLike,
            labels: Sequence[int] | np.ndarray | None = None, ax: Axes | None = None, *,
            max_width: float = 2.5, title: str | None = None) -> Figure:
    """Draw a layered network: neurons at their (BIMT) positions, connections as lines.

    ``source``: a :class:`Checkpoint` (BIMT coordinates and permutations honoured), its path,
    or a model (plain line layout: ``x_j = (2j + 1) / (2n)``, one row per layer).
    ``labels``: one cluster per graph node (input, hidden, output layers; inputs and
    outputs in task order, as :func:`modscope.io.load_graph` orders them), -1 = none.
    Line width is ``max_width * |w| / max |w|`` points within each layer; lines below
    0.5 % of the layer's widest are left out. Returns the figure (``ax.figure`` if given).
    """
    weights, coords = _geometry(source)
    n_nodes = sum(len(c) for c in coords)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n_nodes,):
            raise ModscopeError(
                f"labels must have one entry per graph node ({n_nodes}), got shape {labels.shape}"
            )
    n_layers = len(coords)
    if ax is None:
        fig = Figure(figsize=(7.0, max(2.5, 1.3 * n_layers)), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    pos = [_project(c, float(l)) for l, c in enumerate(coords)]

    for l, w in enumerate(weights):
        a = np.abs(w)
        top = a.max() if a.size else 0.0
        if top == 0:
            continue
        frac = a / top
        k, j = np.nonzero(frac >= _MIN_FRACTION)
        f = frac[k, j]
        order = np.argsort(f)  # strong lines on top
        k, j, f = k[order], j[order], f[order]
        segs = np.stack([pos[l][j], pos[l + 1][k]], 1)
        rgba = np.array([matplotlib.colors.to_rgba(POSITIVE), matplotlib.colors.to_rgba(NEGATIVE)])
        colors = rgba[(w[k, j] < 0).astype(int)]
        colors[:, 3] = 0.1 + 0.9 * f  # weak lines fade, so dense layers stay readable
        ax.add_collection(LineCollection(segs, linewidths=max_width * f, colors=colors,
                                         capstyle="round", zorder=1))

    size = float(np.clip(1500.0 / max(len(c) for c in coords), 4, 40))
    xy = np.concatenate(pos)
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, c="black", zorder=2, linewidths=0)
    else:
        clusters = sorted(int(c) for c in set(labels.tolist()) if c >= 0)
        colors = dict(zip(clusters, _palette(len(clusters)), strict=True))
        none = labels < 0
        if none.any():
            ax.scatter(xy[none, 0], xy[none, 1], s=size, c=UNCLUSTERED, zorder=2,
                       linewidths=0, label="no edges")
        for c in clusters:
            sel = labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=size * 1.6, color=colors[c], zorder=3,
                       edgecolors="black", linewidths=0.3, label=f"cluster {c}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)

    names = ["input"] + [f"hidden {i}" for i in range(1, n_layers - 1)] + ["output"]
    ax.set_yticks(range(n_layers), names)
    ax.set_xticks([])
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.5, n_layers - 0.5)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    return fig


def save(fig: Figure, path: str | os.PathLike, dpi: int = 200) -> Path:
    """Write ``fig`` atomically; the format follows the suffix (png, pdf, svg, ...)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in fig.canvas.get_supported_filetypes():
        raise ModscopeError(f"{path}: unsupported figure format {fmt!r} (use png, pdf or svg)")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return write_atomic(path, lambda fh: fh.write(buf.getvalue()))
