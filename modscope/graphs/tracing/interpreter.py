"""The walk over an exported program: one `UnitTensor` per node, one handler per aten op.

Ops are dispatched by their aten name to ``op_<name>`` handlers (the mixins of this package);
ops that keep every element's unit are listed in `IDENTITY`, ops that make constants in
`CONSTANTS`. Anything else is refused in one line naming the op and its module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ...errors import ModscopeError
from ...runtime.limits import Budget
from ..norms import slice_norms
from ..weight_graph import WeightGraph
from .layers import LayerOps
from .merges import MergeOps
from .normalisation import NormOps
from .recurrent import RecurrentOps
from .reductions import ReductionOps
from .unit_table import GraphBuilder, UnitTensor, along, carries_units, is_param
from .views import ViewOps

__all__ = ["CONSTANTS", "IDENTITY", "LOST", "Interpreter", "module_at", "op_name"]


IDENTITY = frozenset(
    """
    relu relu_ relu6 gelu gelu_ silu silu_ sigmoid sigmoid_ tanh tanh_ hardswish hardswish_ hardsigmoid
    hardsigmoid_ leaky_relu leaky_relu_ elu elu_ selu celu softplus mish hardtanh hardtanh_ clamp clamp_
    clamp_min clamp_min_ clamp_max clamp_max_
    clip abs neg exp log sqrt rsqrt pow reciprocal sin cos erf softmax _softmax log_softmax _log_softmax
    dropout dropout_ feature_dropout alpha_dropout glu_ contiguous clone alias detach detach_ _to_copy to
    type_as lift_fresh_copy square sign logit nan_to_num floor ceil round trunc fill_ masked_fill
    masked_fill_ prelu _prelu_kernel threshold
    """.split()
)  # activations, dropout, copies: each element keeps its unit
CONSTANTS = frozenset(
    """
    zeros ones full empty zeros_like ones_like full_like empty_like arange scalar_tensor rand randn
    tensor new_zeros new_ones triu tril argmax argmin eq ne lt le gt ge
    """.split()
)  # new tensors that hold no unit
SKIP = frozenset(
    """
    sym_size sym_numel sym_stride _assert_tensor_metadata _assert_async sym_constrain_range_for_size
    sym_constrain_range _assert_scalar item
    """.split()
)  # shape queries and runtime checks: no tensor


def op_name(target: Any) -> str:
    """``aten.linear.default`` -> ``linear``; ``operator.getitem`` -> ``getitem``."""
    text = str(target)
    return text.split(".")[1] if text.startswith("aten.") else getattr(target, "__name__", text)


def module_at(node: Any) -> tuple[str, str] | None:
    """The innermost module running ``node``: its dotted path (``""``: the root) and its class's
    name (``Linear``); None when the program does not say."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    return str(path), str(cls).rsplit(".", 1)[-1]


LOST = -1  # in followed axes: an axis a reshape split or merged, which holds no one input axis
_RESHAPES = frozenset("view reshape _unsafe_view flatten unflatten unsqueeze squeeze".split())


def _reshaped_axes(
    before: tuple[int, ...], after: tuple[int, ...], axes: list[int | None]
) -> list[int | None]:
    """``axes`` (one entry per axis of a tensor of shape ``before``) after a reshape to ``after``: an
    axis of the same size (over 1) after as many elements of the leading axes is the same axis; an
    axis of size 1 holds no input axis (None: one channel, one feature), any other is `LOST`."""
    lead_before = np.cumprod((1, *before[:-1])) if before else np.zeros(0)
    place = {(int(p), int(n)): i for i, (p, n) in enumerate(zip(lead_before, before, strict=True))}
    lead_after = np.cumprod((1, *after[:-1])) if after else np.zeros(0)
    out: list[int | None] = []
    for p, n in zip(lead_after, after, strict=True):
        i = place.get((int(p), int(n))) if n > 1 else None  # size 1: one element, whichever axis
        out.append(axes[i] if i is not None else (None if n == 1 else LOST))
    return out


class Interpreter(ViewOps, MergeOps, ReductionOps, NormOps, LayerOps, RecurrentOps):
    """Walks an exported program's nodes once, keeping a `UnitTensor` per tensor."""

    def __init__(
        self, ep: Any, kernel_norm: str = "1", keep_dead_ends: bool = False,
        input_axes: dict[str, int] | None = None, input_axis: int | None = None,
    ) -> None:
        """``ep``: the exported program; the rest: `trace_graph`'s options of the same names."""
        import torch

        self.ep = ep
        self.norm = kernel_norm
        self.keep_dead_ends = keep_dead_ends
        self.input_axes = dict(input_axes or {})
        self.builder = GraphBuilder()
        self.env: dict[str, Any] = {}
        self.tensors: dict[str, Any] = {}  # parameter / buffer / constant tensors by name (torch)
        self.arrays: dict[str, np.ndarray] = {}  # their float64 copies, made when a layer reads one
        self.param_of: dict[str, str] = {}  # placeholder -> parameter fully qualified name
        sig = ep.graph_signature
        state = {**ep.state_dict, **getattr(ep, "constants", {})}
        for spec in sig.input_specs:
            target = getattr(spec, "target", None)
            if target is not None and isinstance(state.get(target), torch.Tensor):
                self.param_of[spec.arg.name] = target
                self.tensors[target] = state[target]
        first = next((s.arg.name for s in sig.input_specs if str(s.kind).endswith("USER_INPUT")), None)
        if input_axis is not None and first is not None:  # the first input's feature axis, as given
            self.input_axes.setdefault(first, int(input_axis))
        self.output_units: list[np.ndarray] = []
        # (op node, source node or None, axis, unit per feature, parameter, its feature axis):
        # where units are read, for lesions (`modscope.graphs.tracing.sites`)
        self.reads: list[tuple[Any, Any, int, np.ndarray, str, int | None]] = []
        self.state_reads: set[int] = set()  # indices of reads of a recurrent layer's initial state

    def where(self, node) -> str:
        onnx_node = (node.meta.get("custom") or {}).get("onnx_node")
        if onnx_node:  # a module running an ONNX graph: the file's node and op
            return str(onnx_node)
        at = module_at(node)
        return f"{at[0] or 'the model'} ({at[1]})" if at else "the model"

    def kind(self, node) -> str:
        """The class of the module running ``node`` (``Linear``), or the ONNX op; '' if unknown."""
        onnx_node = (node.meta.get("custom") or {}).get("onnx_node")
        if onnx_node:
            return str(onnx_node).split()[1]  # "ONNX Conv node 3" -> "Conv"
        return (module_at(node) or ("", ""))[1]

    def refuse(self, node, why: str) -> ModscopeError:
        return ModscopeError(f"cannot trace {self.where(node)}: {why}")

    def shape(self, node) -> tuple[int, ...]:
        """The shape of the node's (first) output tensor."""
        val = node.meta.get("val")
        if isinstance(val, list | tuple) and val:
            val = val[0]
        if val is None or not hasattr(val, "shape"):
            raise self.refuse(node, f"no shape known for {node.target}")
        return tuple(int(s) for s in val.shape)

    @staticmethod
    def shapes(node) -> list[tuple[int, ...]]:
        """The shapes of a node's output tensors, as its metadata declares them."""
        val = node.meta.get("val")
        vals = val if isinstance(val, list | tuple) else [val]
        out = []
        for v in vals:
            if hasattr(v, "shape"):
                try:
                    out.append(tuple(int(d) for d in v.shape))
                except (TypeError, ValueError, RuntimeError):  # an unbacked symbolic size
                    continue
        return out

    def blank_like(self, node) -> Any:
        """Unit-free tensors of the node's output(s) (a list for an op with several)."""
        val = node.meta.get("val")
        if isinstance(val, list | tuple):
            return [self.blank(tuple(int(d) for d in v.shape)) if hasattr(v, "shape") else None for v in val]
        return self.blank(tuple(int(d) for d in val.shape)) if hasattr(val, "shape") else None

    def blank(self, shape: Sequence[int]) -> UnitTensor:
        return UnitTensor(np.full(shape, -1, dtype=np.int64), np.zeros(shape, dtype=np.int64))

    def value(self, arg: Any) -> Any:
        if hasattr(arg, "op") and hasattr(arg, "name"):  # an fx node
            return self.env[arg.name]
        return type(arg)(self.value(a) for a in arg) if isinstance(arg, list | tuple) else arg

    def param_value(self, v: UnitTensor) -> np.ndarray | None:
        """The numbers of a parameter-derived tensor, in its current layout (float64)."""
        if v.param is None:
            return None
        name, index = v.param
        if name not in self.arrays:
            t = self.tensors[name].detach().cpu()
            self.arrays[name] = t.double().numpy() if t.is_floating_point() else t.numpy()
        return self.arrays[name] if index is None else self.arrays[name].reshape(-1)[index]

    def features(
        self, node, v: UnitTensor, axis: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Along ``axis``: each index's unit, its position and gain, and its frame size.

        Every index must hold the same unit at every position of the other axes (positions with
        no unit are ignored): otherwise the op mixes units differently per position.
        """
        units = self.builder.roots(np.moveaxis(v.units, axis, -1).reshape(-1, v.units.shape[axis]))
        pos = np.moveaxis(v.pos, axis, -1).reshape(units.shape)
        scale = None if v.scale is None else np.moveaxis(v.scale, axis, -1).reshape(units.shape)
        has = units >= 0
        first = np.where(has.any(axis=0), has.argmax(axis=0), 0)
        cols = np.arange(units.shape[1])
        u = np.where(has.any(axis=0), units[first, cols], -1)
        if np.any(has & (units != u[None, :])):
            raise self.refuse(
                node,
                "its input features are not the same units at every position "
                "(a layer that mixes positions differently); trace a module that keeps "
                "features on one axis",
            )
        s = np.ones(units.shape[1]) if scale is None else scale[first, cols]
        return u, pos[first, cols], s, np.asarray(v.frame or (1,))

    def weighted(
        self, node, name: str, x: UnitTensor, axis: int, w: np.ndarray, out_size: int,
        block_name: str | None = None, param_axis: int | None = 1,
    ) -> tuple[np.ndarray, int]:
        """A new group of ``out_size`` units reading ``x`` along ``axis`` through ``w``
        ``(out_size, n_features[, *kernel])``; returns the new units and the block index.
        ``param_axis``: the axis of the parameter ``block_name`` whose index is the feature index
        (1 for a Linear or conv weight, 0 for ``x @ W``; None when it is not one to one)."""
        units, pos, scale, frame = self.features(node, x, axis)
        source = next((a for a in node.all_input_nodes if self.env.get(a.name) is x), None)
        self.reads.append((node, source, axis, units.copy(), block_name or name, param_axis))
        dst = self.builder.new_group(name, out_size, self.kind(node))
        read = units >= 0
        if not read.any():
            raise self.refuse(node, "it reads no unit (its input is a constant or an attention score)")
        if not read.all():
            units, pos, scale, w = units[read], pos[read], scale[read], w[:, read]
        if not np.all(scale == 1.0):  # a gain to fold in (LayerNorm); else no copy of a big matrix
            w = w * np.abs(scale).reshape((1, -1) + (1,) * (w.ndim - 2))
        src, inverse = np.unique(units, return_inverse=True)
        if src.size == units.size and w.ndim == 2:  # every unit read once: the (signed) weights
            order = np.argsort(units, kind="stable")
            weight = w if np.array_equal(order, np.arange(order.size)) else w[:, order]
        elif w.ndim == 2:  # several features per unit: each unit's slice arranged in its frame
            n_pos = int(np.prod(frame))
            slot = inverse * n_pos + pos % n_pos
            counts = np.unique(slot, return_counts=True)[1]
            if counts.max() == 1:
                cube = np.zeros((out_size, src.size, n_pos))
                cube[:, inverse, pos % n_pos] = np.abs(w)
                weight = slice_norms(cube.reshape(out_size, src.size, *frame), self.norm)
            elif n_pos == 1:  # one unit read through several features (shared key/value heads)
                rank = np.zeros(slot.size, dtype=np.int64)
                order = np.argsort(slot, kind="stable")
                rank[order] = np.arange(slot.size) - np.repeat(np.cumsum(counts) - counts, counts)
                cube = np.zeros((out_size, src.size, int(counts.max())))
                cube[:, inverse, rank] = np.abs(w)
                weight = slice_norms(cube, self.norm)
            else:
                raise self.refuse(node, "it reads the same position of a unit's map more than once")
        elif src.size == units.size:  # kernels: (out, features, *kernel)
            weight = slice_norms(w[:, np.argsort(units, kind="stable")], self.norm)
        else:  # a unit read through several input channels (C2f / SPPF: a map with pooled copies of
            # itself): its edge sums the kernel norms of every channel slice that reads it
            weight = np.zeros((out_size, src.size))
            np.add.at(weight.T, inverse, slice_norms(w, self.norm).T)
        return dst, self.builder.add_block(block_name or name, src, dst, weight)

    def run(self) -> WeightGraph:
        graph = self.ep.graph
        budget = Budget("the traced program")
        static = set(self.param_of)  # parameters and what is computed from them alone (views)
        for node in graph.nodes:
            if node.op == "call_function" and all(n.name in static for n in node.all_input_nodes):
                static.add(node.name)  # a view or cast of weights: not copied per unit
            elif node.op in ("placeholder", "call_function") and node.name not in static:
                # every activation is followed as units and positions (two int64 per element):
                # what a file's declared shapes cost is checked before it is allocated
                # an input also names a unit per feature (measured: ~170 bytes per element in all)
                cost = 192 if node.op == "placeholder" else 16
                for shape in self.shapes(node):
                    budget.shape(shape, cost, f"{node.name}'s output of shape {tuple(shape)}")
            if node.op == "placeholder":
                self.placeholder(node)
            elif node.op == "call_function":
                self.call(node)
            elif node.op == "output":
                outs = self.flatten_outputs(self.value(node.args[0]))
                self.output_units.extend(out.units for out in outs if isinstance(out, UnitTensor))
            elif node.op == "get_attr":
                raise self.refuse(node, f"it reads an attribute {node.target!r} the export could not lift")
        return self.builder.finish(self.output_units, self.keep_dead_ends, self.norm)

    def flatten_outputs(self, x: Any) -> list:
        return [y for item in x for y in self.flatten_outputs(item)] if isinstance(x, list | tuple) else [x]

    def placeholder(self, node) -> None:
        name = node.name
        if name in self.param_of:
            target = self.param_of[name]
            shape = tuple(self.tensors[target].shape)  # no copies: an embedding table may be huge
            self.env[name] = UnitTensor(
                np.broadcast_to(np.int64(-1), shape), np.broadcast_to(np.int64(0), shape),
                param=(target, None),
            )
            return
        val = node.meta.get("val")
        if val is None or not hasattr(val, "shape"):
            self.env[name] = None
            return
        shape = tuple(int(s) for s in val.shape)
        if not val.is_floating_point():  # token ids: the embedding starts the stream
            self.env[name] = self.blank(shape)
            return
        given = name in self.input_axes
        axis = self.input_axes.get(name, 1 if len(shape) in (4, 5) else (1 if len(shape) == 2 else -1))
        if len(shape) == 3 and not given:
            axis = self.first_reader_axis(node)
        one_channel = len(shape) in (2, 3) and not given and (axis is None or self.one_channel_signal(node))
        # (batch, samples) or (batch, H, W) made into a one-channel map for a conv (a mono waveform, a
        # spectrogram, a grey image): spread as (batch, 1, ...), one unit, every position in its frame
        spread_as = (shape[0], 1, *shape[1:]) if one_channel else shape
        axis = 1 if one_channel else axis % len(shape)
        units = self.builder.new_group(f"input:{name}", spread_as[axis], "input")
        self.env[name] = self.spread(units, spread_as, axis).map(lambda a: a.reshape(shape))

    def first_reader_axis(self, node) -> int | None:
        """A 3-D input's feature axis: the axis its first reader with weights reads, followed back
        through the transposes, permutes and unsqueezes on the way (``x.transpose(1, 2)`` before a
        Conv1d of a ``(batch, time, features)`` input): channels for a conv (1-, 2- or 3-D), the last
        axis for a dense or recurrent layer; None when that axis is one an unsqueeze made (the input
        is one channel: ``x.unsqueeze(1)`` before a Conv2d). Without such a path, (batch, channels,
        length) for a conv, else the last."""
        for user, axes in self.readers(node, list(range(len(node.meta["val"].shape)))):
            op = op_name(user.target)
            if op in self._CONVS:
                return 1 if axes is None or axes[1] == LOST else axes[1]
            if op in ("linear", "lstm", "gru", "rnn_tanh", "rnn_relu", "matmul", "addmm", "mm"):
                return -1 if axes is None or axes[-1] == LOST else axes[-1]
        return -1

    def readers(self, node, axes: list[int] | None = None) -> Iterator[tuple[Any, list[int] | None]]:
        """The ops that read ``node``'s values, breadth first through the ops between, each with
        ``axes`` followed to its input (which of ``node``'s axes each axis holds; `follow_axes`)."""
        seen, todo = {node.name}, [(node, axes)]
        while todo:
            n, axes = todo.pop(0)
            for user in n.users:
                if user.name not in seen:
                    seen.add(user.name)
                    yield user, axes
                    todo.append((user, self.follow_axes(user, axes)))

    @staticmethod
    def follow_axes(node, axes: list[int | None] | None) -> list[int | None] | None:
        """``axes`` (which input axis each axis of the op's input holds: None for an axis of size 1 a
        reshape made, `LOST` for one it split or merged) after ``node``: moved by a transpose /
        permute, matched by size and place through a reshape (``unsqueeze``, ``view``, ``flatten``),
        kept by other ops of the same rank, lost (None) otherwise."""
        if axes is None:
            return None
        op, args = op_name(node.target), node.args
        val = node.meta.get("val")
        if op in _RESHAPES and args and val is not None and hasattr(args[0], "meta"):
            before = getattr(args[0].meta.get("val"), "shape", None)
            if before is not None and len(before) == len(axes):
                return _reshaped_axes(tuple(before), tuple(val.shape), axes)
        if op == "transpose" and len(args) >= 3:
            out = list(axes)
            d0, d1 = int(args[1]) % len(out), int(args[2]) % len(out)
            out[d0], out[d1] = out[d1], out[d0]
            return out
        if op == "permute" and len(args) >= 2:
            return [axes[int(d) % len(axes)] for d in args[1]]
        return axes if val is not None and hasattr(val, "shape") and len(val.shape) == len(axes) else None

    _CONVS = (
        "conv1d", "conv2d", "conv3d", "convolution", "_convolution", "conv_transpose1d", "conv_transpose2d",
        "conv_transpose3d",
    )
    _DENSE = ("linear", "lstm", "gru", "rnn_tanh", "rnn_relu", "matmul", "addmm", "mm", "bmm", "embedding")

    def one_channel_signal(self, node) -> bool:
        """A 2-D or 3-D input whose first reader with weights (a conv, a dense or recurrent op;
        breadth first through the ops between) is a conv of one input channel that reads it with
        more axes than it has: a signal (batch, samples) or a map (batch, H, W) viewed as a
        one-channel map (``x.unsqueeze(1)``, ``x[:, None, :, None]``, ``x.view(b, 1, h, w)``)."""
        weighted = self._CONVS + self._DENSE
        reader = next((user for user, _ in self.readers(node) if op_name(user.target) in weighted), None)
        if reader is None or op_name(reader.target) not in self._CONVS:
            return False
        val = reader.args[0].meta.get("val")
        return val is not None and val.ndim > max(len(node.meta["val"].shape), 2) and int(val.shape[1]) == 1

    def spread(
        self, units: np.ndarray, shape: tuple[int, ...], axis: int, producer: int | None = None
    ) -> UnitTensor:
        """A tensor of ``shape`` whose index along ``axis`` is unit ``units[i]`` everywhere; the
        other non-batch axes are its spatial frame."""
        u = np.broadcast_to(along(units, len(shape), axis), shape).copy()
        frame = tuple(s for i, s in enumerate(shape) if i not in (0, axis))
        spatial = [s if i not in (0, axis) else 1 for i, s in enumerate(shape)]
        pos = np.broadcast_to(np.arange(int(np.prod(spatial))).reshape(spatial), shape).copy()
        return UnitTensor(u, pos, frame, producer=producer)

    def call(self, node) -> None:
        op = op_name(node.target)
        args = [self.value(a) for a in node.args]
        kwargs = {k: self.value(a) for k, a in node.kwargs.items()}
        method = getattr(self, f"op_{op}", None)
        if op in SKIP:
            self.env[node.name] = None
        elif method is not None:
            self.env[node.name] = method(node, *args, **kwargs)
        elif op in CONSTANTS:
            self.env[node.name] = self.blank(self.shape(node))
        elif op in IDENTITY:
            self.env[node.name] = self.elementwise(node, args)
        elif not any(is_param(v) or carries_units(v) for v in self.flatten_outputs([args, *kwargs.values()])):
            # an op on tensors that carry no unit and no weight (masks, positions): none in its output
            self.env[node.name] = self.blank_like(node)
        else:
            raise self.refuse(
                node,
                f"modscope cannot follow the op {node.target}; pass a state dict of "
                "a known family, or a module made of supported layers",
            )

    def elementwise(self, node, args: list) -> UnitTensor:
        """An op that keeps every element's unit: the first tensor argument's, broadcast."""
        shape = self.shape(node)
        tensors = [a for a in args if isinstance(a, UnitTensor)]
        if not tensors:
            return self.blank(shape)
        x = next((a for a in tensors if carries_units(a)), tensors[0]).broadcast(shape)
        # a parameter's numbers stay known through an op on it alone (a cast, a copy)
        param = x.param if len(tensors) == 1 else None
        return UnitTensor(x.units, x.pos, x.frame, x.scale, param, x.producer)
