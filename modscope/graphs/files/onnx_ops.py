"""The ops of an ONNX graph as torch ops: one handler per ONNX op type (`OPS`), each given a `Call`
(the node's inputs, attributes, and the weights the running module keeps for it).

Inputs that do not depend on the model's input are constants: shapes, axes and indices are read
as numbers, weights become parameters of the module (named by `module_path`), so the traced
program reads ``linear``, ``conv``, ``lstm`` ops on parameters as the torch original would.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from ...errors import ModscopeError
from ...runtime.limits import Budget
from .padding import average_pool, pad_by_concat, recurrent_module, same_pads

__all__ = ["NP_TYPES", "OPS", "Call", "check_attributes", "module_path", "node_label", "sanitise"]

_SCOPE = re.compile(r"'((?:[^'\\]|\\.)*)'")
# ONNX TensorProto data types -> numpy
NP_TYPES = {
    1: "f4", 2: "u1", 3: "i1", 5: "i2", 6: "i4", 7: "i8", 9: "?", 10: "f2", 11: "f8", 12: "u4", 13: "u8"
}
_BIG = 2**62  # Slice ends beyond this mean "to the end"


def sanitise(name: str) -> str:
    """A dotted name whose parts are Python identifiers' characters (others become ``_``)."""
    return ".".join(re.sub(r"\W", "_", p) or "_" for p in name.split("."))


def module_path(node: Any) -> str:
    """The torch module that made ``node``, as the exporter recorded it ('' if unknown)."""
    scopes = {p.key: p.value for p in node.metadata_props}.get("pkg.torch.onnx.name_scopes")
    if scopes:
        names = [m.group(1) for m in _SCOPE.finditer(scopes[:10_000])]
        return sanitise(names[-2]) if len(names) >= 3 and names[-2] else ""
    if "/" in node.name:  # the legacy exporter: /layer1/layer1.0/conv1/Conv
        path = ""
        for part in [p for p in node.name.split("/") if p][:-1]:
            path = part if path and part.startswith(path + ".") else (f"{path}.{part}" if path else part)
        return sanitise(path)
    return ""


def node_label(node: Any, index: int) -> str:
    """A readable name for a node no torch module is recorded for: its own name (``Conv_12``), or
    its op and index (``conv_12``), never an initializer's number."""
    name = sanitise(node.name.strip("/")).replace(".", "_") if node.name else ""
    if name and not re.fullmatch(r"[_\d]*", name):
        return name
    return f"{node.op_type.lower()}_{index}"


# -- one node call -----------------------------------------------------------------------------------
class Call:
    """One node being run: its inputs as the op needs them, attributes, and the module's weights."""

    def __init__(self, runner: Any, index: int, node: Any, env: dict, dynamic: bool) -> None:
        import torch

        self.torch = torch
        self.runner, self.index, self.node, self.env, self.dynamic = runner, index, node, env, dynamic
        self.op = node.op_type
        self.inputs = list(node.input)
        self.n_out = len(node.output)

    # attributes
    @functools.cached_property
    def attrs(self) -> dict[str, Any]:
        from onnx import helper

        values = {a.name: helper.get_attribute_value(a) for a in self.node.attribute}
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def refuse(self, why: str) -> ModscopeError:
        return ModscopeError(
            f"{self.runner.source}: ONNX {self.op} node {self.node.name or self.index}: {why}"
        )

    # inputs
    def has(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def is_static(self, i: int) -> bool:
        return self.inputs[i] in self.runner.static

    def raw(self, i: int) -> Any:
        name = self.inputs[i]
        if name in self.runner.static:
            return self.torch.from_numpy(self.runner.static[name])
        if name not in self.env:
            raise self.refuse(f"its input {name!r} is not computed before it")
        return self.env[name]

    def array(self, i: int) -> np.ndarray:
        """A constant input's values (shapes, axes, indices, weights)."""
        if not self.is_static(i):
            raise self.refuse(f"input {i} must be a constant (here it is computed from the model's input)")
        return self.runner.static[self.inputs[i]]

    def ints(self, i: int) -> list[int]:
        return [int(v) for v in self.array(i).reshape(-1)]

    def t(self, i: int) -> Any:
        """The input as an operand: the computed tensor, or for a constant read by a node that
        depends on the input a Python number (one element) or a parameter / buffer."""
        value = self.runner.static.get(self.inputs[i]) if self.dynamic else None
        if value is not None and value.size == 1 and value.ndim <= 1:
            return value.item()
        return self.tensor(i)

    def tensor(self, i: int) -> Any:
        """The input as a tensor (a constant read by an input-dependent node: a parameter / buffer)."""
        if not self.dynamic or not self.is_static(i):
            return self.raw(i)
        return self.runner.constant(self.inputs[i], self, role="const")

    def weight(self, i: int, role: str, key: str = "", convert: Callable | None = None) -> Any:
        """A constant input as a parameter named after its torch module (``convert``ed first)."""
        if not self.is_static(i):
            raise self.refuse(
                f"its {role} is computed at run time, not stored: modscope reads stored weights"
            )
        if not self.dynamic:
            value = self.runner.static[self.inputs[i]]
            return self.torch.from_numpy(np.ascontiguousarray(value if convert is None else convert(value)))
        return self.runner.constant(self.inputs[i], self, role=role, key=key, convert=convert)


# attribute values that change an op's function and that its handler does not follow: op -> (attribute,
# its default, the values read, what another value does)
_UNREAD: dict[str, list[tuple[str, Any, tuple, str]]] = {
    "GRU": [("linear_before_reset", 0, (1,), "the reset gate applied before the recurrent weights "
             "(torch's GRU applies it after them)")],
    "LSTM": [("input_forget", 0, (0,), "coupled input and forget gates")],
    "BatchNormalization": [("training_mode", 0, (0,), "batch statistics (training mode)"),
                           ("spatial", 1, (1,), "statistics per activation, not per channel")],
    "Resize": [("antialias", 0, (0,), "an antialiasing filter"),
               ("keep_aspect_ratio_policy", "stretch", ("stretch",), "sizes kept to the aspect ratio"),
               ("cubic_coeff_a", -0.75, (-0.75,), "a cubic coefficient other than torch's"),
               ("exclude_outside", 0, (0,), "weights outside the input dropped")],
}
for _op in ("LSTM", "GRU", "RNN"):
    _UNREAD[_op] = [*_UNREAD.get(_op, []), ("clip", None, (None,), "clipped cell inputs")]


def check_attributes(c: Call) -> None:
    """Refuse ``c`` in one line if an attribute of its op has a value its handler does not follow."""
    for name, default, read, what in _UNREAD.get(c.op, ()):
        if (value := c.attr(name, default)) not in read:
            raise c.refuse(f"{name}={value!r} ({what}) is not read")


# -- the module --------------------------------------------------------------------------------------
def _torch_fn(name: str, functional: bool = False) -> Callable:
    """The op that is torch's (or torch.nn.functional's) function ``name`` of its input."""
    return lambda c: getattr(c.torch.nn.functional if functional else c.torch, name)(c.t(0))


def _dtype(code: int) -> Any:
    import torch

    if code == 16:
        return torch.bfloat16
    if code not in NP_TYPES:
        raise ModscopeError(f"ONNX data type {code} is not supported")
    return torch.from_numpy(np.zeros(0, dtype=NP_TYPES[code])).dtype


def _binary(fn: Callable, c: Call) -> Any:
    a, b = c.t(0), c.t(1)
    if not hasattr(a, "shape") and not hasattr(b, "shape"):  # two constant numbers
        a = c.torch.as_tensor(a)
    return fn(a, b)


def _div(a: Any, b: Any) -> Any:
    """ONNX Div: integer division truncates (shape arithmetic), else a true division."""
    import torch

    def integral(v: Any) -> bool:
        return not v.is_floating_point() if hasattr(v, "is_floating_point") else isinstance(v, int)

    if hasattr(a, "dtype") and integral(a) and integral(b):
        return torch.div(a, b, rounding_mode="trunc")
    return a / b


def _variadic(fn: Callable) -> Callable:
    """An op of any number of inputs: ``fn`` folded over them, first to last."""
    return lambda c: functools.reduce(fn, (c.t(i) for i in range(1, len(c.inputs))), c.t(0))


def _softmax(kind: str, c: Call) -> Any:
    x = c.t(0)
    fn = getattr(c.torch.nn.functional, kind)  # softmax, log_softmax
    if c.runner.opset >= 13:
        return fn(x, dim=c.attr("axis", -1))
    axis = c.attr("axis", 1) % x.ndim  # before opset 13: over the flattened trailing axes
    if axis == x.ndim - 1:
        return fn(x, dim=-1)
    return fn(x.reshape(int(np.prod(x.shape[:axis])), -1), dim=-1).reshape(x.shape)


def _gemm(c: Call) -> Any:
    F = c.torch.nn.functional
    alpha, beta = float(c.attr("alpha", 1.0)), float(c.attr("beta", 1.0))
    a = c.t(0)
    if c.attr("transA", 0):
        a = a.transpose(0, 1)
    if c.dynamic and c.is_static(1):
        trans_b = bool(c.attr("transB", 0))

        def as_weight(b: np.ndarray) -> np.ndarray:  # torch's (out, in), alpha folded in
            b = b if trans_b else b.T
            return b * alpha if alpha != 1 else b

        w = c.weight(1, "weight", f"gemm{int(trans_b)}{alpha}", as_weight)
        if c.has(2) and c.is_static(2) and c.array(2).size == w.shape[0]:
            bias = c.weight(
                2, "bias", f"beta{beta}", lambda v: v.reshape(-1) * beta if beta != 1 else v.reshape(-1)
            )
            return F.linear(a, w, bias)
        y = F.linear(a, w)
    else:
        b = c.t(1)
        if c.attr("transB", 0):
            b = b.transpose(0, 1)
        y = c.torch.matmul(a, b) * alpha if alpha != 1 else c.torch.matmul(a, b)
    if c.has(2):
        cc = c.t(2)
        y = y + (cc * beta if beta != 1 else cc)
    return y


def _matmul(c: Call) -> Any:
    if c.dynamic and c.is_static(1) and c.array(1).ndim == 2 and not c.is_static(0):
        w = c.weight(1, "weight", "T", lambda b: b.T)  # x @ W, W (in, out): a Linear of weight W^T
        return c.torch.nn.functional.linear(c.t(0), w)
    return c.torch.matmul(c.tensor(0), c.tensor(1))


def _spatial_pads(c: Call, x: Any, kernel: list[int], strides: list[int], dilations: list[int]) -> list:
    """Per spatial axis (begin, end) padding, from ``pads`` or ``auto_pad``."""
    n = len(kernel)
    auto = c.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        windows = zip(x.shape[2:], kernel, strides, dilations, strict=True)
        return [same_pads(size, k, s, d, auto == "SAME_UPPER") for size, k, s, d in windows]
    if auto == "VALID":
        return [(0, 0)] * n
    pads = list(c.attr("pads", [0] * (2 * n)))
    return [(pads[i], pads[i + n]) for i in range(n)]


def _spatial_axes(c: Call, ndim: int, refusal: str) -> int:
    """The spatial axes of a ``(batch, channels, spatial...)`` tensor (or kernel) of ``ndim`` axes:
    1 to 3, else refused (``refusal`` formatted with ``n``, their number, and ``ndim``)."""
    if ndim - 2 not in (1, 2, 3):
        raise c.refuse(refusal.format(n=ndim - 2, ndim=ndim))
    return ndim - 2


def _conv(c: Call) -> Any:
    x = c.t(0)
    w = c.weight(1, "weight")
    n = _spatial_axes(c, w.ndim, "a {n}-D convolution")
    kernel = list(c.attr("kernel_shape", w.shape[2:]))
    strides, dilations = list(c.attr("strides", [1] * n)), list(c.attr("dilations", [1] * n))
    x, pad = pad_by_concat(x, _spatial_pads(c, x, kernel, strides, dilations), 0.0)
    bias = c.weight(2, "bias") if c.has(2) else None
    fn = getattr(c.torch.nn.functional, f"conv{n}d")
    return fn(x, w, bias, strides, pad, dilations, int(c.attr("group", 1)))


def _conv_transpose(c: Call) -> Any:
    x = c.t(0)
    w = c.weight(1, "weight")
    n = w.ndim - 2
    if n not in (1, 2, 3) or c.attr("output_shape") is not None or c.attr("auto_pad", "NOTSET") != "NOTSET":
        raise c.refuse("only 1-D to 3-D transposed convolutions with explicit pads are read")
    pads = list(c.attr("pads", [0] * (2 * n)))
    if pads[:n] != pads[n:]:
        raise c.refuse("uneven padding of a transposed convolution")
    bias = c.weight(2, "bias") if c.has(2) else None
    strides, dilations = list(c.attr("strides", [1] * n)), list(c.attr("dilations", [1] * n))
    out_pads = list(c.attr("output_padding", [0] * n))
    fn = getattr(c.torch.nn.functional, f"conv_transpose{n}d")
    return fn(x, w, bias, strides, pads[:n], out_pads, int(c.attr("group", 1)), dilations)


def _pool(kind: str, c: Call) -> Any:
    x = c.t(0)
    n = _spatial_axes(c, x.ndim, "{n}-D pooling")
    if c.n_out > 1 and c.node.output[1]:
        raise c.refuse("pooling indices are not read")
    kernel = list(c.attr("kernel_shape"))
    strides, dilations = list(c.attr("strides", [1] * n)), list(c.attr("dilations", [1] * n))
    pads, ceil = _spatial_pads(c, x, kernel, strides, dilations), bool(c.attr("ceil_mode", 0))
    fn = getattr(c.torch.nn.functional, f"{kind}_pool{n}d")
    if kind == "max":
        x, even = pad_by_concat(x, pads, -float("inf"))
        return fn(x, kernel, strides, even, dilations, ceil)
    if any(d != 1 for d in dilations):
        raise c.refuse("dilated average pooling")
    return average_pool(x, pads, fn, kernel, strides, ceil, bool(c.attr("count_include_pad", 0)))


def _global_pool(kind: str, c: Call) -> Any:
    x = c.t(0)
    n = _spatial_axes(c, x.ndim, "{n}-D global pooling")
    return getattr(c.torch.nn.functional, f"adaptive_{kind}_pool{n}d")(x, 1)


def _axes(c: Call, slot: int, attr_until: int) -> list[int] | None:
    """Axes given as an attribute (before opset ``attr_until``) or as input ``slot``."""
    if c.runner.opset < attr_until:
        axes = c.attr("axes")
        return None if axes is None else list(axes)
    return c.ints(slot) if c.has(slot) else None


def _reduce(method: str, attr_until: int, c: Call) -> Any:
    """``Reduce*`` as the tensor method ``method`` (its axes an attribute before ``attr_until``)."""
    x = c.t(0)
    axes = _axes(c, 1, attr_until)
    keep = bool(c.attr("keepdims", 1))
    if not axes:
        if c.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(x.ndim))
    dims = [a % x.ndim for a in axes]
    if method != "prod":
        return getattr(x, method)(dim=dims, keepdim=keep)
    for d in sorted(dims, reverse=True):  # prod takes one axis at a time
        x = x.prod(dim=d, keepdim=keep)
    return x


def _batch_norm(c: Call) -> Any:
    x, mean, var = c.t(0), c.weight(3, "running_mean"), c.weight(4, "running_var")
    weight, bias, eps = c.weight(1, "weight"), c.weight(2, "bias"), float(c.attr("epsilon", 1e-5))
    return c.torch.nn.functional.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)


def _layer_norm(c: Call) -> Any:
    x = c.t(0)
    axis = int(c.attr("axis", -1)) % x.ndim
    weight = c.weight(1, "weight")
    bias = c.weight(2, "bias") if c.has(2) else None
    if c.n_out > 1 and any(c.node.output[1:]):
        raise c.refuse("the mean / inverse deviation outputs are not read")
    eps = float(c.attr("epsilon", 1e-5))
    return c.torch.nn.functional.layer_norm(x, list(x.shape[axis:]), weight, bias, eps)


def _prelu(c: Call) -> Any:
    x, shape = c.t(0), c.array(1).shape
    # ONNX broadcasts the slope from the last axis: (C, 1, 1) is one per channel, (C,) one per column
    lead = x.ndim - len(shape)
    if lead >= 0 and all(d == 1 for i, d in enumerate(shape, start=lead) if i != 1):
        return c.torch.nn.functional.prelu(x, c.weight(1, "weight", "flat", lambda s: s.reshape(-1)))
    raise c.refuse(f"a slope of shape {shape} on a {x.ndim}-D input: neither one number nor one per channel")


def _reshape(c: Call) -> Any:
    x, shape = c.t(0), c.ints(1)
    if not c.attr("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _flatten(c: Call) -> Any:
    x = c.t(0)
    axis = int(c.attr("axis", 1))
    axis += x.ndim if axis < 0 else 0  # -1: all but the last axis flattened (not all of them)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _transpose(c: Call) -> Any:
    x = c.t(0)
    perm = c.attr("perm")
    return x.permute(list(perm) if perm is not None else list(range(x.ndim))[::-1])


def _squeeze(c: Call) -> Any:
    x = c.t(0)
    axes = _axes(c, 1, 13)
    axes = [i for i, s in enumerate(x.shape) if s == 1] if axes is None else [a % x.ndim for a in axes]
    return x.reshape([s for i, s in enumerate(x.shape) if i not in axes])


def _unsqueeze(c: Call) -> Any:
    x = c.t(0)
    axes = _axes(c, 1, 13) or []
    shape = list(x.shape)
    for a in sorted(a % (x.ndim + len(axes)) for a in axes):
        shape.insert(a, 1)
    return x.reshape(shape)


def _concat(c: Call) -> Any:
    parts = [c.tensor(i) for i in range(len(c.inputs)) if c.has(i)]
    parts = [p for p in parts if p.numel() > 0 or p.ndim > 1]
    return c.torch.cat(parts, int(c.attr("axis")))


def _split(c: Call) -> Any:
    x = c.t(0)
    axis = int(c.attr("axis", 0)) % x.ndim
    if c.runner.opset >= 13 and c.has(1):
        sizes = c.ints(1)
    elif c.attr("split") is not None:
        sizes = list(c.attr("split"))
    else:
        parts = int(c.attr("num_outputs", c.n_out))
        size = -(-x.shape[axis] // parts)
        sizes = [min(size, x.shape[axis] - k * size) for k in range(parts)]
    return list(c.torch.split(x, sizes, axis))


def _slice(c: Call) -> Any:
    x = c.t(0)
    if c.runner.opset < 10:
        starts, ends = list(c.attr("starts")), list(c.attr("ends"))
        axes = list(c.attr("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = c.ints(1), c.ints(2)
        axes = c.ints(3) if c.has(3) else list(range(len(starts)))
        steps = c.ints(4) if c.has(4) else [1] * len(starts)
    index: list[Any] = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        size = x.shape[axis]
        if step <= 0:
            raise c.refuse("a Slice with a negative step")
        start = max(0, min(size, start + size if start < 0 else start))
        end = max(0, min(size, end + size if end < 0 else end)) if abs(end) < _BIG else size * (end > 0)
        index[axis % x.ndim] = slice(start, end, step)
    return x[tuple(index)]


def _gather(c: Call) -> Any:
    torch = c.torch
    axis = int(c.attr("axis", 0))
    if not c.dynamic:  # shape arithmetic
        data, idx = c.array(0), c.array(1)
        return torch.as_tensor(np.take(data, idx, axis=axis % max(data.ndim, 1)))
    if c.is_static(0) and not c.is_static(1):  # a table looked up by the input: an embedding
        if axis % c.array(0).ndim != 0 or c.array(0).ndim != 2:
            raise c.refuse("a lookup into a constant along an axis other than its first")
        return torch.nn.functional.embedding(c.t(1), c.weight(0, "weight"))
    if not c.is_static(1):
        raise c.refuse("indices known only at run time along a computed tensor")
    x = c.t(0)
    axis %= x.ndim
    idx = c.array(1).astype(np.int64)
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    if idx.ndim == 0:
        return x.select(axis, int(idx))
    flat = idx.reshape(-1)
    if flat.size and np.array_equal(flat, np.arange(flat[0], flat[0] + flat.size)):
        out = x.narrow(axis, int(flat[0]), int(flat.size))
    else:
        out = torch.stack([x.select(axis, int(i)) for i in flat], axis)
    return out.reshape([*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :]])


def _fits(c: Call, shape: Any, itemsize: int = 8) -> list[int]:
    """A shape an op makes from the file's numbers, checked against the memory budget first."""
    dims = [int(d) for d in shape]
    where = f"node {c.node.name or c.index} ({c.op}) of shape {tuple(dims)}"
    Budget(c.runner.source).shape(dims, itemsize, where)
    return dims


def _expand(c: Call) -> Any:
    x, shape = c.t(0), c.ints(1)
    return x.expand(_fits(c, np.broadcast_shapes(tuple(x.shape), tuple(shape)), x.element_size()))


def _tile(c: Call) -> Any:
    x, reps = c.t(0), c.ints(1)
    if len(reps) == x.ndim:
        _fits(c, [n * r for n, r in zip(x.shape, reps, strict=True)], x.element_size())
    return x.repeat(reps)


def _constant(c: Call) -> Any:
    torch = c.torch
    from onnx import numpy_helper

    for key in ("value_float", "value_int", "value_floats", "value_ints"):
        if key in c.attrs:  # a number, or a list of them
            return torch.as_tensor(c.attrs[key])
    if "value" in c.attrs:
        return torch.from_numpy(np.array(numpy_helper.to_array(c.attrs["value"])))
    raise c.refuse("a Constant that is not a number or a tensor")


def _constant_of_shape(c: Call) -> Any:
    from onnx import numpy_helper

    value = np.zeros(1, dtype=np.float32)
    if "value" in c.attrs:
        value = np.array(numpy_helper.to_array(c.attrs["value"])).reshape(-1)
    return c.torch.from_numpy(np.full(_fits(c, c.ints(0), value.dtype.itemsize), value[0], dtype=value.dtype))


def _shape(c: Call) -> Any:
    shape = list(c.raw(0).shape)
    start, end = c.attr("start", 0), c.attr("end", len(shape))
    return c.torch.as_tensor(shape[start:end], dtype=c.torch.int64)


def _per_axis(c: Call, x: Any, values: list[float], what: str, full: list[float]) -> list[float]:
    """A Resize's ``sizes`` or ``scales`` as one value per axis of ``x``: given for every axis, or
    (opset 18's ``axes``) for the listed axes, the others taken from ``full``."""
    axes = c.attr("axes")
    axes = list(range(x.ndim)) if axes is None else [int(a) % x.ndim for a in axes]
    if len(values) != len(axes):
        raise c.refuse(f"{len(values)} {what} for {len(axes)} axes of a {x.ndim}-D tensor")
    for a, v in zip(axes, values, strict=True):
        full[a] = v
    return full


def _resize(c: Call) -> Any:
    """``Resize`` / ``Upsample`` (YOLO necks): each channel stays its unit; the output's spatial size
    from ``sizes`` or ``scales`` (the ONNX rule: floor(size * scale))."""
    F = c.torch.nn.functional
    x = c.t(0)
    n = _spatial_axes(c, x.ndim, "resizing a {ndim}-D tensor")
    scales_at = 1 if c.op == "Upsample" or c.runner.opset < 11 else 2
    if c.has(3) and c.array(3).size:
        size = _per_axis(c, x, [float(v) for v in c.ints(3)], "sizes", [float(d) for d in x.shape])
    else:
        if c.has(scales_at) and c.array(scales_at).size:
            scales = [float(v) for v in c.array(scales_at).reshape(-1)]
        elif c.attr("scales") is not None:  # Upsample of opset 7-8
            scales = [float(v) for v in c.attr("scales")]
        else:
            raise c.refuse("neither sizes nor scales are given")
        scales = _per_axis(c, x, scales, "scales", [1.0] * x.ndim)
        size = [d * s for d, s in zip(x.shape, scales, strict=True)]
    # the batch and the channels kept: a resize of either is not one map per unit
    if [int(np.floor(v)) for v in size[:2]] != list(x.shape[:2]):
        raise c.refuse("it resizes the batch or channel axis")
    # ONNX maps by the scale, torch by out / in: the same where in * scale is whole (float32 scales)
    if any(v - np.floor(v) > 1e-6 * v for v in size):
        raise c.refuse(f"scales that give sizes {[round(v, 3) for v in size]}, not whole numbers")
    size = [int(np.floor(v)) for v in size[2:]]
    old = scales_at == 1  # Upsample and Resize-10: asymmetric coordinates, nearest by floor
    mode = c.attr("mode", "nearest")
    where = c.attr("coordinate_transformation_mode", ("half_pixel", "asymmetric")[old])
    if mode == "nearest":  # torch's: input element floor(i * in / out), ONNX's asymmetric floor
        rounding = c.attr("nearest_mode", ("round_prefer_floor", "floor")[old])
        # by whole factors up, the half-pixel modes' roundings pick the same elements
        up = all(s % d == 0 for s, d in zip(size, x.shape[2:], strict=True))
        half = up and where in ("half_pixel", "pytorch_half_pixel") and "prefer" in rounding
        if not (half or (where, rounding) == ("asymmetric", "floor")):
            raise c.refuse(f"nearest resizing to {size} with {where} coordinates and {rounding} rounding")
        return F.interpolate(x, size=size, mode="nearest")
    linear = ("linear", "bilinear", "trilinear")[n - 1]  # torch names (bi)linear by the map's rank
    torch_mode = {"linear": linear, "bilinear": linear, "cubic": "bicubic" if n == 2 else None}.get(mode)
    if torch_mode is None:
        raise c.refuse(f"resize mode {mode!r} for {n}-D maps")
    # torch's align_corners=False is half_pixel (pytorch_half_pixel but for outputs of length 1)
    if not (where in ("half_pixel", "align_corners") or (where == "pytorch_half_pixel" and min(size) > 1)):
        raise c.refuse(f"{mode} resizing with {where} coordinates")
    return F.interpolate(x, size=size, mode=torch_mode, align_corners=where == "align_corners")


def _dropout(c: Call) -> Any:
    x = c.t(0)
    if c.has(2) and not (c.is_static(2) and not c.array(2).any()):
        raise c.refuse("a Dropout in training mode (its training_mode input is not false)")
    return [x, c.torch.ones(x.shape, dtype=c.torch.bool)] if c.n_out > 1 else x


def _clip(c: Call) -> Any:
    if c.runner.opset < 11:
        lo, hi = c.attr("min"), c.attr("max")
    else:
        lo, hi = (float(c.array(k).reshape(-1)[0]) if c.has(k) else None for k in (1, 2))
    return c.torch.clamp(c.t(0), lo, hi)


def _range(c: Call) -> Any:
    start, limit, delta = (c.array(k).item() for k in range(3))
    if delta == 0:
        raise c.refuse("a Range with step 0")
    _fits(c, [max(0, int(np.ceil((limit - start) / delta)))])
    return c.torch.arange(start, limit, delta)


# -- recurrent layers ----------------------------------------------------------------------------------
# ONNX gate blocks -> torch's: LSTM i, o, f, c -> i, f, g, o; GRU z, r, h -> r, z, n; and the
# activations torch's cells use (per direction)
_GATES = {
    "LSTM": (4, [0, 2, 3, 1], ["Sigmoid", "Tanh", "Tanh"]),
    "GRU": (3, [1, 0, 2], ["Sigmoid", "Tanh"]),
    "RNN": (1, [0], ["Tanh"]),
}


def _recurrent(c: Call) -> Any:
    op = c.op
    gates, order, default = _GATES[op]
    hidden = int(c.attr("hidden_size"))
    direction = c.attr("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    acts = list(c.attr("activations", [])) or default * dirs
    if [a.decode() if isinstance(a, bytes) else a for a in acts] not in (default * dirs, default):
        raise c.refuse(f"activations {acts} (torch's {op} uses {default})")
    if op == "LSTM" and c.has(7):
        raise c.refuse("peephole connections")
    x = c.t(0)
    if c.attr("layout", 0):
        x = x.transpose(0, 1)  # (batch, seq, in) -> (seq, batch, in)
    seq = x.shape[0]
    if c.has(4) and not (c.is_static(4) and np.all(c.array(4) == seq)):
        raise c.refuse("sequence lengths other than the full sequence")
    if not (c.is_static(1) and c.is_static(2)):
        raise c.refuse("recurrent weights computed at run time")

    def make() -> Any:
        W, R = c.array(1), c.array(2)
        B = c.array(3) if c.has(3) else np.zeros((dirs, 2 * gates * hidden), dtype=W.dtype)
        biases = [(B[d, : gates * hidden], B[d, gates * hidden :]) for d in range(dirs)]
        parts = [[W[d], R[d], *biases[d]] for d in range(dirs)]
        return recurrent_module(op, hidden, parts, batch_first=False, order=order)  # torch.nn.LSTM, GRU, RNN

    if not c.dynamic:
        raise c.refuse("a recurrent layer that does not read the model's input")
    module = c.runner.submodule(c.index, module_path(c.node) or op.lower(), make)
    states = []
    for slot in [5, 6] if op == "LSTM" else [5]:
        if not c.has(slot) or (c.is_static(slot) and not np.any(c.array(slot))):
            states.append(None)
        else:
            h = c.tensor(slot)
            states.append(h.transpose(0, 1) if c.attr("layout", 0) else h)
    if direction == "reverse":
        x = x.flip(0)
    hx = states[0]
    if op == "LSTM" and any(s is not None for s in states):  # torch takes both states: a missing one is 0
        hx = tuple(c.torch.zeros(dirs, x.shape[1], hidden, dtype=x.dtype) if s is None else s for s in states)
    y, h = module(x, hx)
    finals = list(h) if op == "LSTM" else [h]
    if direction == "reverse":
        y = y.flip(0)
    y = y.reshape(seq, x.shape[1], dirs, hidden).permute(0, 2, 1, 3)  # ONNX: (seq, dirs, batch, h)
    if c.attr("layout", 0):
        y = y.permute(2, 0, 1, 3)
        finals = [f.transpose(0, 1) for f in finals]
    return [y, *finals][: c.n_out]


# ops that are one function of their input, by its name in torch (and torch.nn.functional)
_TORCH_UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Erf": "erf", "Sqrt": "sqrt", "Exp": "exp",
    "Log": "log", "Neg": "neg", "Abs": "abs", "Reciprocal": "reciprocal", "Floor": "floor", "Ceil": "ceil",
    "Sign": "sign", "Not": "logical_not",
}
_FUNCTIONAL_UNARY = {"HardSwish": "hardswish", "Softplus": "softplus", "Softsign": "softsign", "Mish": "mish"}
# ops of one input with attributes: their handlers
_UNARY = {
    "LeakyRelu": lambda c: c.torch.nn.functional.leaky_relu(c.t(0), float(c.attr("alpha", 0.01))),
    "Elu": lambda c: c.torch.nn.functional.elu(c.t(0), float(c.attr("alpha", 1.0))),
    "Selu": lambda c: (
        float(c.attr("gamma", 1.0507009873554805))
        * c.torch.nn.functional.elu(c.t(0), float(c.attr("alpha", 1.6732632423543772)))
    ),
    "Gelu": lambda c: c.torch.nn.functional.gelu(c.t(0), approximate=c.attr("approximate", "none")),
    "HardSigmoid": lambda c: c.torch.clamp(
        c.t(0) * float(c.attr("alpha", 0.2)) + float(c.attr("beta", 0.5)), 0, 1
    ),
    "Identity": lambda c: c.t(0),
}
_BINARY = {
    "Add": operator.add, "Sub": operator.sub, "Mul": operator.mul, "Div": _div, "Pow": operator.pow,
    "Equal": operator.eq, "Less": operator.lt, "Greater": operator.gt, "And": operator.and_,
    "Or": operator.or_,
}

# the handlers of ops that share one (their kind given first): functools.partial(handler, kind)
OPS: dict[str, Callable] = {
    **_UNARY,
    **{name: _torch_fn(fn) for name, fn in _TORCH_UNARY.items()},
    **{name: _torch_fn(fn, functional=True) for name, fn in _FUNCTIONAL_UNARY.items()},
    **{name: partial(_binary, fn) for name, fn in _BINARY.items()},
    # elementwise over several inputs, activations with an axis
    "Max": _variadic(lambda a, b: a.maximum(b) if hasattr(a, "maximum") else b.maximum(a)),
    "Min": _variadic(lambda a, b: a.minimum(b) if hasattr(a, "minimum") else b.minimum(a)),
    "Sum": _variadic(lambda a, b: a + b),
    "Softmax": partial(_softmax, "softmax"), "LogSoftmax": partial(_softmax, "log_softmax"),
    "PRelu": _prelu, "Clip": _clip,
    # layers with weights
    "Gemm": _gemm, "MatMul": _matmul, "Conv": _conv, "ConvTranspose": _conv_transpose,
    "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "LSTM": _recurrent, "GRU": _recurrent, "RNN": _recurrent,
    # pooling and reductions
    "MaxPool": partial(_pool, "max"), "AveragePool": partial(_pool, "avg"),
    "GlobalAveragePool": partial(_global_pool, "avg"), "GlobalMaxPool": partial(_global_pool, "max"),
    "ReduceMean": partial(_reduce, "mean", 18), "ReduceSum": partial(_reduce, "sum", 13),
    "ReduceMax": partial(_reduce, "amax", 18), "ReduceMin": partial(_reduce, "amin", 18),
    "ReduceProd": partial(_reduce, "prod", 18),
    # shapes, indexing, constants
    "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Concat": _concat, "Split": _split, "Slice": _slice, "Gather": _gather,
    "Expand": _expand, "Tile": _tile, "Constant": _constant, "ConstantOfShape": _constant_of_shape,
    "Shape": _shape, "Range": _range, "Resize": _resize, "Upsample": _resize, "Dropout": _dropout,
    "Size": lambda c: c.torch.as_tensor(c.raw(0).numel(), dtype=c.torch.int64),
    "Cast": lambda c: c.tensor(0).to(_dtype(int(c.attr("to")))),
    "CastLike": lambda c: c.tensor(0).to(c.raw(1).dtype),
    "Where": lambda c: c.torch.where(c.tensor(0), c.t(1), c.t(2)),
}
