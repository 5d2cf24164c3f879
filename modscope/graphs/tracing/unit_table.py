"""What the tracer knows of each tensor, and the graph it builds: units, unit groups, and the
edges each weighted op adds between them (a `Block`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...errors import ModscopeError
from ..norms import slice_norms
from ..weight_graph import WeightGraph

__all__ = ["Block", "GraphBuilder", "UnitTensor", "along", "carries_units", "is_param", "module_of"]


def module_of(param: str) -> str:
    """``encoder.0.weight`` -> ``encoder.0``: a parameter's module, the name of its group."""
    return param.rsplit(".", 1)[0] if "." in param else param


def along(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """``values`` (one per index of ``axis``) shaped to broadcast over an array of ``ndim`` axes."""
    view = [1] * ndim
    view[axis] = len(values)
    return np.asarray(values).reshape(view)


def _find(parent: list[int], u: int) -> int:
    """The root of ``u`` in the union-find forest ``parent``, every node on the way re-pointed to it."""
    root = u
    while parent[root] != root:
        root = parent[root]
    while parent[u] != root:
        parent[u], u = root, parent[u]
    return root


@dataclass
class UnitTensor:
    """What the tracer knows of one tensor (arrays of the tensor's own shape)."""

    units: np.ndarray  # int64 unit id per element, -1 for none
    pos: np.ndarray  # int64 position of the element in its unit's frame
    frame: tuple[int, ...] = ()  # the spatial shape the positions index
    scale: np.ndarray | None = None  # per-element gain to fold into the columns of a reader
    param: tuple[str, np.ndarray | None] | None = None  # (parameter, flat index per element / None: whole)
    producer: int | None = None  # the block whose rows made these values (BatchNorm folds there)

    def map(self, f: Callable[[np.ndarray], np.ndarray]) -> UnitTensor:
        """The same element-preserving view applied to every array."""
        param = self.param
        if param is not None:  # a parameter seen whole until now: its element indices, then viewed
            index = np.arange(self.units.size).reshape(self.units.shape) if param[1] is None else param[1]
            param = (param[0], f(index))
        scale = None if self.scale is None else f(self.scale)
        return UnitTensor(f(self.units), f(self.pos), self.frame, scale, param, self.producer)

    def broadcast(self, shape: tuple[int, ...]) -> UnitTensor:
        """Every array broadcast to ``shape`` (copies), or this tensor when it has that shape already."""
        return self if self.units.shape == shape else self.map(lambda a: np.broadcast_to(a, shape).copy())


def carries_units(v: Any) -> bool:
    """Whether ``v`` is a `UnitTensor` with at least one element that is a unit."""
    return isinstance(v, UnitTensor) and bool((v.units >= 0).any())


def is_param(v: Any) -> bool:
    """Whether ``v`` is a `UnitTensor` of a parameter's numbers (or a view of them)."""
    return isinstance(v, UnitTensor) and v.param is not None


@dataclass
class Block:
    """The edges one weighted op (a parameter) adds: ``|weight|`` from units ``src`` to ``dst``."""

    name: str
    src: np.ndarray  # unit ids of the columns
    dst: np.ndarray  # unit ids of the rows
    weight: np.ndarray  # (len(dst), len(src))


@dataclass
class GraphBuilder:
    """Units, groups, union-find and blocks while the graph is built."""

    parent: list[int] = field(default_factory=list)
    groups: list[tuple[str, int, str]] = field(default_factory=list)  # (name, size, kind: the layer, Linear)
    blocks: list[Block] = field(default_factory=list)
    block_keys: dict[tuple, int] = field(default_factory=dict)
    stacks: list[int] = field(default_factory=list)  # union-find of blocks stacked as gate rows
    node_of: np.ndarray | None = None  # after `finish`: each unit's graph node (-1: dropped)

    def new_group(self, name: str, size: int, kind: str = "") -> np.ndarray:
        """``size`` new units, a group named ``name`` made by a layer of ``kind`` (``Linear``)."""
        start = len(self.parent)
        self.parent.extend(range(start, start + size))
        self.groups.append((name, size, kind))
        return np.arange(start, start + size, dtype=np.int64)

    def nodes(self, units: np.ndarray) -> np.ndarray:
        """After `finish`: the graph node of each unit id in ``units`` (-1: none, or dropped)."""
        units = np.asarray(units, dtype=np.int64)
        return np.where(units >= 0, self.node_of[np.maximum(units, 0)], -1)

    def roots(self, units: np.ndarray) -> np.ndarray:
        """The representative of every unit id in ``units`` (``-1`` stays ``-1``), vectorised."""
        parent = np.asarray(self.parent, dtype=np.int64)
        out = np.where(units >= 0, units, 0)
        while True:
            up = parent[out]
            if np.array_equal(up, out):
                break
            out = up
        return np.where(units >= 0, out, -1)

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Make the units of ``a`` and ``b`` (same shape) one unit, element by element."""
        both = (a >= 0) & (b >= 0) & (a != b)
        if not both.any():
            return
        n = len(self.parent)
        keys = np.unique(a[both] * n + b[both])  # one 1-D sort: much faster than unique rows
        for x, y in zip((keys // n).tolist(), (keys % n).tolist(), strict=True):
            rx, ry = _find(self.parent, x), _find(self.parent, y)
            if rx != ry:  # the earlier unit (lower id) stays the representative
                self.parent[max(rx, ry)] = min(rx, ry)

    def add_block(self, name: str, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> int:
        self.blocks.append(Block(name, src, dst, weight))
        self.stacks.append(len(self.stacks))
        return len(self.blocks) - 1

    def stack(self, a: int, b: int) -> None:
        """Blocks ``a`` and ``b`` write the same units as one (gate and up of a gated unit)."""
        ra, rb = _find(self.stacks, a), _find(self.stacks, b)
        self.stacks[max(ra, rb)] = min(ra, rb)

    def finish(self, outputs: list[np.ndarray], keep_dead_ends: bool, norm: str) -> WeightGraph:
        """Units merged, dead ends dropped, groups renumbered: the `WeightGraph`.

        ``outputs``: unit arrays of the network's outputs; a unit is live when it is an output or
        feeds a live unit through some block (``keep_dead_ends`` keeps every unit). ``norm``: the
        slice norm that combines stacked blocks (gate and up rows) into one.
        """
        if not self.blocks:
            raise ModscopeError("the traced module has no layer with weights")
        root = np.asarray([_find(self.parent, u) for u in range(len(self.parent))], dtype=np.int64)
        keep = self._kept(root, outputs, keep_dead_ends)
        groups = _FinalGroups.of(self, root, keep)
        weights, block_names, links = self._merged_blocks(root, keep, groups, norm)
        graph = WeightGraph.from_weights(
            weights, block_names, links=links, sizes=groups.sizes, group_names=groups.names, copy=False
        )
        # every traced unit's node in the graph (-1: dropped), for lesions at the units' readers
        fg = groups.group[root]
        self.node_of = np.where(fg >= 0, graph.offsets[np.maximum(fg, 0)] + groups.index[root], -1)
        return replace(graph, group_kinds=tuple(groups.kinds))

    def _kept(self, root: np.ndarray, outputs: list[np.ndarray], keep_dead_ends: bool) -> np.ndarray:
        """``(n_units,)`` bool: the units (union-find roots) a block touches that are live: an
        output, or feeding a live unit through some block (every unit with ``keep_dead_ends``)."""
        used = np.zeros(root.size, dtype=bool)
        used[root[np.concatenate([ends for blk in self.blocks for ends in (blk.src, blk.dst)])]] = True
        if keep_dead_ends:
            return used
        live = np.zeros(root.size, dtype=bool)
        outs = np.concatenate([o.ravel() for o in outputs]) if outputs else np.empty(0, dtype=np.int64)
        live[root[outs[outs >= 0]]] = True  # an output element with no unit (-1) makes nothing live
        changed = True
        while changed:
            changed = False
            for blk in self.blocks:
                src = root[blk.src]
                if live[root[blk.dst]].any() and not live[src].all():
                    live[src] = True
                    changed = True
        return live & used

    def _merged_blocks(
        self, root: np.ndarray, keep: np.ndarray, groups: _FinalGroups, norm: str
    ) -> tuple[list[np.ndarray], list[str], list[tuple[int, int]]]:
        """One weight matrix per (stack, source group, destination group) with its name and link:
        each block's kept rows and columns placed at their units' indices, stacked blocks (SwiGLU
        gate and up) combined by the slice ``norm``."""
        # (weight, block name) per (stack, source group, destination group), in first-seen order
        parts: dict[tuple[int, int, int], list[tuple[np.ndarray, str]]] = {}
        for bi, blk in enumerate(self.blocks):
            src, dst = root[blk.src], root[blk.dst]
            ks, kd = keep[src], keep[dst]
            if not ks.any() or not kd.any():
                continue
            gsrc, gdst = groups.group[src], groups.group[dst]
            stack = _find(self.stacks, bi)
            for gs in np.unique(gsrc[ks]):
                cols = np.flatnonzero(ks & (gsrc == gs))
                for gd in np.unique(gdst[kd]):
                    rows = np.flatnonzero(kd & (gdst == gd))
                    w = groups.place(blk.weight, rows, cols, groups.index[dst[rows]], groups.index[src[cols]],
                                     (int(gd), int(gs)))
                    parts.setdefault((stack, int(gs), int(gd)), []).append((w, blk.name))
        if not parts:
            raise ModscopeError("no weight of the traced module reaches its outputs")
        weights = [
            p[0][0] if len(p) == 1 else slice_norms(np.stack([w for w, _ in p], axis=-1), norm)
            for p in parts.values()
        ]
        names = ["+".join(name for _, name in p) for p in parts.values()]
        return weights, names, [(k[1], k[2]) for k in parts]


@dataclass
class _FinalGroups:
    """The graph's unit groups: each kept unit (a union-find root) in the first group, by
    creation, that holds it. ``group`` / ``index``: ``(n_units,)`` each root's group and its
    index there (-1: dropped or not a root); ``sizes``, ``names``, ``kinds`` per group."""

    group: np.ndarray
    index: np.ndarray
    sizes: list[int]
    names: list[str]
    kinds: list[str]

    @classmethod
    def of(cls, b: GraphBuilder, root: np.ndarray, keep: np.ndarray) -> _FinalGroups:
        out = cls(np.full(root.size, -1, dtype=np.int64), np.full(root.size, -1, dtype=np.int64), [], [], [])
        starts = np.concatenate([[0], np.cumsum([size for _, size, _ in b.groups])]).astype(int)
        for g, (name, _, kind) in enumerate(b.groups):
            reps = root[starts[g] : starts[g + 1]]
            reps = reps[keep[reps] & (out.group[reps] < 0)]
            _, first = np.unique(reps, return_index=True)
            reps = reps[np.sort(first)]
            if reps.size == 0:
                continue
            out.group[reps] = len(out.sizes)
            out.index[reps] = np.arange(reps.size)
            out.sizes.append(int(reps.size))
            out.names.append(name)
            out.kinds.append(kind)
        out._name_merges(b, root, starts)
        return out

    def _name_merges(self, b: GraphBuilder, root: np.ndarray, starts: np.ndarray) -> None:
        """A group that absorbed units of others (a residual stream, gate and up) says so; a
        module run several times (shared layers) gets one group a run."""
        absorbed: dict[int, list[str]] = {}
        for g, (name, _, _) in enumerate(b.groups):
            fg = self.group[root[starts[g] : starts[g + 1]]]
            for final in np.unique(fg[fg >= 0]):
                absorbed.setdefault(int(final), []).append(name)
        for g, members in absorbed.items():
            others = [m for m in dict.fromkeys(members) if m != self.names[g]]
            if len(others) == 1:
                self.names[g] = f"{self.names[g]}+{others[0]}"
            elif others:
                self.names[g] = f"{self.names[g]}+{len(others)} merged"
        seen: dict[str, int] = {}
        for g, name in enumerate(self.names):
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                self.names[g] = f"{name} (run {seen[name]})"

    def place(
        self, weight: np.ndarray, rows: np.ndarray, cols: np.ndarray, r: np.ndarray, c: np.ndarray,
        pair: tuple[int, int],
    ) -> np.ndarray:
        """``weight[rows][:, cols]`` at rows ``r`` and columns ``c`` of the ``(dst, src)`` group
        ``pair``'s matrix; |weights| add up where several of the block's units are one unit now."""
        shape = (self.sizes[pair[0]], self.sizes[pair[1]])
        whole = (rows.size, cols.size) == weight.shape == shape
        if whole and np.array_equal(r, np.arange(r.size)) and np.array_equal(c, np.arange(c.size)):
            return weight  # the block fills its groups in order: no copy
        w = np.zeros(shape)
        sub = weight[np.ix_(rows, cols)]
        if np.unique(r).size == r.size and np.unique(c).size == c.size:
            w[np.ix_(r, c)] = sub
        else:
            np.add.at(w, (r[:, None], c[None, :]), np.abs(sub))
        return w
