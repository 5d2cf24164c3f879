"""What the tracer knows of each tensor, and the graph it builds (units, groups, blocks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from ...errors import ModscopeError
from ..norms import slice_norms
from ..weight_graph import WeightGraph

__all__ = ["Block", "GraphBuilder", "UnitTensor", "module_of"]


def module_of(param: str) -> str:
    """``encoder.0.weight`` -> ``encoder.0``: a parameter's module, the name of its group."""
    return param.rsplit(".", 1)[0] if "." in param else param


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
        return UnitTensor(
            f(self.units),
            f(self.pos),
            self.frame,
            None if self.scale is None else f(self.scale),
            param,
            self.producer,
        )


@dataclass
class Block:
    name: str
    src: np.ndarray  # unit ids of the columns
    dst: np.ndarray  # unit ids of the rows
    weight: np.ndarray  # (len(dst), len(src))


@dataclass
class GraphBuilder:
    """Units, groups, union-find and blocks while the graph is built."""

    parent: list[int] = field(default_factory=list)
    group_of: list[int] = field(default_factory=list)
    groups: list[tuple[str, int]] = field(default_factory=list)  # (name, size)
    blocks: list[Block] = field(default_factory=list)
    block_keys: dict[tuple, int] = field(default_factory=dict)
    stacks: list[int] = field(default_factory=list)  # union-find of blocks stacked as gate rows
    node_of: np.ndarray | None = None  # after `finish`: each unit's graph node (-1: dropped)
    kinds: dict[int, str] = field(default_factory=dict)  # group -> the layer that made it (Linear)

    def new_group(self, name: str, size: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + size))
        self.group_of.extend([len(self.groups)] * size)
        self.groups.append((name, size))
        return np.arange(start, start + size, dtype=np.int64)

    def find(self, u: int) -> int:
        root = u
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[u] != root:
            self.parent[u], u = root, self.parent[u]
        return root

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
            rx, ry = self.find(x), self.find(y)
            if rx != ry:  # the earlier unit (lower id) stays the representative
                self.parent[max(rx, ry)] = min(rx, ry)

    def add_block(self, name: str, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> int:
        self.blocks.append(Block(name, src, dst, weight))
        self.stacks.append(len(self.stacks))
        return len(self.blocks) - 1

    def stack(self, a: int, b: int) -> None:
        """Blocks ``a`` and ``b`` write the same units as one (gate and up of a gated unit)."""
        ra, rb = self.stack_of(a), self.stack_of(b)
        self.stacks[max(ra, rb)] = min(ra, rb)

    def stack_of(self, block: int) -> int:
        while self.stacks[block] != block:
            block = self.stacks[block]
        return block

    def finish(self, outputs: list[np.ndarray], keep_dead_ends: bool, norm: str) -> WeightGraph:
        """Units merged, dead ends dropped, groups renumbered: the `WeightGraph`.

        ``outputs``: unit arrays of the network's outputs; a unit is live when it is an output or
        feeds a live unit through some block (``keep_dead_ends`` keeps every unit). ``norm``: the
        slice norm that combines stacked blocks (gate and up rows) into one.
        """
        b = self
        if not b.blocks:
            raise ModscopeError("the traced module has no layer with weights")
        n = len(b.parent)
        root = np.asarray([b.find(u) for u in range(n)], dtype=np.int64)
        used = np.zeros(n, dtype=bool)
        for blk in b.blocks:
            used[root[blk.src]] = True
            used[root[blk.dst]] = True
        live = np.zeros(n, dtype=bool)
        if keep_dead_ends:
            live[:] = True
        else:  # a unit is live when it is an output or feeds a live unit through some block
            outs = [o.ravel() for o in outputs]
            outs = root[np.concatenate(outs)] if outs else np.empty(0, dtype=np.int64)
            live[outs[outs >= 0]] = True
            changed = True
            while changed:
                changed = False
                for blk in b.blocks:
                    src = root[blk.src]
                    if live[root[blk.dst]].any() and not live[src].all():
                        live[src] = True
                        changed = True
        keep = live & used
        # final groups: each kept unit (a union-find root) in the first group, by creation, holding it
        final_group = np.full(n, -1, dtype=np.int64)
        index = np.full(n, -1, dtype=np.int64)
        sizes: list[int] = []
        names: list[str] = []
        kinds: list[str] = []
        start = 0
        for names_all, (name, size) in enumerate(b.groups):
            reps = root[start : start + size]
            start += size
            reps = reps[keep[reps] & (final_group[reps] < 0)]
            _, first = np.unique(reps, return_index=True)
            reps = reps[np.sort(first)]
            if reps.size == 0:
                continue
            final_group[reps] = len(sizes)
            index[reps] = np.arange(reps.size)
            sizes.append(int(reps.size))
            names.append(name)
            kinds.append(b.kinds.get(names_all, ""))
        # a group that absorbed units of others (a residual stream, gate and up) says so
        absorbed: dict[int, list[str]] = {}
        start = 0
        for name, size in b.groups:
            fg = final_group[root[start : start + size]]
            for g in np.unique(fg[fg >= 0]):
                absorbed.setdefault(int(g), []).append(name)
            start += size
        for g, members in absorbed.items():
            others = [m for m in dict.fromkeys(members) if m != names[g]]
            if len(others) == 1:
                names[g] = f"{names[g]}+{others[0]}"
            elif others:
                names[g] = f"{names[g]}+{len(others)} merged"
        seen: dict[str, int] = {}
        for g, name in enumerate(names):  # a module run several times (shared layers): one group a run
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                names[g] = f"{name} (run {seen[name]})"
        parts: dict[tuple[int, int, int], np.ndarray] = {}  # (stack, src group, dst group) -> weights
        part_names: dict[tuple[int, int, int], list[str]] = {}
        order: list[tuple[int, int, int]] = []
        for bi, blk in enumerate(b.blocks):
            src, dst = root[blk.src], root[blk.dst]
            ks, kd = keep[src], keep[dst]
            if not ks.any() or not kd.any():
                continue
            gsrc, gdst = final_group[src], final_group[dst]
            stack = b.stack_of(bi)
            for gs in np.unique(gsrc[ks]):
                cols = np.flatnonzero(ks & (gsrc == gs))
                for gd in np.unique(gdst[kd]):
                    rows = np.flatnonzero(kd & (gdst == gd))
                    r, c = index[dst[rows]], index[src[cols]]
                    whole = (rows.size, cols.size) == blk.weight.shape == (sizes[gd], sizes[gs])
                    in_order = np.array_equal(r, np.arange(r.size)) and np.array_equal(c, np.arange(c.size))
                    if whole and in_order:
                        w = blk.weight  # the block fills its groups in order: no copy
                    else:
                        w = np.zeros((sizes[gd], sizes[gs]))
                        sub = blk.weight[np.ix_(rows, cols)]
                        if np.unique(r).size == r.size and np.unique(c).size == c.size:
                            w[np.ix_(r, c)] = sub
                        else:  # several units of the block are one unit now: their weights add up
                            np.add.at(w, (r[:, None], c[None, :]), np.abs(sub))
                    key = (stack, int(gs), int(gd))
                    if key not in parts:
                        parts[key], part_names[key] = w[None], [blk.name]
                        order.append(key)
                    else:  # stacked rows (SwiGLU gate and up): one slice per unit pair
                        parts[key] = np.concatenate([parts[key], w[None]])
                        part_names[key].append(blk.name)
        if not order:
            raise ModscopeError("no weight of the traced module reaches its outputs")
        weights = []
        for key in order:
            w = parts[key]
            weights.append(w[0] if len(w) == 1 else slice_norms(np.moveaxis(w, 0, -1), norm))
        # every traced unit's node in the graph (-1: dropped), for lesions at the units' readers
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        fg = final_group[root]
        self.node_of = np.where(fg >= 0, offsets[np.maximum(fg, 0)] + index[root], -1)
        graph = WeightGraph.from_weights(
            weights,
            ["+".join(part_names[k]) for k in order],
            links=[(k[1], k[2]) for k in order],
            sizes=sizes,
            group_names=names,
            copy=False,
        )
        return replace(graph, group_kinds=tuple(kinds))
