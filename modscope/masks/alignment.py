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
from it: ``graph`` is the traced network (``trace_network(model, x)``; its
`modscope.graphs.tracing.incidence.ParameterMap` ``.parameters``, also ``result.units`` of masks
trained with an example input; exact, from the trace), or the traced `WeightGraph` itself (its
blocks' parameter names and links, read in torch's ``(out, in)`` layout; see
`modscope.graphs.tracing.incidence.graph_parameter_map`). A plain stack's masks are read the same
way, from their shapes (`modscope.graphs.tracing.incidence.chain_parameter_map`). Conv kernels
count each kept kernel entry; an LSTM's stacked gate rows count for their hidden unit. The null
permutes labels within each unit group; ``hidden_only`` keeps the units of groups that some
layer writes and another reads (not the network's inputs and outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..data.functions import CONTROL
from ..errors import ModscopeError
from ..graphs.network import Network
from ..graphs.tracing.incidence import ParameterMap, chain_parameter_map, graph_parameter_map
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
        d = {**asdict(self), "clusters": [int(c) for c in self.clusters],  # asdict copies the rest
             "share": {str(c): v for c, v in self.share.items()},
             "dominant": {str(c): v for c, v in self.dominant.items()}}
        if self.groups is None:
            del d["groups"]
        return d

    def to_frame(self):
        """One row per (cluster, function): share of kept incident weights, dominant neurons."""
        import pandas as pd

        return pd.DataFrame([
            {"cluster": c, "function": f, "share": self.share[c][f], "dominant_neurons": self.dominant[c][f]}
            for c in self.clusters for f in self.functions
        ])


def _layer_masks(m: Any) -> list[np.ndarray]:
    out = []
    for t in m.values() if isinstance(m, Mapping) else m:
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if a.ndim < 2:
            raise ModscopeError(f"a layer mask must be (out, in[, ...]), got shape {a.shape}")
        out.append(a.astype(bool))
    return out


def _chain(masks: Sequence[Any]) -> tuple[ParameterMap, list[dict[str, np.ndarray]]]:
    """The `ParameterMap` of the plain feed-forward stack the layer masks describe, and each
    function's masks by the map's layer names."""
    layers = [_layer_masks(f) for f in masks]
    first = [m.shape for m in layers[0]]
    if any([m.shape for m in f] != first for f in layers):
        raise ModscopeError("all functions' masks must have the same layers and shapes")
    units = chain_parameter_map(first)
    return units, [dict(zip(units.graph.names, f, strict=True)) for f in layers]


def incident_counts(masks: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
    """``(F, n_nodes)`` kept incident weights per function and node, and the layer widths.

    ``masks[f][l]``: bool ``(out_l, in_l[, ...])`` of Linear/Conv layer ``l``; extra (kernel)
    dimensions count each kept entry. Tensors, arrays and ``{name: mask}`` dicts are accepted.
    """
    units, named = _chain(masks)
    return np.stack([units.node_counts(m) for m in named]), list(units.graph.sizes)


def _parameter_map(graph: Any, masks: Sequence[Any]) -> tuple[ParameterMap, list[Any]]:
    """The map of units the masks are counted on: ``graph`` given (a `ParameterMap`, a traced
    network's ``.parameters``, or a `WeightGraph` read in torch's layout), else the plain stack the
    masks' shapes describe; and the masks as that map names them."""
    if graph is None:
        return _chain(masks)
    if not all(isinstance(m, Mapping) for m in masks):
        raise ModscopeError("on a unit graph, each function's masks must be a {parameter name: mask} dict")
    units = graph if isinstance(graph, ParameterMap) else getattr(graph, "parameters", None)
    if isinstance(units, ParameterMap):
        return units, list(masks)
    if not hasattr(graph, "links"):
        raise ModscopeError(
            f"graph must be a traced network, a ParameterMap or a WeightGraph, got {type(graph).__name__}"
        )
    shapes = {n: tuple(np.shape(t)) for n, t in masks[0].items() if len(np.shape(t)) >= 2}
    return graph_parameter_map(graph, shapes), list(masks)


def _check(labels: Any, masks: Any, functions: Sequence[str] | None, n_null: int) -> tuple:
    """``(labels, {function: masks}, functions)`` checked."""
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
    return labels, mask_map, list(functions)


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
    a traced network (``trace_network(model, x)``), its `ParameterMap` or its `WeightGraph`
    (default: the ``result.units`` of a `MaskResult` trained with an example input, else a plain
    feed-forward stack).
    """
    from sklearn.metrics import adjusted_mutual_info_score

    if isinstance(graph, Network):  # one network object: the trace's parameter map, else its graph
        graph = graph.parameters if graph.parameters is not None else graph.graph
    labels, mask_map, functions = _check(labels, masks, functions, n_null)
    if graph is None and isinstance(masks, MaskResult) and masks.units is not None:
        graph = masks.units
    units, named = _parameter_map(graph, [mask_map[f] for f in functions])
    counts = np.stack([units.node_counts(m) for m in named])
    if labels.shape[0] != counts.shape[1]:
        raise ModscopeError(
            f"{labels.shape[0]} labels for a unit graph of {counts.shape[1]} nodes (group sizes "
            f"{list(units.graph.sizes)}): one label per node"
        )
    layer = units.group_of()
    sel = (labels >= 0) & (counts.sum(0) > 0)
    if hidden_only:
        sel &= units.hidden_groups()[layer]
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
    return Alignment(
        functions=list(functions), clusters=clusters, share=share, dominant=dominant, ami=ami,
        **_compare(ami, _null(lab, dom, lay, n_null, seed)), n_null=int(n_null), n_neurons=int(idx.size),
        hidden_only=hidden_only, seed=int(seed),
        groups=None if graph is None else [units.graph.group_names[g] for g in np.unique(lay)],
    )


def _null(lab: np.ndarray, dom: np.ndarray, lay: np.ndarray, n_null: int, seed: int) -> np.ndarray:
    """``(n_null,)`` AMI of the dominant functions with cluster labels permuted within each unit
    group (same cluster sizes per group)."""
    from sklearn.metrics import adjusted_mutual_info_score

    rng = np.random.default_rng(np.random.SeedSequence(int(seed)))  # n_null = 0: an empty null
    # Sorting random keys offset by 2 * layer permutes positions within each layer (unit group) only.
    order = np.argsort(lay, kind="stable")
    lab_s, dom_s, lay_s = lab[order], dom[order], lay[order]
    perms = np.argsort(lay_s[None, :] * 2.0 + rng.random((n_null, lab.size)), axis=1)
    return np.array([adjusted_mutual_info_score(lab_s[p_], dom_s) for p_ in perms])


def _compare(ami: float, null: np.ndarray) -> dict[str, float | None]:
    """The observed AMI against its null: mean, std, z and one-sided p (None without a null)."""
    if null.size == 0:
        return {"null_mean": None, "null_std": None, "z": None, "p_value": None}
    null_mean = float(null.mean())
    null_std = float(null.std(ddof=1)) if null.size > 1 else None
    z = (ami - null_mean) / null_std if null_std else None
    return {"null_mean": null_mean, "null_std": null_std, "z": None if z is None else float(z),
            "p_value": p_value(ami, null, larger_is_extreme=True, tol=1e-12)}
