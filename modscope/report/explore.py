"""``modscope explore``: one self-contained, offline HTML page to look at a network's modules.

[`explore()`][modscope.report.explore.explore] takes the ``--json`` results of ``score``,
``blocks``, ``knockout``, ``masks`` and ``train`` on one network (paths, dicts or the result
objects themselves) and builds a page
drawn by Plotly (its JavaScript bundled in the page, so it opens from disk with no server and no
network): the network in layers with units coloured by cluster and edges by |w| (a threshold
slider; pan and zoom), a panel per cluster (units per group, n-cut term, knockout effect on every
function against the random lesions, IoU with each function's mask) and per unit (incident
weights, cluster, mask membership), the null histogram of every partition given, each function's
mask on the drawing, and the transformer blocks' table linked to each block's drawing.

The page's data is the results' JSON plus what is computed here from the network's graph: the
results do not hold the edges, so the graph is re-read from the file each result names under
``source`` (added to the CLI's ``--json`` in 0.4.0: path, sha256 and reading flags) or from
``network=``. Results of different networks (another sha256, another number of units) are
refused. Large graphs keep the page small and fast: the strongest ``max_edges`` edges are
embedded for single-edge drawing (on zoom or a high threshold), and every edge is summed into
aggregate edges between (unit group, cluster) pairs, drawn when too many single edges are in view.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._version import __version__
from ..errors import ModscopeError
from ..runtime.atomic import write_text
from ..runtime.hashing import file_sha256
from .html import _SIGNATURES as _REPORT_SIGNATURES
from .html import kind_by_keys, read_result
from .layout import Edges, edge_list, group_name, unit_layout

__all__ = [
    "DEFAULT_MAX_EDGES",
    "Explorer",
    "explore",
    "explore_kind",
    "load_explore_result",
    "page_data",
    "render_page",
]

DEFAULT_MAX_EDGES = 1_000_000  # single edges embedded (10 bytes each); the rest only in aggregates
_SIGNATURES = {  # the keys by which a result's kind is recognised: the report's kinds, then these
    **_REPORT_SIGNATURES,
    "blocks": ("blocks", "method"),
    "train": ("train_config", "steps"),  # train --task
    "train_model": ("example_input", "metric_name", "steps"),  # train --model
}
_PAGE = Path(__file__).with_name("explore_page")  # explore.html (template), explore.js, explore.css
_PLOTLY = "plotly-basic.min.js"  # plotly.js-basic-dist-min 4.1.1 (npm), MIT: PLOTLY-LICENSE.txt


def explore_kind(d: Any) -> str:
    """``"score"``, ``"blocks"``, ``"masks"``, ``"knockout"`` or ``"train"``, from a result dict's keys."""
    kind = kind_by_keys(d, _SIGNATURES, "the --json of `score`, `blocks`, `knockout`, `masks` or `train`")
    return "train" if kind == "train_model" else kind


def load_explore_result(path: str | os.PathLike) -> tuple[str, dict]:
    """Read one result JSON file: ``(kind, dict)``; one-line `ModscopeError` on a bad file."""
    return read_result(path, explore_kind)


@dataclass
class _Item:
    name: str
    kind: str
    d: dict
    graph: Any = None  # a ScoreResult's own graph (Python API)
    blocks: Any = None  # a BlockScores' MLPBlock list (Python API)


def _as_item(obj: Any, i: int) -> _Item:
    """A result path, dict or object as ``(name, kind, dict)``, with the keys the CLI adds."""
    if isinstance(obj, str | os.PathLike):
        kind, d = load_explore_result(obj)
        return _Item(Path(obj).name, kind, d)
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str):  # (name, result)
        return replace(_as_item(obj[1], i), name=obj[0])
    if isinstance(obj, Mapping):
        return _Item(f"result {i + 1}", explore_kind(obj), dict(obj))
    if hasattr(obj, "to_dict"):
        d = dict(obj.to_dict())
        item = _Item(f"{type(obj).__name__} {i + 1}", explore_kind(d), d)
        if item.kind == "score":
            item.graph = getattr(obj, "graph", None)
        elif item.kind == "knockout":
            labels = getattr(obj, "labels", None)
            if labels is not None:
                d["lesioned_labels"] = [int(v) for v in np.asarray(labels)]
            d["random_metrics"] = [np.asarray(s.random_metric, dtype=float).tolist() for s in obj.submodules]
        elif item.kind == "masks":
            from ..masks.bits import encode_masks

            d["weight_masks"] = encode_masks(obj.masks)
        elif item.kind == "blocks":
            item.blocks = list(getattr(obj, "blocks", []) or [])
            if getattr(obj, "whole", None) is not None:
                item.graph = obj.whole.graph
        return item
    raise ModscopeError(
        f"cannot explore a {type(obj).__name__}: pass result JSON paths, dicts or result objects")


# -- the network ------------------------------------------------------------------------------------
def _read_flags(read: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`load_graph` keywords from a ``source.read`` record."""
    if read.get("model"):
        raise ModscopeError(f"{where}: the network was read through your module (--model {read['model']}); "
                            "in Python pass network=modscope.load_graph(module, example_input=...)")
    if read.get("graph", "weights") != "weights":
        raise ModscopeError(f"{where}: a result on the {read['graph']} graph; explore draws weight graphs")
    kw: dict[str, Any] = {k: read[k] for k in ("layout", "kernel_norm") if read.get(k)}  # as recorded
    if read.get("layers"):
        kw["layers"] = [s.strip() for s in str(read["layers"]).split(",") if s.strip()]
    if read.get("flatten"):
        kw["flatten"] = str(read["flatten"]).replace("-", "_")
    if read.get("map_shape"):
        h, w = (int(s) for s in str(read["map_shape"]).split(","))
        kw["map_shape"] = (h, w)
    if read.get("bn_eps") is not None:
        kw["bn_eps"] = float(read["bn_eps"])
    return kw


def _sources(items: Sequence[_Item]) -> tuple[list[tuple[str, Mapping]], dict[str, str]]:
    """``([(result name, source record)], {sha256: first result naming it})``; refuses results
    that name different network files."""
    sources = [(it.name, it.d["source"]) for it in items if isinstance(it.d.get("source"), Mapping)]
    digests: dict[str, str] = {}
    for name, src in sources:
        if src.get("sha256"):
            digests.setdefault(src["sha256"], name)
    if len(digests) > 1:
        (a_sha, a), (b_sha, b) = list(digests.items())[:2]
        raise ModscopeError(
            f"{a} and {b} are results of different networks (file sha256 {a_sha[:12]}… vs {b_sha[:12]}…): "
            "explore one network at a time")
    return sources, digests


def _given_file(network: str | os.PathLike, digests: Mapping[str, str]) -> Path:
    """The network file given beside the results: it exists, and is the file they name (sha256)."""
    path = Path(network)
    if not path.exists():
        raise ModscopeError(f"{path}: no such file")
    if digests and path.is_file() and file_sha256(path) not in digests:
        raise ModscopeError(f"{path} is not the network of {next(iter(digests.values()))} (another sha256): "
                            "pass the file the results were computed on")
    return path


def _blocks_only(items: Sequence[_Item], network: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(label, network numbers, page parts)`` of ``blocks`` results alone: the per-block table and
    drawings, no whole graph."""
    sources, digests = _sources(items)
    path = None
    if isinstance(network, str | os.PathLike):
        path = _given_file(network, digests)
    elif sources and Path(sources[0][1].get("path", "")).exists():
        path = Path(sources[0][1]["path"])
    it = next(it for it in items if it.kind == "blocks")
    label = path.name if path is not None else it.name
    empty = {"n": 0, "total": 0, "u": "", "v": "", "q": "", "block": "", "block_names": []}
    network = {"reading": "its transformer MLP blocks", "n_nodes": 0, "n_edges": 0, "widths": []}
    blocks = _blocks_page(it, None if path is None else str(path))
    parts = dict(groups=[], x="", y="", edges=empty, partitions=[], masks=None, blocks=blocks, train=None)
    return label, network, parts


def _blocks_page(it: _Item, net_path: str | None) -> dict[str, Any]:
    mlp = it.blocks
    if mlp is None and net_path is not None:
        from ..graphs.transformer import mlp_blocks

        with contextlib.suppress(ModscopeError):  # a file mlp_blocks cannot read: rows without drawings
            mlp = mlp_blocks(net_path)
    rows = []
    for i, b in enumerate(it.d["blocks"]):
        blk = mlp[i] if mlp is not None and i < len(mlp) and mlp[i].name == b.get("block") else None
        rows.append(_block_view(blk, b))
    return {"name": it.name, "method": it.d.get("method"), "rows": rows}


def _network(items: Sequence[_Item], network: Any) -> tuple[Any, str | None, str]:
    """``(graph, path or None, label)``: the one network all results are of."""
    from ..graphs.load import load_graph
    from ..graphs.weight_graph import WeightGraph

    sources, digests = _sources(items)
    if network is not None:
        if isinstance(network, WeightGraph):
            return network, None, "the graph given"
        if isinstance(network, str | os.PathLike):
            path = _given_file(network, digests)
            read = next((src.get("read") or {} for _, src in sources), {})
            return load_graph(path, **_read_flags(read, str(path))), str(path.resolve()), path.name
        return load_graph(network), None, type(network).__name__
    for it in items:
        if it.graph is not None:
            return it.graph, None, it.name
    for name, src in sources:
        path = Path(src.get("path", ""))
        if not path.exists():
            raise ModscopeError(
                f"{name}: its network {path} is gone; pass the network file too (modscope explore NET.pt ...)"
            )
        if src.get("sha256") and path.is_file() and file_sha256(path) != src["sha256"]:
            raise ModscopeError(f"{name}: {path} has changed since the result was computed (another sha256)")
        return load_graph(path, **_read_flags(src.get("read") or {}, name)), str(path), path.name
    raise ModscopeError("the results do not name their network (no `source` key): pass the network file too "
                        "(modscope explore NET.pt RESULTS...)")


def _layout(graph: Any) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Groups as rows (side by side within a row, span by sqrt(size)); units evenly along their group."""
    lay = unit_layout(graph)
    groups = [
        {"name": group_name(graph, p.group), "size": int(graph.sizes[p.group]),
         "offset": int(graph.offsets[p.group]), "row": p.row, "x0": round(p.x0, 5), "x1": round(p.x1, 5)}
        for p in lay.placements
    ]
    x, y = lay.node_xy()
    return groups, x, y


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def _mask_kept(graph: Any, edges: Edges, masks: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[dict, list]:
    """``({function: (n_edges,) bool kept}, [mask parameters that match no block of the graph])``.

    A mask matches a block of the same parameter name whose matrix it shapes (``out x in``, its
    transpose for ``in x out`` layouts, or a kernel's leading ``out x in`` with any kept weight of
    the kernel slice keeping the edge)."""
    kept: dict[str, np.ndarray] = {}
    unmatched: set[str] = set()
    starts = np.concatenate([[0], np.cumsum(np.bincount(edges.block, minlength=len(graph.weights)))])
    for f, per in masks.items():
        out = np.zeros(edges.u.size, dtype=bool)
        for name, m in per.items():
            blocks = [b for b, n in enumerate(graph.names) if n == name]
            if not blocks:
                unmatched.add(name)
                continue
            for b in blocks:
                w = graph.weights[b]
                mm = m.reshape(m.shape[0], m.shape[1], -1).any(axis=2) if m.ndim > 2 else m
                if mm.shape != w.shape and mm.T.shape == w.shape:
                    mm = mm.T
                if mm.shape != w.shape:
                    unmatched.add(name)
                    continue
                k, j = np.nonzero(w)  # the same order as _edges
                out[starts[b] : starts[b + 1]] = mm[k, j]
        kept[f] = out
    return kept, sorted(unmatched)


# -- partitions -------------------------------------------------------------------------------------
def _aggregate(graph: Any, labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Aggregate nodes (one per unit group x cluster: centroid, units) and aggregate edges (summed
    |w| and edge count of every block between two aggregate nodes)."""
    import scipy.sparse as sp

    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    lab = np.where(labels >= 0, labels, k)  # unclustered units: one more bin, drawn grey
    shape = (graph.n_layers, k + 1)
    bins = graph.node_layer * (k + 1) + lab  # one bin per (unit group, cluster)
    counts = np.bincount(bins, minlength=shape[0] * shape[1]).reshape(shape)
    sx = np.bincount(bins, weights=x, minlength=shape[0] * shape[1]).reshape(shape)
    groups, clusters = np.nonzero(counts)  # the aggregate nodes: group by group, clusters in order
    node_id = np.full(shape, -1, dtype=np.int64)
    node_id[groups, clusters] = np.arange(groups.size)
    nodes = {"g": groups.tolist(), "c": np.where(clusters < k, clusters, -1).tolist(),
             "x": [round(float(v), 5) for v in sx[groups, clusters] / counts[groups, clusters]],
             "y": y[graph.offsets[groups]].tolist(), "n": counts[groups, clusters].tolist()}
    sums: dict[tuple[int, int], list[float]] = {}
    for (s, d), w in zip(graph.links, graph.abs_weights, strict=True):
        ls, ld = lab[graph.group_nodes(s)], lab[graph.group_nodes(d)]
        # one-hot cluster matrices: total[cd, cs] = sum of |w| from cluster cs (source) to cd
        ps = sp.csr_matrix((np.ones(ls.size), (ls, np.arange(ls.size))), shape=(k + 1, ls.size))
        pd = sp.csr_matrix((np.ones(ld.size), (ld, np.arange(ld.size))), shape=(k + 1, ld.size))
        total = np.asarray(ps @ np.asarray(pd @ w).T).T
        count = np.asarray(ps @ np.asarray(pd @ (w > 0).astype(np.float64)).T).T
        for cd, cs in zip(*np.nonzero(total), strict=True):
            acc = sums.setdefault((int(node_id[s, cs]), int(node_id[d, cd])), [0.0, 0.0])
            acc[0] += float(total[cd, cs])
            acc[1] += float(count[cd, cs])
    pairs = sorted(sums)
    wsum = np.array([sums[p][0] for p in pairs])
    top = float(wsum.max()) if wsum.size else 1.0
    return {
        "nodes": nodes,
        "edges": {
            "a": [p[0] for p in pairs],
            "b": [p[1] for p in pairs],
            "f": [round(float(v) / top, 6) for v in wsum],
            "w": [float(v) for v in wsum],
            "n": [int(sums[p][1]) for p in pairs],
        },
    }


def _cluster_iou(labels: np.ndarray, edges: Edges, kept: Mapping[str, np.ndarray], k: int) -> dict[str, list]:
    """IoU of each cluster's weights (edges with both ends in it) with each function's kept weights."""
    if not kept:
        return {}
    lu, lv = labels[edges.u], labels[edges.v]
    inside = (lu == lv) & (lu >= 0)
    own = np.bincount(lu[inside], minlength=k)[:k]
    out = {}
    for f, m in kept.items():
        inter = np.bincount(lu[inside & m], minlength=k)[:k]
        union = own + int(m.sum()) - inter
        out[f] = [float(i / u) if u > 0 else None for i, u in zip(inter, union, strict=True)]
    return out


def _null(d: Mapping[str, Any]) -> dict[str, Any] | None:
    s = d.get("shuffle")
    if not isinstance(s, Mapping):
        return None
    return {k: s.get(k) for k in ("method", "n", "mean", "std", "z", "p_value", "ncuts")}


class _Drawing(NamedTuple):
    """The whole network as the page draws it: its graph, its units' positions (``x``, ``y``:
    ``(n_units,)``), its edges and each function's kept edges (``{function: (n_edges,) bool}``)."""

    graph: Any
    x: np.ndarray
    y: np.ndarray
    edges: Edges
    kept: Mapping[str, np.ndarray]


def _partition(name: str, labels: np.ndarray, net: _Drawing, d: Mapping[str, Any] | None) -> dict[str, Any]:
    from ..clustering.ncut import ncut_terms

    graph = net.graph
    if labels.shape != (graph.n_nodes,):
        raise ModscopeError(f"{name}: {labels.size} unit labels but the network has {graph.n_nodes} units: "
                            "results of different networks")
    k = int(labels.max()) + 1 if labels.max() >= 0 else 0
    terms = ncut_terms(graph, labels)[:k] if k else np.zeros(0)
    sizes = np.array([np.bincount(labels[graph.group_nodes(g)] + 1, minlength=k + 1)[1:]
                      for g in range(graph.n_layers)])  # sizes[g, c]
    p = {
        "name": name,
        "k": k,
        "labels": [int(v) for v in labels],
        "ncut": float(terms.sum()),
        "terms": [float(t) for t in terms],
        "sizes": sizes.T.tolist(),  # [c][g]
        "null": None if d is None else _null(d),
        "knockout": None,
        "iou": _cluster_iou(labels, net.edges, net.kept, k),
        **_aggregate(graph, labels, net.x, net.y),
    }
    if d is not None:
        p.update(ncut_result=d.get("ncut"), seed=d.get("seed"))
    return p


_SUBMODULE_KEYS = ("layer", "cluster", "size", "accuracy", "delta", "p_value", "z", "category", "random_mean",
                   "random_std", "per_function")  # a sub-module's numbers the page shows


def _knockout_view(d: Mapping[str, Any], graph: Any) -> dict[str, Any]:
    """The knockout's numbers the page shows, with each sub-module's random-lesion metrics."""
    rand = d.get("random_metrics") or [None] * len(d["submodules"])
    subs = []
    for s, r in zip(d["submodules"], rand, strict=False):
        g = int(s.get("layer", 0))
        group = group_name(graph, g) if 0 <= g < graph.n_layers else str(g)
        subs.append({**{k: s.get(k) for k in _SUBMODULE_KEYS}, "group": group, "random": r})
    return {"metric": d.get("metric"), "intact": d.get("intact_accuracy"),
            "intact_per_function": d.get("intact_per_function") or {}, "n_random": d.get("n_random"),
            "submodules": subs}


def _block_view(block: Any, d: Mapping[str, Any]) -> dict[str, Any]:
    """One transformer MLP block's row and drawing (its own 3-row graph, coloured by its labels)."""
    row = {**{k: d.get(k) for k in ("block", "d_model", "d_ff", "ncut")}, "k": d.get("n_clusters"),
           "null": _null(d), "drawing": None}
    labels = np.asarray(d.get("labels") or [], dtype=np.int64)
    if block is not None:
        g = block.graph()
        if labels.shape == (g.n_nodes,):
            groups, x, y = _layout(g)
            for grp, nm in zip(groups, ("stream in", "MLP hidden", "stream out"), strict=False):
                grp["name"] = nm
            row["drawing"] = {
                "groups": groups,
                "labels": [int(v) for v in labels],
                "x": [round(float(v), 5) for v in x],
                "y": [float(v) for v in y],
                **_aggregate(g, labels, x, y),
            }
    return row


# -- the page ---------------------------------------------------------------------------------------
def _masks_view(items: Sequence[_Item], graph: Any,
                edges: Edges) -> tuple[dict[str, np.ndarray], dict | None]:
    """``({function: (n_edges,) bool kept}, the page's masks summary or None)`` of the first
    ``masks`` result; its ``note`` says what is not drawn."""
    from ..masks.bits import decode_masks

    it = next((it for it in items if it.kind == "masks"), None)
    if it is None:
        return {}, None
    kept: dict[str, np.ndarray] = {}
    note = f"{it.name} holds no weight_masks (a --json from before 0.4.0): its masks are not drawn"
    if "weight_masks" in it.d:
        kept, unmatched = _mask_kept(graph, edges, decode_masks(it.d["weight_masks"]))
        note = (f"masked parameters not in the graph (not drawn): {', '.join(unmatched[:6])}"
                if unmatched else "")
    summary = {"name": it.name, "functions": list(it.d["functions"]),
               **{k: it.d.get(k) for k in ("iou", "kept_fraction", "accuracy")}, "note": note}
    return kept, summary


def _partitions(items: Sequence[_Item], net: _Drawing) -> list[dict]:
    """Every partition of the whole network among the results (score, blocks --whole, the
    knockouts' lesioned ones), each knockout attached to the partition it lesioned."""
    partitions: list[dict] = []
    for it in items:
        if it.kind == "score":
            d = it.d
            s = d.get("shuffle") or {}
            nm = f"{it.name}: k={d.get('n_clusters')}, {s.get('method', 'no')} null"
        elif it.kind == "blocks" and isinstance(it.d.get("whole"), Mapping):
            d = it.d["whole"]
            nm = f"{it.name} (whole graph): k={d.get('n_clusters')}"
        else:
            continue
        lab = np.asarray(d["labels"], dtype=np.int64)
        partitions.append(_partition(nm, lab, net, d))
    for it in items:
        if it.kind != "knockout":
            continue
        view = _knockout_view(it.d, net.graph)
        lesioned = it.d.get("lesioned_labels")
        if lesioned is not None:
            lab = np.asarray(lesioned, dtype=np.int64)
            match = next((p for p in partitions if p["labels"] == lab.tolist()), None)
            if match is None:
                match = _partition(f"{it.name}: the partition lesioned", lab, net, None)
                partitions.append(match)
            match["knockout"] = {**view, "name": it.name}
        else:  # a knockout from before 0.4.0: matched by k and seed only when that is unambiguous
            c = it.d.get("clustering") or {}
            cands = [p for p in partitions
                     if p["k"] == c.get("n_clusters") and p.get("seed") == c.get("seed")]
            if len(cands) == 1:
                note = "partition matched by k and seed (no lesioned_labels in the JSON)"
                cands[0]["knockout"] = {**view, "name": it.name, "note": note}
    if not partitions:
        raise ModscopeError(
            "no partition of the network among the results: add the --json of `modscope score` "
            "(or `knockout`, or `blocks --whole`)")
    return partitions


def _embedded(graph: Any, edges: Edges, max_edges: int) -> tuple[dict[str, Any], np.ndarray]:
    """``(the page's single edges, their indices into edges)``: the strongest ``max_edges`` by
    |w| / max |w| of their block, strongest first, as base64 arrays (u, v int32; q int16 = the
    signed strength x 32767; block int16, int32 past 32767 blocks)."""
    order = np.arange(edges.f.size)
    if max_edges < edges.f.size:  # O(n) selection first: a whole GPT-2 graph has 70.8M edges
        order = np.argpartition(-edges.f, max_edges - 1)[:max_edges]
    order = order[np.argsort(-edges.f[order], kind="stable")]
    return {
        "n": int(order.size),
        "total": int(edges.u.size),
        "u": _b64(edges.u[order]),
        "v": _b64(edges.v[order]),
        "q": _b64(np.round(np.sign(edges.w[order]) * edges.f[order] * 32767).astype(np.int16)),
        "block": _b64(edges.block[order].astype(np.int16 if len(graph.weights) < 32768 else np.int32)),
        "block_names": list(graph.names),
    }, order


# a train result's keys the page shows (train --task's, then train --model's)
_TRAIN_KEYS = ("task", "steps", "seed", "test_accuracy", "test_loss", "train_accuracy", "sparsity", "bimt",
               "architecture", "model", "data", "metric", "metric_name")


def _whole_page(items: Sequence[_Item], network: Any, max_edges: int) -> tuple[str, dict, dict[str, Any]]:
    """``(label, network numbers, page parts)`` of a page on the whole network's graph."""
    graph, net_path, label = _network(items, network)
    groups, x, y = _layout(graph)
    edges = edge_list(graph)
    kept, masks_page = _masks_view(items, graph, edges)
    partitions = _partitions(items, _Drawing(graph, x, y, edges, kept))
    emb, order = _embedded(graph, edges, max_edges)
    if masks_page is not None:  # each function's kept bit of every embedded edge, in their order
        masks_page.update(bits={f: _b64(np.packbits(m[order], bitorder="little")) for f, m in kept.items()},
                          kept_edges={f: int(m.sum()) for f, m in kept.items()})
    train = next(({k: v for k, v in it.d.items() if k in _TRAIN_KEYS} for it in items if it.kind == "train"),
                 None)
    network = {"reading": getattr(graph, "reading", ""), "n_nodes": int(graph.n_nodes),
               "n_edges": int(edges.u.size), "widths": [int(s) for s in graph.sizes]}
    return label, network, dict(
        groups=groups, x=_b64(x.astype(np.float32)), y=_b64(y.astype(np.float32)), edges=emb,
        partitions=partitions, masks=masks_page,
        blocks=next((_blocks_page(it, net_path) for it in items if it.kind == "blocks"), None), train=train,
    )


def page_data(results: Sequence[Any], network: Any = None, *, title: str | None = None,
              max_edges: int = DEFAULT_MAX_EDGES) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data (see the module docstring)."""
    if not results:
        raise ModscopeError(
            "no results to explore: pass the --json of score, blocks, knockout, masks or train")
    if max_edges < 1:
        raise ModscopeError(f"max_edges must be at least 1, got {max_edges}")
    items = [_as_item(r, i) for i, r in enumerate(results)]
    kinds = {it.kind for it in items}
    whole = any(it.kind == "blocks" and isinstance(it.d.get("whole"), Mapping) for it in items)
    if "blocks" in kinds and not whole and kinds <= {"blocks", "train"}:
        label, network, parts = _blocks_only(items, network)
    else:
        label, network, parts = _whole_page(items, network, max_edges)
    # the page's data: its title, the network, the results' names and kinds, then the parts
    return {
        "title": title or f"modscope explore: {label}",
        "version": __version__,
        "network": {"label": label, **network},
        "results": [{"name": it.name, "kind": it.kind} for it in items],
        **parts,
    }


def render_page(data: Mapping[str, Any]) -> str:
    """The self-contained page: Plotly's JavaScript, the page's script and style, and ``data``."""
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    # plotly.js's basic bundle (scatter, bar, pie), vendored (origin and licence: PLOTLY-LICENSE.txt):
    # its start is a fraction of the full bundle's, and the page needs no ``plotly`` package
    plotly = (_PAGE / _PLOTLY).read_text(encoding="utf-8")
    return (
        (_PAGE / "explore.html").read_text().replace("{{title}}", html.escape(str(data["title"])))
        .replace("{{css}}", (_PAGE / "explore.css").read_text())
        .replace("{{plotly}}", plotly.replace("</script", "<\\/script"))
        .replace("{{app}}", (_PAGE / "explore.js").read_text())
        .replace("{{data}}", payload)
    )


@dataclass
class Explorer:
    """The explorer page of some results: ``data`` (what the page shows), ``html`` (the page),
    `save` writes it; shown inline in Jupyter."""

    data: dict[str, Any]

    @functools.cached_property
    def html(self) -> str:  # rendered once, on first use
        return render_page(self.data)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page (atomically) and return its path."""
        return write_text(path, self.html)

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def _repr_html_(self) -> str:
        # an iframe keeps the page's script and style apart from the notebook's
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width:100%;height:860px;border:1px solid #ddd" '
            'sandbox="allow-scripts"></iframe>'
        )


def explore(
    *results: Any, network: Any = None, title: str | None = None, max_edges: int = DEFAULT_MAX_EDGES
) -> Explorer:
    """The interactive explorer of ``results`` of one network (`Explorer`; ``.save(path)`` writes it).

    ``results``: ``--json`` paths, result dicts or result objects (`ScoreResult`, `KnockoutResult`,
    `MaskResult`, `BlockScores`) of one network; at least one must hold a partition (``score``,
    ``knockout`` or ``blocks --whole``). ``network``: its file, `WeightGraph` or module, when the
    results do not name it (``source``) or hold it (a `ScoreResult`'s graph). ``max_edges``: single
    edges embedded (the strongest by |w| / max |w| of their block); every edge counts in the aggregates.
    Raises `ModscopeError` (one line) for results of different networks or none with a partition.
    """
    return Explorer(page_data(list(results), network, title=title, max_edges=max_edges))
