"""Structure meets function: do spectral clusters line up with the masks' functional subnetworks?

Inputs are plain arrays so that any clustering can be compared with any set of masks:

- ``labels``: one cluster label per weight-graph node in graph order (input layer, hidden
  layers, output layer, each in index order; [spec §1][spec-1]), ``-1`` for removed (degree-0) nodes.
  A [`Partition`][modscope.clustering.spectral.Partition] (anything with ``.labels``) works too.
- ``masks``: ``{function: per-layer bool masks}``, the layers in forward order with torch's
  ``(out, in[, kh, kw])`` shape, as a ``{parameter name: tensor}`` dict (e.g. one entry of
  [`modscope.masks.load_masks()`][modscope.masks.result.load_masks]) or a list; or a
  [`MaskResult`][modscope.masks.result.MaskResult].

For every neuron and function, the *incident kept weights* are the weights into and out of
the neuron that the function's mask keeps (conv kernels count each kept kernel entry). A
neuron's *dominant function* is the one keeping most of them (ties: the first function in
order; neurons no mask touches have none and are left out). Measures:

- ``share[c][f]``: of all kept incident weights of the neurons of cluster ``c``, the fraction
  kept by function ``f`` (rows sum to 1);
- ``ami``: adjusted mutual information (scikit-learn) between the neurons' cluster labels and
  their dominant functions;
- a null: cluster labels permuted within each layer (same cluster sizes per layer), ``n_null``
  seeded draws; one-sided ``p_value = (#{null >= ami} + 1) / (n_null + 1)`` (`modscope.stats.p_value`)
  and ``z``.

Any traced network (``graph=``): ``labels`` are one per node of its unit graph (the graph
`modscope.score` clusters, e.g. a ``Partition`` of ``load_graph(model, example_input=x)``), and a
unit's incident kept weights are the kept entries of the parameters that write into it and read
from it: ``graph`` is a `modscope.masks.units.UnitMap` (``unit_map(model, x)``, or
``result.units`` of masks trained with an example input; exact, from the trace), or the traced
`WeightGraph` itself (its blocks' parameter names and links, read in torch's ``(out, in)``
layout; see `modscope.masks.units.unit_map_from_graph`). Conv kernels count each kept kernel
entry; an LSTM's stacked gate rows count for their hidden unit. The null permutes labels within
each unit group; ``hidden_only`` keeps the units of groups that some layer writes and another
reads (not the network's inputs and outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.functions import CONTROL
from ..errors import ModscopeError
from ..graphs.network import Network
from ..stats import p_value
from .result import MaskResult

__all__ = ["Alignment", "alignment", "incident_counts"]


@dataclass
class Alignment:
    """How spectral clusters relate to functional subnetworks (see the module docstring)."""

    functions: list[str]
    clusters: list[int]
    share: dict[int, dict[str, float | None]]
    dominant: dict[int, dict[str, int]]  # neurons of cluster c whose dominant function is f
    ami: float
    null_mean: float | None
    null_std: float | None
    z: float | None
    p_value: float | None
    n_null: int
    n_neurons: int
    hidden_only: bool
    seed: int
    groups: list[str] | None = None  # graph mode: the unit groups whose units were compared

    def to_dict(self) -> dict[str, Any]:
        return {
            "functions": list(self.functions),
            "clusters": [int(c) for c in self.clusters],
            "share": {str(c): v for c, v in self.share.items()},
            "dominant": {str(c): v for c, v in self.dominant.items()},
            "ami": self.ami,
            "null_mean": self.null_mean,
            "null_std": self.null_std,
            "z": self.z,
            "p_value": self.p_value,
            "n_null": self.n_null,
            "n_neurons": self.n_neurons,
            "hidden_only": self.hidden_only,
            "seed": self.seed,
            **({"groups": list(self.groups)} if self.groups is not None else {}),
        }

    def to_frame(self):
        """One row per (cluster, function): share of kept incident weights, dominant neurons."""
        import pandas as pd

        return pd.DataFrame(
            [
                {"cluster": c, "function": f, "share": self.share[c][f],
                 "dominant_neurons": self.dominant[c][f]}
                for c in self.clusters
                for f in self.functions
            ]
        )


def _layer_masks(m: Any) -> list[np.ndarray]:
    items = list(m.values()) if isinstance(m, Mapping) else list(m)
    out = []
    for t in items:
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if a.ndim < 2:
            raise ModscopeError(f"a layer mask must be (out, in[, ...]), got shape {a.shape}")
        out.append(a.astype(bool))
    return out


def incident_counts(masks: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
    """``(F, n_nodes)`` kept incident weights per function and node, and the layer widths.

    ``masks[f][l]``: bool ``(out_l, in_l[, ...])`` of Linear/Conv layer ``l``; extra (kernel)
    dimensions are summed over. Tensors, arrays and ``{name: mask}`` dicts are accepted.
    """
    masks = [_layer_masks(f) for f in masks]
    first = masks[0]
    widths = [first[0].shape[1]] + [m.shape[0] for m in first]
    for f_masks in masks:
        if [m.shape for m in f_masks] != [m.shape for m in first]:
            raise ModscopeError("all functions' masks must have the same layers and shapes")
    for li in range(1, len(first)):
        if first[li].shape[1] != first[li - 1].shape[0]:
            raise ModscopeError(
                f"mask layer {li} has {first[li].shape[1]} inputs but layer {li - 1} "
                f"has {first[li - 1].shape[0]} outputs: not a plain feed-forward stack"
            )
    offsets = np.concatenate([[0], np.cumsum(widths)])
    counts = np.zeros((len(masks), int(offsets[-1])), dtype=np.int64)
    for fi, f_masks in enumerate(masks):
        for li, m in enumerate(f_masks):
            m2 = m.reshape(m.shape[0], m.shape[1], -1).sum(2)  # (out, in) kept entries
            counts[fi, offsets[li] : offsets[li + 1]] += m2.sum(0)  # outgoing of layer li nodes
            counts[fi, offsets[li + 1] : offsets[li + 2]] += m2.sum(1)  # incoming of li + 1
    return counts, widths


def alignment(
    labels: Any,
    masks: Any,
    *,
    functions: Sequence[str] | None = None,
    hidden_only: bool = True,
    n_null: int = 1000,
    seed: int = 0,
    graph: Any = None,
) -> Alignment:
    """Relate a clustering of the weight graph to function masks (see the module docstring).

    ``functions``: which masks (default: all but ``control``). ``hidden_only``: use hidden
    neurons only (input and output neurons are usually needed by every function). ``graph``:
    a traced network's `UnitMap` or `WeightGraph` (default: the ``result.units`` of a
    `MaskResult` trained with an example input, else a plain feed-forward stack).
    """
    from sklearn.metrics import adjusted_mutual_info_score

    if isinstance(graph, Network):  # one network object: its unit graph
        graph = graph.graph
    labels = np.asarray(getattr(labels, "labels", labels))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ModscopeError("labels must be a 1-D integer array, one per graph node")
    mask_map = masks.masks if isinstance(masks, MaskResult) else masks
    if not isinstance(mask_map, Mapping) or not mask_map:
        raise ModscopeError("masks must be a non-empty {function: layer masks} mapping")
    if functions is None:
        functions = [f for f in mask_map if f != CONTROL] or list(mask_map)
    unknown = [f for f in functions if f not in mask_map]
    if unknown:
        raise ModscopeError(f"no masks for function(s) {', '.join(map(str, unknown))}")
    if len(functions) < 1:
        raise ModscopeError("need at least one function")
    if n_null < 0:
        raise ModscopeError(f"n_null must be >= 0, got {n_null}")
    if graph is None and isinstance(masks, MaskResult) and masks.units is not None:
        graph = masks.units
    group_names = None
    if graph is None:
        counts, widths = incident_counts([_layer_masks(mask_map[f]) for f in functions])
        if labels.shape[0] != counts.shape[1]:
            raise ModscopeError(
                f"{labels.shape[0]} labels for a graph of {counts.shape[1]} nodes (widths {widths})"
            )
        layer = np.repeat(np.arange(len(widths)), widths)
        hidden = (layer > 0) & (layer < len(widths) - 1)
    else:
        counts, layer, hidden, group_names = _graph_counts(graph, [mask_map[f] for f in functions])
        if labels.shape[0] != counts.shape[1]:
            raise ModscopeError(
                f"{labels.shape[0]} labels for a unit graph of {counts.shape[1]} nodes: one label per node"
            )
    sel = (labels >= 0) & (counts.sum(0) > 0)
    if hidden_only:
        sel &= hidden
    idx = np.flatnonzero(sel)
    if idx.size == 0:
        raise ModscopeError("no neuron is both clustered and touched by a mask")
    lab, lay = labels[idx], layer[idx]
    dom = counts[:, idx].argmax(0)  # argmax: ties go to the first function

    clusters = sorted(int(c) for c in np.unique(lab))
    share, dominant = {}, {}
    for c in clusters:
        tot = counts[:, idx[lab == c]].sum(1)
        s = tot.sum()
        share[c] = {f: (float(tot[i] / s) if s > 0 else None) for i, f in enumerate(functions)}
        dc = np.bincount(dom[lab == c], minlength=len(functions))
        dominant[c] = {f: int(dc[i]) for i, f in enumerate(functions)}

    ami = float(adjusted_mutual_info_score(lab, dom))
    null_mean = null_std = z = p = None
    if n_null > 0:
        rng = np.random.default_rng(np.random.SeedSequence(int(seed)))
        # Sorting random keys offset by 2 * layer permutes positions within each layer (unit group) only.
        order = np.argsort(lay, kind="stable")
        lab_s, dom_s, lay_s = lab[order], dom[order], lay[order]
        perms = np.argsort(lay_s[None, :] * 2.0 + rng.random((n_null, idx.size)), axis=1)
        null = np.array([adjusted_mutual_info_score(lab_s[p_], dom_s) for p_ in perms])
        null_mean = float(null.mean())
        null_std = float(null.std(ddof=1)) if n_null > 1 else None
        z = (ami - null_mean) / null_std if null_std else None
        p = p_value(ami, null, larger_is_extreme=True, tol=1e-12)
    return Alignment(
        functions=list(functions),
        clusters=clusters,
        share=share,
        dominant=dominant,
        ami=ami,
        null_mean=null_mean,
        null_std=null_std,
        z=None if z is None else float(z),
        p_value=p,
        n_null=int(n_null),
        n_neurons=int(idx.size),
        hidden_only=hidden_only,
        seed=int(seed),
        groups=None if group_names is None else [group_names[g] for g in np.unique(lay)],
    )


def _graph_counts(graph: Any, masks: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(F, n_nodes)`` kept incident weights per function and unit of a traced network, each
    node's unit group, which nodes are hidden (their group written by one layer and read by
    another), and the groups' names."""
    from .units import UnitMap, unit_map_from_graph

    for m in masks:
        if not isinstance(m, Mapping):
            raise ModscopeError(
                "on a unit graph, each function's masks must be a {parameter name: mask} dict"
            )
    if not isinstance(graph, UnitMap):
        if not hasattr(graph, "links"):
            raise ModscopeError(f"graph must be a UnitMap or a WeightGraph, got {type(graph).__name__}")
        shapes = {n: tuple(np.shape(t)) for n, t in masks[0].items() if len(np.shape(t)) >= 2}
        graph = unit_map_from_graph(graph, shapes)
    counts = np.stack([graph.node_counts(m) for m in masks])
    g = graph.graph
    layer = graph.group_of()
    written = {d for _, d in g.links}
    read = {src for src, _ in g.links}
    hidden_groups = np.array([i in written and i in read for i in range(len(g.sizes))])
    return counts, layer, hidden_groups[layer], list(g.group_names)
