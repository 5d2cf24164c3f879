"""The layered drawing of any unit graph, shared by `modscope explore` and `modscope plot network`.

Unit groups are rows: a group's row is its longest path from the inputs, and the groups of one
row sit side by side (each spans a share of the width ∝ sqrt(its units), units evenly along it).
A merged residual stream (one group read and written back by every block, [spec §1b][spec-1b])
makes the links cyclic. The explorer keeps one position per unit, so there the stream is one row
with the blocks a row above it; a figure can instead *unroll* each stream: one copy of it per
block boundary (the stream before the first block, after each block that writes into it), every
block reading the copy before it and writing the copy after it, as the BIMT paper's figures draw a
transformer. Attention heads stay grouped: one layer's value units (all its heads) are one group.

[`edge_list`][modscope.report.layout.edge_list] lists every non-zero weight once with its
strength ``|w| / max |w|`` of its edge set, the scale both drawings use.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Edges", "Placement", "UnitLayout", "edge_list", "group_depths", "group_name", "unit_layout"]


@dataclass(frozen=True)
class Placement:
    """One drawing of unit group ``group``: ``copy`` k of an unrolled stream (0 otherwise), on row
    ``row`` (0 = inputs), spanning ``[x0, x0 + width]`` of the unit-wide row."""

    group: int
    copy: int
    row: int
    x0: float
    width: float

    @property
    def x1(self) -> float:
        return self.x0 + self.width


@dataclass(frozen=True)
class UnitLayout:
    """Where a graph's units are drawn. ``placements``: every drawing of a group (each group at
    least once; an unrolled stream once per block boundary). ``ends[b]``: the placements (indices)
    that edge set ``b`` joins, ``(source side, destination side)``. ``streams``: the groups drawn
    more than once."""

    placements: tuple[Placement, ...]
    ends: tuple[tuple[int, int], ...]
    streams: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def n_rows(self) -> int:
        return 1 + max(p.row for p in self.placements)

    def unit_x(self, p: int) -> np.ndarray:
        """``(size,)`` x of the units of placement ``p``, in index order: ``x0 + width (2j + 1) / 2n``."""
        pl = self.placements[p]
        n = self.sizes[pl.group]
        return pl.x0 + pl.width * (2 * np.arange(n) + 1) / (2 * max(n, 1))

    def node_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)``, each ``(n_nodes,)``: every unit at its group's first placement."""
        offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        x, y = np.zeros(offsets[-1]), np.zeros(offsets[-1])
        # backwards, so that a group's first placement is the one written last
        for p in reversed(range(len(self.placements))):
            pl = self.placements[p]
            x[offsets[pl.group] : offsets[pl.group + 1]] = self.unit_x(p)
            y[offsets[pl.group] : offsets[pl.group + 1]] = float(pl.row)
        return x, y


def group_name(graph: Any, g: int) -> str:
    """A group's name; a plain chain's generic ``groupN`` as ``layer N``."""
    name = graph.group_names[g]
    return f"layer {g}" if name == f"group{g}" and graph.is_chain else name


def group_depths(graph: Any) -> np.ndarray:
    """Each group's row: its longest path from the inputs when the links form no cycle (a chain,
    skip connections); otherwise (a merged residual stream read and written by every block) its
    distance from group 0, so the stream is one row and the blocks a row above it, in order."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components, shortest_path

    n = graph.n_layers
    links = [(s, d) for s, d in graph.links if s != d]
    ordered = _topological(n, links)
    if ordered is not None:
        return ordered[1]
    s, d = np.array(links, dtype=np.int64).reshape(-1, 2).T
    adj = sp.csr_matrix((np.ones(s.size), (s, d)), shape=(n, n))
    _, comp = connected_components(adj, directed=False)
    # hops from the lowest-numbered group of each (undirected) component: inf from the other starts
    starts = [int(np.flatnonzero(comp == c)[0]) for c in np.unique(comp)]
    return shortest_path(adj, directed=False, unweighted=True, indices=starts).min(0).astype(np.int64)


def _topological(n: int, links: list[tuple[int, int]]) -> tuple[list[int], np.ndarray] | None:
    """``(the nodes in topological order, each node's longest path from a source)``: Kahn's order,
    the lowest index first among those ready (the trace's order: a group is numbered when the
    forward first writes it); None when there is a cycle."""
    indeg = np.bincount(np.array([d for _, d in links], dtype=np.int64), minlength=n)
    depth = np.zeros(n, dtype=np.int64)
    ready = [int(g) for g in np.flatnonzero(indeg == 0)]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        g = heapq.heappop(ready)
        order.append(g)
        for s, d in links:
            if s == g:  # g's depth is final: all its sources came before it
                depth[d] = max(depth[d], depth[g] + 1)
                indeg[d] -= 1
                if indeg[d] == 0:
                    heapq.heappush(ready, d)
    return (order, depth) if len(order) == n else None


def _streams(graph: Any) -> tuple[list[int], set[tuple[int, int]]]:
    """``(stream groups, their write-back links)``. In each cycle of links the group with the most
    links in it (then the most units, then the first) is a stream, and the links into it from its
    cycle are write-backs; repeated until no cycle is left (a stream inside a block's cycle)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = graph.n_layers
    links = {(s, d) for s, d in graph.links if s != d}
    streams: list[int] = []
    back: set[tuple[int, int]] = set()
    while links:
        s, d = np.array(sorted(links)).T
        adj = sp.csr_matrix((np.ones(s.size), (s, d)), shape=(n, n))
        _, comp = connected_components(adj, directed=True, connection="strong")
        cyclic = [c for c in np.unique(comp) if (comp == c).sum() > 1]
        if not cyclic:
            break
        for c in cyclic:
            inside = [(a, b) for a, b in links if comp[a] == c and comp[b] == c]
            degree = np.bincount(np.array(inside).ravel(), minlength=n)
            g = max(np.flatnonzero(comp == c), key=lambda h: (degree[h], graph.sizes[h], -h))
            streams.append(int(g))
            cut = {(a, b) for a, b in inside if b == g}
            back |= cut
            links -= cut
    return sorted(streams), back


def _unrolled(graph: Any) -> tuple[list[tuple[int, int]], list[int], list[tuple[int, int]], list[int]] | None:
    """``(items (group, copy), their rows, each edge set's item ends, streams)`` with every stream
    drawn once per block boundary; None when there is no stream (or the order does not allow it)."""
    streams, back = _streams(graph)
    if not streams:
        return None
    ordered = _topological(graph.n_layers, [(s, d) for s, d in graph.links if s != d and (s, d) not in back])
    if ordered is None:
        return None
    items: list[tuple[int, int]] = []
    preds: list[list[int]] = []
    ends: list[tuple[int, int] | None] = [None] * len(graph.links)
    current: dict[int, int] = {}  # a group's latest drawing (item index): a stream's latest copy
    item: dict[int, int] = {}  # a group's first drawing

    def add(g: int, copy: int, sources: list[int]) -> int:
        items.append((g, copy))
        preds.append(sources)
        return len(items) - 1

    for g in ordered[0]:
        read = [
            (b, current.get(s))
            for b, (s, d) in enumerate(graph.links)
            if d == g and s != d and (s, d) not in back
        ]
        if any(r is None for _, r in read):
            return None
        item[g] = add(g, 0, [r for _, r in read])
        current[g] = item[g]
        for b, r in read:
            ends[b] = (r, item[g])
        for b, (s, d) in enumerate(graph.links):
            if s == g and (s, d) in back:  # g writes back into stream d: the stream's next copy
                if d not in current:
                    return None
                current[d] = add(d, items[current[d]][1] + 1, [item[g]])
                ends[b] = (item[g], current[d])
    for b, (s, d) in enumerate(graph.links):
        if s == d:  # a recurrent group's own edges: within its (first) drawing
            ends[b] = (item[s], item[s])
    rows: list[int] = []
    for sources in preds:  # items are made after their sources: one pass gives the longest paths
        rows.append(1 + max((rows[p] for p in sources), default=-1))
    joined = [e for e in ends if e is not None]
    return (items, rows, joined, streams) if len(joined) == len(ends) else None


def unit_layout(graph: Any, unroll_streams: bool = False) -> UnitLayout:
    """Where each unit of ``graph`` (a `WeightGraph`) is drawn (see the module docstring).
    ``unroll_streams``: draw each merged residual stream once per block boundary (a figure);
    otherwise once, every unit at one position (the explorer)."""
    unrolled = _unrolled(graph) if unroll_streams else None
    if unrolled is None:
        rows = [int(r) for r in group_depths(graph)]
        items = [(g, 0) for g in range(graph.n_layers)]
        ends = [(int(s), int(d)) for s, d in graph.links]
        streams: list[int] = []
    else:
        items, rows, ends, streams = unrolled
    return UnitLayout(_placed(graph, items, rows), tuple(ends), tuple(streams), tuple(graph.sizes))


def _placed(graph: Any, items: list[tuple[int, int]], rows: list[int]) -> tuple[Placement, ...]:
    """Each row's items side by side (in item order), each spanning a share of the row ∝ sqrt(its units)."""
    sizes = np.asarray(graph.sizes, dtype=float)
    rows_a = np.asarray(rows)
    out: list[Placement | None] = [None] * len(items)
    gap = 0.03
    for row in np.unique(rows_a):
        members = np.flatnonzero(rows_a == row)
        span = np.sqrt(np.maximum(sizes[[items[i][0] for i in members]], 1.0))
        span = span / span.sum() * (1.0 - gap * (len(members) - 1))
        left = 0.0
        for i, width in zip(members, span, strict=True):
            out[i] = Placement(items[i][0], items[i][1], int(row), float(left), float(width))
            left += width + gap
    return tuple(out)  # type: ignore[arg-type]


@dataclass
class Edges:
    """Every non-zero weight once: ends ``u`` (source side) and ``v`` (graph nodes), signed weight
    ``w``, its edge set ``block``, and ``f = |w| / max |w|`` of its edge set (the drawings' scale);
    each ``(n_edges,)``, in edge-set order, then row-major within an edge set."""

    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    block: np.ndarray
    f: np.ndarray


def edge_list(graph: Any) -> Edges:
    """`Edges` of ``graph`` (a `WeightGraph`)."""
    us, vs, ws, bs, fs = [], [], [], [], []
    for b, ((s, d), w) in enumerate(zip(graph.links, graph.weights, strict=True)):
        k, j = np.nonzero(w)
        top = float(np.abs(w).max()) if w.size else 0.0
        val = w[k, j]
        us.append((graph.offsets[s] + j).astype(np.int32))
        vs.append((graph.offsets[d] + k).astype(np.int32))
        ws.append(val.astype(np.float32))
        bs.append(np.full(k.size, b, dtype=np.int32))
        fs.append((np.abs(val) / top if top > 0 else np.zeros(k.size)).astype(np.float32))
    return Edges(*(np.concatenate(a) for a in (us, vs, ws, bs, fs)))
