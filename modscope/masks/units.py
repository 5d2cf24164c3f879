"""Which units each masked weight joins: for every entry of a layer's parameter, the unit of the
traced unit graph ([spec §1b][spec-1b]) it writes into and the unit it reads from.

`unit_map` traces the module (`modscope.graphs.tracing`, ``torch.export``) and follows every use
of a parameter by a layer: the unit each of the parameter's rows writes (a Linear's neuron, a conv's
output channel, an LSTM's hidden unit for each of its stacked gate rows, an attention value
dimension; rows that reach no output, such as query and key rows, write none) and the unit each
of its columns reads (an input feature, a channel, a residual stream's unit). Kernel entries of a
convolution all join the same two channels, so each kept kernel entry counts; grouped
convolutions join each output channel to its group's input channels only.

A `WeightGraph` alone (`unit_map_from_graph`) gives the same for parameters stored as torch's
``(out, in[, kernel])`` whose rows and columns are the units of their block's groups in order
(recurrent ``weight_ih`` / ``weight_hh``: ``gates x units`` rows); anything else needs the module.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModscopeError

__all__ = ["Incidence", "UnitMap", "unit_map", "unit_map_from_graph"]


@dataclass(frozen=True, eq=False)
class Incidence:
    """One use of ``parameter`` by a layer: ``dst[i]`` / ``src[i]`` the graph node that entry ``i``
    of the flattened parameter writes into / reads from, ``-1`` for none (int64, ``(numel,)``)."""

    parameter: str
    dst: np.ndarray
    src: np.ndarray


@dataclass(frozen=True, eq=False)
class UnitMap:
    """The unit graph of a network and the `Incidence` of every parameter use that joins its units.

    ``unmapped``: parameters used in a way whose entries cannot be assigned to units (a layer
    reading a computed slice of a parameter): they count for no unit.
    """

    graph: Any  # the traced WeightGraph
    incidences: tuple[Incidence, ...]
    unmapped: tuple[str, ...] = ()

    @property
    def n_nodes(self) -> int:
        return int(self.graph.n_nodes)

    @property
    def parameters(self) -> list[str]:
        return list(dict.fromkeys(i.parameter for i in self.incidences))

    def group_of(self) -> np.ndarray:
        """``(n_nodes,)`` the unit group of every graph node."""
        return np.repeat(np.arange(len(self.graph.sizes)), self.graph.sizes)

    def node_counts(self, masks: Mapping[str, Any]) -> np.ndarray:
        """``(n_nodes,)`` kept incident weights per unit: entries of ``masks`` (``{parameter: bool
        mask}``) kept and writing into the unit, plus those kept and reading from it."""
        counts = np.zeros(self.n_nodes, dtype=np.int64)
        for inc in self.incidences:
            if inc.parameter not in masks:
                continue
            m = _array(masks[inc.parameter]).reshape(-1)
            if m.size != inc.dst.size:
                raise ModscopeError(
                    f"{inc.parameter}: a mask of {m.size} entries for a parameter of {inc.dst.size}"
                )
            for ends in (inc.dst, inc.src):
                hit = m & (ends >= 0)
                counts += np.bincount(ends[hit], minlength=self.n_nodes)
        return counts

    def group_entries(
        self, names: Sequence[str], sizes: Sequence[int]
    ) -> Iterator[tuple[str, list[str], list[str], np.ndarray]]:
        """Per unit group: ``(name, parameters writing into it, parameters reading from it, (P,) bool
        selector of the entries touching it)`` over the flat layout of ``names`` of ``sizes``
        entries (flattened and concatenated, as `FrozenNet` lays them out). Parameters no traced
        layer uses (biases) touch no group."""
        group = self.group_of()
        per: dict[str, list[Incidence]] = defaultdict(list)
        for inc in self.incidences:
            per[inc.parameter].append(inc)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        for g, gname in enumerate(self.graph.group_names):
            sel = np.zeros(int(offsets[-1]), dtype=bool)
            writes, reads = [], []
            for i, n in enumerate(names):
                for inc in per.get(n, ()):
                    if inc.dst.size != sizes[i]:
                        raise ModscopeError(f"{n}: {sizes[i]} mask entries for a parameter of {inc.dst.size}")
                    w = (inc.dst >= 0) & (group[np.maximum(inc.dst, 0)] == g)
                    r = (inc.src >= 0) & (group[np.maximum(inc.src, 0)] == g)
                    if w.any() and n not in writes:
                        writes.append(n)
                    if r.any() and n not in reads:
                        reads.append(n)
                    sel[offsets[i] : offsets[i + 1]] |= w | r
            yield gname, writes, reads, sel


def _array(t: Any) -> np.ndarray:
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    return a.astype(bool)


def _nodes(units: np.ndarray, node_of: np.ndarray) -> np.ndarray:
    """Graph node of each traced unit id (``-1``: none, or dropped as a dead end)."""
    units = np.asarray(units, dtype=np.int64)
    return np.where(units >= 0, node_of[np.maximum(units, 0)], -1)


def _grid(shape: tuple[int, ...], axis: int, values: np.ndarray) -> np.ndarray:
    """``values`` (one per index of ``axis``) broadcast over a parameter of ``shape``, flattened."""
    view = [1] * len(shape)
    view[axis] = len(values)
    return np.broadcast_to(values.reshape(view), shape).reshape(-1).copy()


def _incidence(
    name: str,
    shape: tuple[int, ...],
    dst_units: np.ndarray,
    read: tuple | None,
    module: Any,
    node_of: np.ndarray,
) -> Incidence | None:
    """The entries of one use of parameter ``name`` (``shape``) by a traced layer: its block's rows
    (``dst_units``) and the read that fed it (units per feature, the parameter's feature axis)."""
    if read is None or len(shape) < 2:
        return None
    feature_units, axis = np.asarray(read[3]), read[5]
    dst = _nodes(dst_units, node_of)
    src = _nodes(feature_units, node_of)
    if axis in (0, 1):
        col, row = axis, 1 - axis
        if shape[col] != src.size or dst.size == 0 or shape[row] % dst.size:
            return None
        # stacked gate rows (i, f, g, o of an LSTM): row r belongs to unit r mod h
        rows = dst[np.arange(shape[row]) % dst.size]
        return Incidence(name, _grid(shape, row, rows), _grid(shape, col, src))
    groups = int(getattr(module, "groups", 1) or 1)
    if axis is None and groups > 1 and hasattr(module, "transposed"):  # a grouped convolution
        ipg_total = src.size
        if module.transposed:  # (in, out / groups, *k): input channel i feeds its group's outputs
            n_in, per_out = shape[0], shape[1]
            if n_in != ipg_total or per_out * groups != dst.size:
                return None
            i = np.arange(n_in)[:, None]
            o = (i // (n_in // groups)) * per_out + np.arange(per_out)[None, :]
            d2, s2 = dst[o], np.broadcast_to(src[i], o.shape)
        else:  # (out, in / groups, *k): output o reads channels of group o // (out / groups)
            n_out, ipg = shape[0], shape[1]
            if n_out != dst.size or ipg * groups != ipg_total:
                return None
            o = np.arange(n_out)[:, None]
            j = (o // (n_out // groups)) * ipg + np.arange(ipg)[None, :]
            d2, s2 = np.broadcast_to(dst[o], j.shape), src[j]
        kernel = int(np.prod(shape[2:], dtype=np.int64))
        return Incidence(name, np.repeat(d2.reshape(-1), kernel), np.repeat(s2.reshape(-1), kernel))
    return None


def unit_map(model: Any, example_input: Any, *, kwargs: dict | None = None) -> UnitMap:
    """The `UnitMap` of ``model`` traced on ``example_input`` (a batch-1 input of its forward; see
    `modscope.graphs.tracing.trace_graph`). The model runs once in eval mode and is not changed."""
    from ..graphs.tracing.export import export_module
    from ..graphs.tracing.interpreter import Interpreter

    interp = Interpreter(export_module(model, example_input, kwargs), "1", False, None)
    interp.module = model
    graph = interp.run()
    node_of = interp.builder.node_of
    params = dict(model.named_parameters())
    reads: dict[str, deque] = defaultdict(deque)
    for r in interp.reads:
        reads[r[4]].append(r)
    incidences, unmapped = [], []
    for blk in interp.builder.blocks:
        if blk.name not in params:
            continue
        # a block and the read that fed it share the parameter's name and come in the same order
        read = reads[blk.name].popleft() if reads[blk.name] else None
        owner = blk.name.rpartition(".")[0]
        try:
            module = model.get_submodule(owner) if owner else model
        except AttributeError:
            module = None
        inc = _incidence(blk.name, tuple(params[blk.name].shape), blk.dst, read, module, node_of)
        if inc is None:
            unmapped.append(blk.name)
        else:
            incidences.append(inc)
    return UnitMap(graph, tuple(incidences), tuple(dict.fromkeys(unmapped)))


_RECURRENT_NAMES = ("weight_ih", "weight_hh")


def unit_map_from_graph(graph: Any, shapes: Mapping[str, tuple[int, ...]]) -> UnitMap:
    """The `UnitMap` of a `WeightGraph` whose blocks are named by parameters (``graph.names``; stacked
    blocks ``a+b``) for parameters of ``shapes``: rows the units of the block's destination group and
    columns those of its source group, in order, torch's ``(out, in[, kernel])`` layout
    (``weight_ih`` / ``weight_hh``: ``gates x units`` rows). A parameter that does not fit its block
    this way (``(in, out)`` layers, packed q/k/v projections, a parameter split over several
    blocks) is refused: pass ``unit_map(model, example_input)``."""
    offsets = np.concatenate([[0], np.cumsum(graph.sizes)]).astype(np.int64)
    seen: dict[str, int] = {}
    incidences = []
    for b, (joined, (gs, gd)) in enumerate(zip(graph.names, graph.links, strict=True)):
        for name in str(joined).split("+"):
            if name not in shapes:
                continue
            shape = tuple(shapes[name])
            n_dst, n_src = graph.sizes[gd], graph.sizes[gs]
            gated = any(k in name.rsplit(".", 1)[-1] for k in _RECURRENT_NAMES)
            fits = len(shape) >= 2 and shape[1] == n_src and (
                shape[0] == n_dst or (gated and shape[0] % n_dst == 0)
            )
            if name in seen or not fits:
                why = "appears in several blocks" if name in seen else (
                    f"of shape {shape} does not fit block {b}"
                )
                raise ModscopeError(
                    f"{name} {why} ({n_dst} x {n_src} units) read as (out, in): pass "
                    "graph=unit_map(model, example_input), which follows the trace"
                )
            seen[name] = b
            rows = offsets[gd] + np.arange(shape[0]) % n_dst
            cols = offsets[gs] + np.arange(shape[1])
            incidences.append(Incidence(name, _grid(shape, 0, rows), _grid(shape, 1, cols)))
    if not incidences:
        raise ModscopeError("no masked parameter names a block of the graph (graph.names)")
    return UnitMap(graph, tuple(incidences))
