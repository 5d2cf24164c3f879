"""Unit groups that can be permuted, on any traced network ([spec §6][spec-6], BIMT on any
architecture; units by [§1b][spec-1b]).

One trace of the module (`modscope.graphs.tracing`) says, for every unit group of its unit graph,
every tensor slice that indexes it: a layer's weight rows (the units it writes; an LSTM's stacked
gate rows, one slot per gate) and columns (the units it reads; a flattened map's columns, one slot
per position), biases, BatchNorm's weight, bias and running statistics (buffers), LayerNorm gains
and biases, a learned position table added to a stream, an embedding's columns, tied weights (the
same tensor read twice), and every block's reads and writes of a residual stream (one group: a swap
moves that unit in every reader and writer). Attention with several heads makes its value units
one group whose movable units are *heads*: a head's query, key and value rows (and the output
projection's columns reading its values) move together.

`permute(model, group, order)` applies a permutation in place, the optimizer's per-parameter state
(Adam's ``exp_avg``, ``exp_avg_sq``) with it, and leaves the network's function unchanged. The
network's inputs and outputs are never permuted (the data and the targets keep their order).

A hidden group that cannot be permuted consistently (a parameter read through an op the tracer
treats as opaque, a computed slice of a weight, a split of the group read by different layers, a
permutation that changes the output on the example input) is refused in one line naming the
parameter or op, before any training.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModscopeError
from ..graphs.tracing.export import export_module
from ..graphs.tracing.incidence import ParameterMap, map_parameters
from ..graphs.tracing.interpreter import Interpreter, op_name
from ..graphs.tracing.unit_table import UnitTensor
from ..graphs.weight_graph import WeightGraph
from ..runtime.modules import eval_mode
from .bimt import _reorder

__all__ = ["PermutableGroup", "Slice", "UnitGroups", "permutable_groups", "permute"]

_WEIGHTED = frozenset(
    """linear addmm mm matmul bmm conv1d conv2d conv3d convolution _convolution conv_transpose1d
    conv_transpose2d conv_transpose3d lstm gru rnn_tanh rnn_relu lstm_cell gru_cell embedding""".split()
)
_BATCH_NORM = frozenset({"batch_norm", "_native_batch_norm_legit_no_training"})
_LAST_AXIS_NORM = frozenset({"layer_norm", "native_layer_norm", "rms_norm"})
_ELEMENTWISE = frozenset("add add_ sub sub_ rsub mul mul_ div div_".split())
_ATTENTION = frozenset({"scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu"})
_Q, _K, _V = 0, 1, 2  # a head member's role
_BIAS = {"linear": (2, -1), "addmm": (0, -1), "conv": (2, 1)}  # its bias's argument, the features' axis


@dataclass(frozen=True, eq=False)
class Slice:
    """The entries of ``tensor`` (a parameter or buffer, by its name in the module) along ``axis``
    that index one group: ``index`` (I,) the positions along the axis, ``unit`` (I,) the movable
    unit each holds, ``slot`` (I,) which of that unit's entries it is (a gate, a map position, a
    head's query / key / value dimension); ``table`` (n_units, n_slots) the position of every
    (unit, slot)."""

    tensor: str
    axis: int
    index: np.ndarray
    unit: np.ndarray
    slot: np.ndarray
    table: np.ndarray

    def gather(self, order: np.ndarray, length: int) -> np.ndarray:
        """``(length,)`` positions to read so that unit ``order[p]`` ends where unit ``p`` was."""
        out = np.arange(length)
        out[self.index] = self.table[order[self.unit], self.slot]
        return out


@dataclass(frozen=True, eq=False)
class PermutableGroup:
    """One unit group of the graph that can be permuted. ``group``: its index in the graph,
    ``name``; ``size``: how many movable units (heads for multi-head attention values);
    ``nodes`` (size, per_unit) the graph nodes of each movable unit (one column unless heads);
    ``slices``: every tensor slice that indexes it."""

    group: int
    name: str
    size: int
    nodes: np.ndarray
    slices: tuple[Slice, ...]
    heads: bool = False

    @property
    def tensors(self) -> list[str]:
        return list(dict.fromkeys(s.tensor for s in self.slices))


@dataclass(frozen=True, eq=False)
class UnitGroups:
    """A traced network's permutable groups. ``graph`` / ``parameters``: its unit graph and where
    each weight writes and reads (`ParameterMap`); ``fixed``: groups kept in place and why (the
    network's inputs and outputs); ``refused``: hidden groups that cannot be permuted and why."""

    graph: WeightGraph
    parameters: ParameterMap
    groups: tuple[PermutableGroup, ...]
    fixed: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [
                {"name": g.name, "size": g.size, "heads": g.heads, "tensors": g.tensors} for g in self.groups
            ],
            "fixed": dict(self.fixed),
            "refused": dict(self.refused),
        }


class _Recorder(Interpreter):
    """The tracer, noting every use of a parameter or buffer that indexes units besides a layer's
    weight (biases, norms, tables added to a stream), the heads of attention, and the uses it
    cannot follow (opaque for permutation)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.uses: list[tuple[str, int, np.ndarray]] = []  # (tensor, axis, raw unit per index)
        self.opaque: list[tuple[str, str, np.ndarray]] = []  # (tensor, op at where, units it meets)
        self.products: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # q @ k^T: (Q, K) (heads, dim)
        self.attention: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []  # Q, K, V, where

    def call(self, node) -> None:
        super().call(node)
        op = op_name(node.target)
        args = [self.value(a) for a in node.args]
        flat = self.flatten_outputs([args, [self.value(a) for a in node.kwargs.values()]])
        out = self.env.get(node.name)
        first = out[0] if isinstance(out, list) else out
        if op in _ATTENTION and len(args) >= 3:
            self.note_heads(node, *args[:3])
        elif op in ("mm", "matmul", "bmm"):
            self.note_product(node, args)
        params = [a for a in flat if isinstance(a, UnitTensor) and a.param is not None]
        if not params:
            return
        acts = [a for a in flat if isinstance(a, UnitTensor) and a.param is None and (a.units >= 0).any()]
        if op in _WEIGHTED:
            self.note_layer(node, op, args, first)
        elif (op in _BATCH_NORM or op in _LAST_AXIS_NORM) and acts:
            batch = op in _BATCH_NORM  # its channels on axis 1; its weight, bias and running statistics
            units = self.features(node, acts[0], 1 if batch else -1)[0]
            for p in args[1:5] if batch else params:
                self.note_axis(p, units)
        elif op in _ELEMENTWISE and acts and isinstance(first, UnitTensor):
            for p in params:
                self.note_elementwise(node, op, p, first)
        elif acts:  # any other op (group_norm: groups of channels share statistics)
            self.opaque_use(node, op, params, acts)

    # -- what each use indexes ------------------------------------------------------------------
    def note_axis(self, p: Any, units: np.ndarray) -> None:
        """A 1-D parameter (or a view of one) whose entries follow ``units`` one by one."""
        if not isinstance(p, UnitTensor) or p.param is None:
            return
        name, index = p.param
        full = tuple(self.tensors[name].shape)
        flat = np.arange(int(np.prod(full))) if index is None else np.asarray(index).reshape(-1)
        if flat.size == units.size:
            self.note_tensor(name, full, flat, units)

    def note_tensor(self, name: str, shape: tuple[int, ...], flat: np.ndarray, units: np.ndarray) -> None:
        """``units[i]``: the raw unit of entry ``flat[i]`` of the flattened tensor (other entries: none).
        Units varying along one axis only become a use of that axis; else the tensor is opaque."""
        at = np.full(int(np.prod(shape)), -1, dtype=np.int64)
        at[flat] = units
        grid = at.reshape(shape) if shape else at.reshape(())
        if not (grid >= 0).any():
            return
        for axis in range(len(shape)):
            moved = np.moveaxis(grid, axis, 0).reshape(shape[axis], -1)
            if np.all(moved == moved[:, :1]):
                self.uses.append((name, axis, moved[:, 0].copy()))
                return
        self.opaque.append((name, "an entrywise use that mixes its axes", grid[grid >= 0]))

    def note_elementwise(self, node, op: str, p: UnitTensor, out: UnitTensor) -> None:
        """A parameter added to or multiplying activations: each entry meets the units at its
        broadcast places; an entry that meets several units (a scalar gain) indexes none."""
        name, index = p.param
        full = tuple(self.tensors[name].shape)
        shape = out.units.shape
        idx = np.arange(int(np.prod(full))).reshape(full) if index is None else np.asarray(index)
        try:
            idx = np.broadcast_to(idx, shape).reshape(-1)
        except ValueError:
            self.opaque.append((name, f"{op} at {self.where(node)}", out.units[out.units >= 0]))
            return
        units = self.builder.roots(out.units.reshape(-1))
        has = units >= 0
        pairs = np.unique(np.stack([idx[has], units[has]]), axis=1)
        counts = np.unique(pairs[0], return_counts=True)[1]
        # an entry shared by several units indexes none: unchanged by any permutation of them (checked later)
        if counts.size == 0 or counts.max() == 1:
            self.note_tensor(name, full, pairs[0], pairs[1])

    def note_layer(self, node, op: str, args: list, out: Any) -> None:
        """Biases of layers with weights (their weights are the tracer's blocks)."""
        if not isinstance(out, UnitTensor):
            return
        bias = _BIAS.get("conv" if "conv" in op else op)
        if bias is not None and len(args) > bias[0]:
            self.note_axis(args[bias[0]], self.features(node, out, bias[1])[0])
        elif op in ("lstm", "gru", "rnn_tanh", "rnn_relu") and len(args) > 3:
            per = 4 if args[3] else 2
            plist = list(args[2])
            for i in range(0, len(plist) - per + 1, per):
                self.note_gate_biases(plist[i], plist[i + 2 : i + per])
        elif op in ("lstm_cell", "gru_cell") and len(args) > 4:
            self.note_gate_biases(args[2], args[4:6])
        elif op == "embedding":
            w = args[0]
            units = self.features(node, out, -1)[0]
            if isinstance(w, UnitTensor) and w.param is not None and w.param[1] is None:
                self.uses.append((w.param[0], 1, units))

    def note_gate_biases(self, w_ih: Any, biases: Sequence[Any]) -> None:
        """A recurrent layer's biases: stacked gate rows like its input weight's."""
        if not isinstance(w_ih, UnitTensor) or w_ih.param is None:
            return
        blocks = [b for b in self.builder.blocks if b.name == w_ih.param[0]]
        if not blocks:
            return
        dst = np.asarray(blocks[-1].dst)
        for b in biases:
            if isinstance(b, UnitTensor) and b.param is not None and b.param[1] is None:
                n = int(self.tensors[b.param[0]].shape[0])
                if n % dst.size == 0:
                    self.uses.append((b.param[0], 0, dst[np.arange(n) % dst.size]))

    def opaque_use(self, node, op: str, params: list, acts: list) -> None:
        units = np.concatenate([self.builder.roots(a.units[a.units >= 0]) for a in acts])
        for p in params:
            self.opaque.append((p.param[0], f"{op} at {self.where(node)}", units))

    # -- attention heads --------------------------------------------------------------------------
    def _heads(self, units: np.ndarray, dim_axis: int) -> np.ndarray:
        """(heads, dim) raw units of a ``(..., T, dim)`` (``dim_axis=-1``) or ``(..., dim, T)``
        tensor, one row per distinct head (batch copies dropped)."""
        u = np.moveaxis(units, dim_axis, -1)
        u = u.reshape(-1, u.shape[-2], u.shape[-1])[:, 0, :]
        u = self.builder.roots(u)
        _, first = np.unique(u, axis=0, return_index=True)
        return u[np.sort(first)]

    def note_product(self, node, args: list) -> None:
        a, b = (args + [None, None])[:2]
        if not (isinstance(a, UnitTensor) and isinstance(b, UnitTensor)) or b.units.ndim < 3:
            return
        a_has, b_has = (a.units >= 0).any(), (b.units >= 0).any()
        if a_has and b_has and a.param is None and b.param is None:  # q @ k^T
            self.products[node.name] = (self._heads(a.units, -1), self._heads(b.units, -2))
        elif b_has and not a_has and b.param is None:  # scores @ v: find the q @ k^T behind the scores
            q = k = np.empty((0, 0), np.int64)  # none found: the heads are unknown
            seen, todo = set(), deque([node.args[0]])
            while todo:
                n = todo.popleft()
                if not hasattr(n, "name") or n.name in seen:
                    continue
                seen.add(n.name)
                if n.name in self.products:
                    q, k = self.products[n.name]
                    break
                todo.extend(n.all_input_nodes)
            self.attention.append((q, k, self._heads(b.units, -1), self.where(node)))

    def note_heads(self, node, q: Any, k: Any, v: Any) -> None:
        if all(isinstance(t, UnitTensor) for t in (q, k, v)) and v.units.ndim >= 3:
            heads = [self._heads(t.units, -1) for t in (q, k, v)]
            self.attention.append((*heads, self.where(node)))


def _weight_uses(interp: _Recorder, params: dict[str, Any]) -> tuple[list, dict[str, str]]:
    """(tensor, axis, raw units) of every weight the tracer made a block of (rows: the units it
    writes, one slot per stacked gate row; columns: the units it reads), paired with its read as
    `map_parameters` pairs them; and the weights whose entries it cannot place."""
    reads: dict[str, deque] = defaultdict(deque)
    for r in interp.reads:
        reads[r[4]].append(r)
    uses, unplaced = [], {}
    for blk in interp.builder.blocks:
        if blk.name not in params:
            continue
        read = reads[blk.name].popleft() if reads[blk.name] else None
        shape = tuple(params[blk.name].shape)
        axis = None if read is None else read[5]
        if axis not in (0, 1) or len(shape) < 2:
            unplaced[blk.name] = "its weight is read as a computed slice or a grouped convolution"
            continue
        row = 1 - axis
        dst, src = np.asarray(blk.dst), np.asarray(read[3])
        if shape[axis] != src.size or dst.size == 0 or shape[row] % dst.size:
            unplaced[blk.name] = f"its shape {shape} does not match the units it joins"
            continue
        uses += [(blk.name, row, dst[np.arange(shape[row]) % dst.size]), (blk.name, axis, src)]
    return uses, unplaced


def permutable_groups(
    model: nn.Module,
    example_input: Any,
    *,
    kwargs: dict | None = None,
    verify: bool = True,
    strict: bool = True,
    seed: int = 0,
) -> UnitGroups:
    """The permutable unit groups of ``model`` traced on ``example_input`` (a tensor or a tuple of
    the forward's arguments, batch 1 is enough).

    ``verify``: permute every group by a random order (from ``seed``) on the example input and
    check the output does not change (then restore). ``strict``: refuse in one line the first
    hidden group that cannot be permuted; otherwise it is listed in `UnitGroups.refused`.
    """
    program = export_module(model, example_input, kwargs)
    interp = _Recorder(program, "1", False, None)
    interp.module = model
    graph = interp.run()
    tensors = model.state_dict(keep_vars=True)  # every parameter and buffer by every name (tied: each)
    names = graph.group_names
    fixed = _fixed(interp, graph)
    refused: dict[int, str] = {}
    keys = _Keys(interp, graph, refused)
    weight_uses, unplaced = _weight_uses(interp, tensors)
    for name, why in unplaced.items():  # every group the unplaced weight touches
        for blk in interp.builder.blocks:
            if blk.name == name:
                keys.refuse(np.concatenate([blk.dst, blk.src]), f"{name}: {why}")
    for name, what, raw in interp.opaque:
        keys.refuse(raw, f"{name} is read through {what}, which modscope cannot permute")
    slices = _slices(keys, _per_axis(keys, tensors, [*weight_uses, *interp.uses]), graph)
    fixed_idx = {i for i, nm in enumerate(names) if nm in fixed}
    groups = []
    for g in sorted(set(slices) - fixed_idx - set(refused)):
        heads = g in keys.heads
        nodes = keys.heads[g] if heads else np.arange(graph.offsets[g], graph.offsets[g + 1])[:, None]
        groups.append(PermutableGroup(g, names[g], int(nodes.shape[0]), nodes, tuple(slices[g]), heads))
    if verify:
        groups = _verified(model, example_input, kwargs, groups, refused, seed)
    refused_names = {names[g]: why for g, why in refused.items() if g not in fixed_idx}
    if strict and refused_names:
        name, why = next(iter(refused_names.items()))
        raise ModscopeError(f"cannot permute unit group {name}: {why}; use a module of supported layers")
    return UnitGroups(graph, map_parameters(interp, graph), tuple(groups), fixed, refused_names)


def _fixed(interp: _Recorder, graph: WeightGraph) -> dict[str, str]:
    """The groups that stay in place: the network's inputs (the data's order) and outputs (the
    targets')."""
    fixed = {graph.group_names[g]: "the network's input" for g, kind in enumerate(graph.group_kinds)
             if kind == "input"}
    outs = [np.ravel(o) for o in interp.output_units]
    outs = np.concatenate(outs) if outs else np.empty(0, dtype=np.int64)
    nodes = interp.builder.node_of[outs[outs >= 0]]
    group_of = np.repeat(np.arange(len(graph.sizes)), graph.sizes)
    for g in np.unique(group_of[nodes[nodes >= 0]]):
        fixed.setdefault(graph.group_names[g], "the network's output")
    return fixed


class _Keys:
    """Each traced unit's movable unit: ``(group, unit, sub-slot)`` by its union-find root; the
    value units of multi-head attention are grouped by head with their query and key units."""

    def __init__(self, interp: _Recorder, graph: WeightGraph, refused: dict[int, str]) -> None:
        b = interp.builder
        n_raw = len(b.parent)
        self.builder, self.refused = b, refused
        node_of_root = np.full(n_raw, -1, dtype=np.int64)
        node_of_root[b.roots(np.arange(n_raw))] = b.node_of
        offsets = graph.offsets
        group_of = np.repeat(np.arange(len(graph.sizes)), graph.sizes)
        live = node_of_root >= 0
        self.g = np.where(live, group_of[np.maximum(node_of_root, 0)], -1)
        self.m = np.where(live, node_of_root - offsets[np.maximum(self.g, 0)], -1)
        self.s = np.zeros(n_raw, dtype=np.int64)
        self.heads: dict[int, np.ndarray] = {}  # group -> (heads, dim) value nodes
        for q, k, v, where in interp.attention:
            vn = node_of_root[v]
            if not (vn >= 0).any() or v.shape[0] < 2:
                continue  # one head: its value units move freely, queries and keys stay
            g = int(group_of[vn[vn >= 0][0]])
            why = None
            if q.size == 0:
                why = f"the attention at {where} is not q @ k^T then @ v: its heads are unknown"
            elif not (q.shape == k.shape and q.shape[0] == v.shape[0]) or (vn < 0).any():
                why = f"the attention at {where} has grouped or partial heads"
            elif g in self.heads or set(vn.ravel().tolist()) != set(range(offsets[g], offsets[g + 1])):
                why = f"the value units of the attention at {where} share a group with other units"
            if why is not None:
                refused.setdefault(g, why)
                continue
            self.heads[g] = vn
            width = max(q.shape[1], v.shape[1])
            for role, members in ((_Q, q), (_K, k), (_V, v)):
                self.g[members] = g
                self.m[members] = np.arange(members.shape[0])[:, None]
                self.s[members] = role * width + np.arange(members.shape[1])[None, :]

    def __call__(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.builder.roots(np.asarray(raw, dtype=np.int64))
        ok, rr = r >= 0, np.maximum(r, 0)
        return np.where(ok, self.g[rr], -1), np.where(ok, self.m[rr], -1), np.where(ok, self.s[rr], 0)

    def refuse(self, raw: np.ndarray, why: str) -> None:
        for g in np.unique(self(raw)[0]):
            if g >= 0:
                self.refused.setdefault(int(g), why)


def _per_axis(keys: _Keys, tensors: dict[str, torch.Tensor], uses: list) -> dict[tuple[str, int], tuple]:
    """One ``(group, unit, sub-slot)`` per entry of each (tensor, axis); tied or repeated uses must
    agree (a tensor read as two orders of one group is refused)."""
    first: dict[int, str] = {}  # each name -> the first name of the same tensor (tied: permuted once)
    canonical = {name: first.setdefault(id(t), name) for name, t in tensors.items()}
    per_axis: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, axis, raw in uses:
        if name not in tensors:
            continue
        name = canonical[name]
        kg, km, ks = keys(raw)
        if (name, axis) not in per_axis:
            per_axis[(name, axis)] = (kg, km, ks)
            continue
        og, om, os_ = per_axis[(name, axis)]
        clash = (og >= 0) & (kg >= 0) & ((og != kg) | (om != km) | (os_ != ks))
        for g in np.unique(np.concatenate([og[clash], kg[clash]])):
            keys.refused.setdefault(int(g), f"{name} is read as two orders of one group (axis {axis})")
        take = (og < 0) & (kg >= 0)
        per_axis[(name, axis)] = (np.where(take, kg, og), np.where(take, km, om), np.where(take, ks, os_))
    return per_axis


def _slices(keys: _Keys, per_axis: dict, graph: WeightGraph) -> dict[int, list[Slice]]:
    """Per group, its `Slice` of every (tensor, axis) that indexes it; a slice that does not hold
    every movable unit in the same slots (a split of the group) refuses the group."""
    slices: dict[int, list[Slice]] = defaultdict(list)
    for (name, axis), (kg, km, ks) in per_axis.items():
        for g in np.unique(kg[kg >= 0]).tolist():
            n = keys.heads[g].shape[0] if g in keys.heads else int(graph.sizes[g])
            idx = np.flatnonzero(kg == g)
            m, s = km[idx], ks[idx]
            order = np.lexsort((idx, s, m))  # rank of each entry among its unit's same sub-slot
            ms = m[order] * (int(s.max()) + 1) + s[order]
            starts = np.r_[0, np.flatnonzero(np.diff(ms)) + 1]
            rank = np.empty(idx.size, dtype=np.int64)
            rank[order] = np.arange(idx.size) - np.repeat(starts, np.diff(np.r_[starts, idx.size]))
            slot_keys, slot = np.unique(s * (idx.size + 1) + rank, return_inverse=True)
            table = np.full((n, slot_keys.size), -1, dtype=np.int64)
            table[m, slot] = idx
            if not (table >= 0).all():
                keys.refused.setdefault(
                    g, f"{name} reads only part of group {graph.group_names[g]} (axis {axis}): a split"
                )
                continue
            slices[g].append(Slice(name, axis, idx, m, slot, table))
    return slices


def _verified(
    model: nn.Module, example_input: Any, kwargs: dict | None, groups: list, refused: dict, seed: int
) -> list[PermutableGroup]:
    """The groups whose random permutation leaves the output on the example input unchanged."""
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    rng = np.random.default_rng(seed)
    kept = []
    with eval_mode(model, no_grad=True):  # every module's own mode given back at the end
        base = _flat_output(model(*args, **(kwargs or {})))
        for grp in groups:
            order = rng.permutation(grp.size)
            permute(model, grp, order)
            try:
                out = _flat_output(model(*args, **(kwargs or {})))
            finally:
                permute(model, grp, np.argsort(order))
            tol = 1e-4 * (1.0 + float(base.abs().max()))
            if out.shape == base.shape and float((out - base).abs().max()) <= tol:
                kept.append(grp)
            else:
                refused.setdefault(
                    grp.group, "permuting it changes the output on the example input (an op reads "
                    "its units in an order the tracer does not follow)"
                )
    return kept


def _flat_output(out: Any) -> torch.Tensor:
    if torch.is_tensor(out):
        return out.detach().double().reshape(-1)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, list | tuple):
        parts = [_flat_output(o) for o in out if o is not None]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    return torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def permute(
    model: nn.Module,
    group: PermutableGroup,
    order: Sequence[int] | np.ndarray | torch.Tensor,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Put movable unit ``order[p]`` of ``group`` where unit ``p`` is, in every tensor slice that
    indexes the group (and in the optimizer's state of the same shape): the network computes the
    same function."""
    order = np.asarray(order.cpu() if torch.is_tensor(order) else order, dtype=np.int64)
    if order.shape != (group.size,) or not np.array_equal(np.sort(order), np.arange(group.size)):
        raise ModscopeError(f"a permutation of group {group.name} needs the {group.size} units in some order")
    tensors = model.state_dict(keep_vars=True)
    for s in group.slices:
        t = tensors[s.tensor]
        _reorder(t, s.axis, torch.as_tensor(s.gather(order, t.shape[s.axis]), device=t.device), optimizer)
