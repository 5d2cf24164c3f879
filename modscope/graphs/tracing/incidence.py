"""Where each parameter writes and reads units: for every entry of a layer's parameter, the node of
the unit graph ([spec §1b][spec-1b]) it writes into and the node it reads from.

The tracer records it as it builds the graph (`map_parameters`, kept as
`TracedNetwork.parameters`): the unit each of a parameter's rows writes (a Linear's neuron, a conv's
output channel, an LSTM's hidden unit for each of its stacked gate rows, an attention value
dimension; rows that reach no output, such as query and key rows, write none) and the unit each of
its columns reads (an input feature, a channel, a residual stream's unit). Kernel entries of a
convolution all join the same two channels; grouped convolutions join each output channel to its
group's input channels only.

A `WeightGraph` alone gives the same from its edge sets (`graph_parameter_map`) for parameters stored
as torch's ``(out, in[, kernel])`` whose rows and columns are the units of their block's groups in
order (recurrent ``weight_ih`` / ``weight_hh``: ``gates x units`` rows), and a plain feed-forward
stack from its layers' shapes alone (`chain_parameter_map`). Masks count kept weights per unit with
it; lesions and the network object can ask it where a unit group is written and read.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ModscopeError
from ..weight_graph import WeightGraph
from .unit_table import along

__all__ = [
    "Incidence",
    "ParameterMap",
    "chain_parameter_map",
    "graph_parameter_map",
    "map_parameters",
]


@dataclass(frozen=True, eq=False)
class Incidence:
    """One use of ``parameter`` (of ``shape``) by a layer. ``rows`` / ``cols``: int64 arrays that
    broadcast to ``shape``, the graph node each entry writes into / reads from (``-1``: none), so a
    Linear's map costs ``out + in`` integers, not ``out x in``."""

    parameter: str
    shape: tuple[int, ...]
    rows: np.ndarray
    cols: np.ndarray

    @property
    def dst(self) -> np.ndarray:
        """``(numel,)`` the node each entry of the flattened parameter writes into (``-1``: none)."""
        return np.broadcast_to(self.rows, self.shape).reshape(-1)

    @property
    def src(self) -> np.ndarray:
        """``(numel,)`` the node each entry of the flattened parameter reads from (``-1``: none)."""
        return np.broadcast_to(self.cols, self.shape).reshape(-1)


@dataclass(frozen=True, eq=False)
class ParameterMap:
    """The unit graph of a network and the `Incidence` of every parameter use that joins its units.

    ``unmapped``: parameters used in a way whose entries cannot be assigned to units (a layer
    reading a computed slice of a parameter): they count for no unit.
    """

    graph: WeightGraph
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

    def hidden_groups(self) -> np.ndarray:
        """``(n_groups,)`` bool: groups that one layer writes and another reads (not the network's
        inputs and outputs)."""
        written_and_read = {d for _, d in self.graph.links} & {s for s, _ in self.graph.links}
        return np.array([g in written_and_read for g in range(len(self.graph.sizes))])

    def node_counts(self, selected: Mapping[str, Any]) -> np.ndarray:
        """``(n_nodes,)`` selected incident entries per unit: entries of ``selected`` (``{parameter:
        bool array of its shape}``, e.g. a weight mask) writing into the unit, plus those reading
        from it."""
        counts = np.zeros(self.n_nodes, dtype=np.int64)
        for inc in self.incidences:
            if inc.parameter not in selected:
                continue
            m = selected[inc.parameter]  # a bool array or tensor
            m = np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m, dtype=bool)
            if m.size != int(np.prod(inc.shape, dtype=np.int64)):
                raise ModscopeError(
                    f"{inc.parameter}: a mask of {m.size} entries for a parameter of shape {inc.shape}"
                )
            m = m.reshape(inc.shape)
            for ends in (inc.rows, inc.cols):
                ends = np.broadcast_to(ends, inc.shape)
                counts += np.bincount(ends[m & (ends >= 0)], minlength=self.n_nodes)
        return counts

    def group_entries(
        self, names: Sequence[str], sizes: Sequence[int]
    ) -> Iterator[tuple[str, list[str], list[str], np.ndarray]]:
        """Per unit group: ``(name, parameters writing into it, parameters reading from it, (P,) bool
        selector of the entries touching it)`` over the flat layout of ``names`` of ``sizes``
        entries (flattened and concatenated). Parameters no traced layer uses (biases) touch no
        group."""
        group = np.append(self.group_of(), -1)  # node -1 (none) -> group -1
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
                    w, r = group[inc.dst] == g, group[inc.src] == g
                    if w.any() and n not in writes:
                        writes.append(n)
                    if r.any() and n not in reads:
                        reads.append(n)
                    sel[offsets[i] : offsets[i + 1]] |= w | r
            yield gname, writes, reads, sel


def _grouped_conv(
    name: str, shape: tuple[int, ...], dst: np.ndarray, src: np.ndarray, groups: int, transposed: bool
) -> Incidence | None:
    """A grouped convolution's entries: output channel ``o`` reads its group's input channels only."""
    # (out, in / groups, *k): output o reads the channels of group o // (out / groups); transposed,
    # (in, out / groups, *k): input channel i feeds its group's outputs (the roles swapped)
    whole, per_group = (src, dst) if transposed else (dst, src)  # axis 0's units, axis 1's groups'
    n, per = shape[0], shape[1]
    if n % groups or n != whole.size or per * groups != per_group.size:
        return None
    i = np.arange(n)[:, None]
    j = (i // (n // groups)) * per + np.arange(per)[None, :]
    first, second = np.broadcast_to(whole[i], j.shape), per_group[j]
    rows, cols = (second, first) if transposed else (first, second)
    kernel = (1,) * (len(shape) - 2)
    return Incidence(name, shape, rows.reshape(rows.shape + kernel), cols.reshape(cols.shape + kernel))


def _incidence(
    name: str, shape: tuple[int, ...], dst: np.ndarray, src: np.ndarray, axis: int | None, module: Any
) -> Incidence | None:
    """The entries of one use of parameter ``name`` (``shape``) by a traced layer: the nodes its
    block's rows write (``dst``) and the nodes per feature it reads (``src``) along the parameter's
    feature ``axis``; None when they do not fit."""
    if len(shape) < 2:
        return None
    if axis in (0, 1):
        col, row = axis, 1 - axis
        if shape[col] != src.size or dst.size == 0 or shape[row] % dst.size:
            return None
        # stacked gate rows (i, f, g, o of an LSTM): row r belongs to unit r mod h
        rows = dst[np.arange(shape[row]) % dst.size]
        return Incidence(name, shape, along(rows, len(shape), row), along(src, len(shape), col))
    groups = int(getattr(module, "groups", 1) or 1)
    grouped_conv = axis is None and groups > 1 and hasattr(module, "transposed")
    return _grouped_conv(name, shape, dst, src, groups, bool(module.transposed)) if grouped_conv else None


def map_parameters(interp: Any, graph: WeightGraph) -> ParameterMap:
    """The `ParameterMap` of a finished trace (``interp``: the `Interpreter` that made ``graph``,
    its ``module`` the traced ``nn.Module``): every block named by a parameter, with the read that
    fed it."""
    nodes = interp.builder.nodes
    model = interp.module
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
        module = model.get_submodule(blk.name.rpartition(".")[0])  # a parameter's owner: always there
        inc = None if read is None else _incidence(
            blk.name, tuple(params[blk.name].shape), nodes(blk.dst), nodes(read[3]), read[5], module
        )
        if inc is None:
            unmapped.append(blk.name)
        else:
            incidences.append(inc)
    return ParameterMap(graph, tuple(incidences), tuple(dict.fromkeys(unmapped)))


_RECURRENT_NAMES = ("weight_ih", "weight_hh")


def graph_parameter_map(graph: WeightGraph, shapes: Mapping[str, tuple[int, ...]]) -> ParameterMap:
    """The `ParameterMap` of a `WeightGraph` whose blocks are named by parameters (``graph.names``;
    stacked blocks ``a+b``) for parameters of ``shapes``: rows the units of the block's destination
    group and columns those of its source group, in order, torch's ``(out, in[, kernel])`` layout
    (``weight_ih`` / ``weight_hh``: ``gates x units`` rows). A parameter that does not fit its block
    this way (``(in, out)`` layers, packed q/k/v projections, a parameter split over several blocks)
    is refused: pass the traced network (``trace_network(model, example_input)``)."""
    offsets = graph.offsets
    seen: set[str] = set()
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
                    "graph=trace_network(model, example_input), which follows the trace"
                )
            seen.add(name)
            # the block's rows and columns in order: a traced layer's use of its (out, in) parameter
            dst, src = offsets[gd] + np.arange(n_dst), offsets[gs] + np.arange(n_src)
            incidences.append(_incidence(name, shape, dst, src, 1, None))
    if not incidences:
        raise ModscopeError("no masked parameter names a block of the graph (graph.names)")
    return ParameterMap(graph, tuple(incidences))


def chain_parameter_map(
    shapes: Sequence[tuple[int, ...]], names: Sequence[str] | None = None
) -> ParameterMap:
    """The `ParameterMap` of a plain feed-forward stack of layers of ``shapes`` (torch's ``(out,
    in[, kernel])``, in forward order; ``names`` default ``layer0, layer1, ...``), read from the
    shapes alone: layer ``l`` joins unit group ``l`` (its inputs) to group ``l + 1``."""
    shapes = [tuple(int(d) for d in s) for s in shapes]
    if not shapes:
        raise ModscopeError("a feed-forward stack needs at least one layer")
    for li, s in enumerate(shapes):
        if len(s) < 2:
            raise ModscopeError(f"a layer must be (out, in[, ...]), got shape {s}")
        if li and s[1] != shapes[li - 1][0]:
            raise ModscopeError(
                f"layer {li} has {s[1]} inputs but layer {li - 1} has {shapes[li - 1][0]} outputs: "
                "not a plain feed-forward stack"
            )
    names = [f"layer{i}" for i in range(len(shapes))] if names is None else list(names)
    # the edge sets are all the map needs: weights that take no memory
    weights = tuple(np.broadcast_to(np.float64(0.0), s[:2]) for s in shapes)
    return graph_parameter_map(
        WeightGraph(weights, names=tuple(names)), dict(zip(names, shapes, strict=True))
    )
