"""An ONNX model -> a torch module that runs its graph -> the unit graph ([spec §1b][spec-1b]), by tracing.

The model is read with ``onnx.load(load_external_data=False)``; every external-data file it names
must be a plain file name in the model's own folder (no ``..``, no absolute path, no symlink), and
its bytes are read here. ``onnx`` runs no code of the file, and neither does this module: each
ONNX node becomes the torch op it stands for, so ``trace_graph`` sees the real dataflow (flatten
order, residual adds, branches) as it would in the torch original.

How the graph is run:

- one eager pass on an example input (the graph's declared input shapes, symbolic sizes 1, or
  ``input_shape``) evaluates every node; nodes that do not depend on an input (initializers,
  ``Constant``, ``Shape`` arithmetic: the example has fixed sizes) are folded into constants;
- the constants a node reads as weights become parameters named after the torch module path
  the exporter recorded (``pkg.torch.onnx.name_scopes`` of the dynamo exporter, the legacy
  exporter's ``/a/b/Op`` node names), or after the initializer when it already has a torch
  name (``fc.weight``): a ``MatMul`` by an ``(in, out)`` initializer is a Linear whose weight is
  stored ``(out, in)``; recurrent weights go into ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` modules with
  the gates reordered to torch's (ONNX LSTM i, o, f, c -> i, f, g, o; GRU z, r, h -> r, z, n);
- the forward runs the remaining nodes with torch ops; an op outside modscope's table
  (`onnx_ops.OPS`) runs as onnx2torch's module for it (`onnx_library`), and an op neither has is
  refused in one line naming it.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModscopeError
from ...runtime.limits import Budget
from ..weight_graph import WeightGraph
from .formats import MAX_FILE_BYTES, check_file, first_line, symbolic_note
from .onnx_library import library_op
from .onnx_ops import NP_TYPES, OPS, Call, module_path, node_label, sanitise

__all__ = ["READING", "onnx_graph", "onnx_module", "read_onnx"]

READING = "an ONNX model, traced"
_INSTALL = "reading ONNX models needs the onnx package: pip install modscope[onnx]"
# initializer / value names an exporter made up (not a torch parameter's name)
_GENERATED = re.compile(r"(^val_\d+$|^_|::|^onnx|_output_\d+$|^/|^\d+$|:\d+$)")
_TORCH_NAME = re.compile(r"^\w+(\.\w+)*$")


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ModscopeError(_INSTALL) from None
    return onnx


# -- reading the file --------------------------------------------------------------------------------
def _external_tensors(model: Any) -> list[Any]:
    """Every tensor of the main graph and its local functions that can hold data."""
    onnx = _onnx()
    tensors = list(model.graph.initializer)
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    for node in nodes:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                tensors.append(a.t)
            elif a.type == onnx.AttributeProto.TENSORS:
                tensors.extend(a.tensors)
    return tensors


def _load_external(model: Any, path: Path) -> None:
    """Fill in external data, reading only plain files beside the model."""
    onnx = _onnx()
    folder = path.resolve().parent
    for t in _external_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if (
            not location
            or location != Path(location).name
            or location in (".", "..")
            or "\\" in location
            or "\x00" in location
        ):
            raise ModscopeError(
                f"{path}: tensor {t.name} names external data {location!r}: refused, only a plain "
                "file name in the model's own folder is read"
            )
        file = folder / location
        if file.is_symlink() or not file.is_file() or file.resolve().parent != folder:
            raise ModscopeError(
                f"{path}: external data {location!r} of tensor {t.name} is missing, a link or not a "
                "regular file in the model's folder"
            )
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else file.stat().st_size - offset
        except ValueError:
            raise ModscopeError(f"{path}: tensor {t.name}: malformed external data offset / length") from None
        if offset < 0 or length < 0 or offset + length > file.stat().st_size or length > MAX_FILE_BYTES:
            raise ModscopeError(f"{path}: tensor {t.name}: external data out of the bounds of {location}")
        with open(file, "rb") as fh:
            fh.seek(offset)
            t.raw_data = fh.read(length)
        del t.external_data[:]
        t.data_location = onnx.TensorProto.DEFAULT


def read_onnx(path: str | Path) -> Any:
    """The ``onnx.ModelProto`` of ``path``, external data checked and read, local functions
    inlined; one-line errors for unreadable files."""
    onnx = _onnx()
    path = Path(path)
    check_file(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ModscopeError(
            f"{path}: {path.stat().st_size:,} bytes is above the {MAX_FILE_BYTES:,}-byte limit"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModscopeError(
            f"{path}: not a readable ONNX model, truncated or corrupt ({first_line(exc)})"
        ) from None
    if not model.graph.node or not model.graph.output:
        raise ModscopeError(f"{path}: not a readable ONNX model (no graph), truncated or corrupt")
    _load_external(model, path)
    if len(model.functions):
        try:
            from onnx import inliner

            model = inliner.inline_local_functions(model)
        except Exception as exc:
            raise ModscopeError(
                f"{path}: cannot inline the model's local functions ({first_line(exc)})"
            ) from None
    return model


# -- the module --------------------------------------------------------------------------------------
def _plain(value: Any) -> np.ndarray:
    """A constant as a numpy array (bfloat16 widened to float32)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy().copy()
    array = np.array(value)
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array


def _annotate(meta: dict) -> Any:
    """``torch.fx.traceback.annotate`` (the traced nodes' ``meta["custom"]``), or nothing on a torch
    without it."""
    import contextlib

    from torch.fx import traceback

    annotate = getattr(traceback, "annotate", None)
    return annotate(meta) if annotate is not None else contextlib.nullcontext()


@functools.cache
def _module_class() -> type:
    import torch

    class OnnxModule(torch.nn.Module):
        """Runs an ONNX graph with torch ops (see the module docstring of
        `modscope.graphs.files.onnx_model`)."""

        def __init__(self, model: Any, example: tuple, input_names: list[str], source: str) -> None:
            super().__init__()
            from onnx import numpy_helper

            self.source = source
            self.opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [1])
            self.nodes = list(model.graph.node)
            self.input_names = input_names
            self.output_names = [o.name for o in model.graph.output]
            self.static: dict[str, Any] = {}
            self.initializers = {t.name for t in model.graph.initializer}
            self.named: dict[tuple, str] = {}  # (value, key) -> parameter name
            self.submodules: dict[int, str] = {}  # node index -> module name (recurrent layers)
            self.model_proto, self.library_graph = model, None  # for onnx2torch's converters
            for t in model.graph.initializer:
                try:
                    self.static[t.name] = _plain(numpy_helper.to_array(t))
                except Exception as exc:
                    raise ModscopeError(
                        f"{source}: initializer {t.name} is unreadable ({first_line(exc)})"
                    ) from None
            # the eager pass: run every node once, fold what does not depend on the inputs
            env = dict(zip(input_names, example, strict=True))
            self.live: list[int] = []
            self.eager = True
            with torch.no_grad():
                for i, node in enumerate(self.nodes):
                    dynamic = node.op_type not in ("Shape", "Size") and any(n in env for n in node.input if n)
                    outs = self.run_node(i, node, env, dynamic)
                    for name, value in zip(node.output, outs, strict=False):
                        if not name:
                            continue
                        if dynamic:
                            env[name] = value
                        elif value is not None:
                            self.static[name] = _plain(value)
                    if dynamic:
                        self.live.append(i)
            self.eager = False
            missing = [n for n in self.output_names if n not in env and n not in self.static]
            if missing:
                raise ModscopeError(f"{source}: graph output {missing[0]!r} is never computed")
            self.returned = [n for n in self.output_names if n in env]
            if not self.returned:
                raise ModscopeError(f"{source}: no output of the graph depends on its input")

        def run_node(self, i: int, node: Any, env: dict, dynamic: bool) -> list:
            if node.domain not in ("", "ai.onnx"):
                raise ModscopeError(
                    f"{self.source}: ONNX op {node.domain}.{node.op_type} (node {node.name or i}) is "
                    "not supported by modscope's ONNX reader"
                )
            handler = OPS.get(node.op_type, library_op)  # the ops modscope lacks: onnx2torch's
            call = Call(self, i, node, env, dynamic)
            try:
                outs = handler(call)
            except ModscopeError:
                raise
            except Exception as exc:  # a malformed node, or one this reader does not follow
                raise call.refuse(f"{type(exc).__name__}: {first_line(exc)}") from None
            return outs if isinstance(outs, list) else [outs]

        # weights and constants
        def place(self, name: str, make: Callable[[], Any]) -> str:
            """Register ``make()`` (a Parameter, buffer tensor or Module) under the dotted ``name``,
            or a free variant of it; returns the name used."""
            parts = name.split(".")
            for k in range(1000):
                leaf = parts[-1] if k == 0 else f"{parts[-1]}_{k}"
                holder, ok = self, True
                for p in parts[:-1]:
                    child = holder._modules.get(p)
                    if child is None:
                        if p in holder._parameters or p in holder._buffers or hasattr(holder, p):
                            ok = False
                            break
                        child = torch.nn.Module()
                        holder.add_module(p, child)
                    holder = child
                if not ok:
                    parts = [sanitise(name).replace(".", "_")]
                    continue
                if (
                    leaf in holder._parameters
                    or leaf in holder._buffers
                    or leaf in holder._modules
                    or hasattr(holder, leaf)
                ):
                    continue
                obj = make()
                if isinstance(obj, torch.nn.Parameter):
                    holder.register_parameter(leaf, obj)
                elif isinstance(obj, torch.nn.Module):
                    holder.add_module(leaf, obj)
                else:
                    holder.register_buffer(leaf, obj)
                return ".".join([*parts[:-1], leaf])
            raise ModscopeError(f"{self.source}: cannot name the weight {name}")

        def lookup(self, name: str) -> Any:
            owner, _, leaf = name.rpartition(".")
            return getattr(self.get_submodule(owner) if owner else self, leaf)

        def constant(
            self, value: str, call: Call, role: str, key: str = "", convert: Callable | None = None
        ) -> Any:
            """The parameter (floating point) or buffer holding constant ``value`` as ``call`` reads
            it, made on the eager pass, looked up afterwards."""
            if (value, key) not in self.named:
                array = self.static[value] if convert is None else convert(self.static[value])
                data = torch.from_numpy(np.ascontiguousarray(array))
                if value in self.initializers and _TORCH_NAME.match(value) and not _GENERATED.search(value):
                    name = value
                else:  # the torch module the exporter recorded, else the node's name or op and index
                    path = module_path(call.node) or node_label(call.node, call.index)
                    name = f"{path}.{role}"
                if data.is_floating_point():
                    self.named[(value, key)] = self.place(
                        name, lambda: torch.nn.Parameter(data.clone(), requires_grad=False)
                    )
                else:
                    self.named[(value, key)] = self.place(name, lambda: data.clone())
            return self.lookup(self.named[(value, key)])

        def submodule(self, index: int, name: str, make: Callable[[], Any]) -> Any:
            if index not in self.submodules:
                self.submodules[index] = self.place(name, make)
            return self.get_submodule(self.submodules[index])

        def forward(self, *inputs: Any) -> Any:
            env = dict(zip(self.input_names, inputs, strict=True))
            for i in self.live:
                node = self.nodes[i]
                # the traced ops carry their ONNX node, so a refusal names it (not "OnnxModule")
                with _annotate({"onnx_node": f"ONNX {node.op_type} node {node.name or i}"}):
                    outs = self.run_node(i, node, env, True)
                for name, value in zip(node.output, outs, strict=False):
                    if name:
                        env[name] = value
            out = tuple(env[n] for n in self.returned)
            return out[0] if len(out) == 1 else out

    return OnnxModule


def onnx_module(model: Any, input_shape: Sequence[int] | None = None, source: str = "model") -> tuple:
    """``(module, example_input)``: a torch module running ``model`` (an ``onnx.ModelProto``) and an
    example input (a tuple of zero tensors of the graph's declared shapes, symbolic sizes 1;
    ``input_shape`` replaces the first input's shape)."""
    import torch

    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if not inputs:
        raise ModscopeError(f"{source}: the graph has no input")
    example, names, symbolic = [], [], []
    budget = Budget(source)
    for k, inp in enumerate(inputs):
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type") or tt.elem_type not in NP_TYPES:
            raise ModscopeError(f"{source}: graph input {inp.name} is not a tensor of a supported type")
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        if len(shape) >= 2:
            shape[0] = 1  # batch 1 whatever the file declares (one example is enough to trace)
        if k == 0 and input_shape is not None:
            shape = [int(s) for s in input_shape]
        else:  # sizes other than the batch's that the file leaves open: set to 1, and said
            symbolic += [
                f"{inp.name}[{j}]" + (f" ({d.dim_param})" if d.dim_param else "")
                for j, d in enumerate(tt.shape.dim)
                if j > 0 and not (d.HasField("dim_value") and d.dim_value > 0)
            ]
        dtype = np.dtype(NP_TYPES[tt.elem_type])
        budget.shape(shape, dtype.itemsize, f"graph input {inp.name[:60]} of shape {tuple(shape)}")
        example.append(torch.from_numpy(np.zeros(shape, dtype=dtype)))
        names.append(inp.name)
    try:
        module = _module_class()(model, tuple(example), names, source)
    except ModscopeError as exc:
        raise ModscopeError(f"{exc}{symbolic_note(symbolic, example)}") from None
    module.symbolic = symbolic
    return module, tuple(example)


def onnx_graph(
    path: str | Path, *, kernel_norm: str = "1", input_shape: Sequence[int] | None = None
) -> WeightGraph:
    """The unit graph of the ONNX model at ``path``, traced from a torch module running its graph.

    ``input_shape``: the first input's shape when its declared one does not fit (batch 1; the
    graph's symbolic sizes become 1 otherwise). ``kernel_norm`` as for `trace_graph`.
    """
    from ..tracing import trace_graph

    model = read_onnx(path)
    module, example = onnx_module(model, input_shape, str(path))
    try:
        graph = trace_graph(module, example, kernel_norm=kernel_norm)
    except ModscopeError as exc:
        raise ModscopeError(f"{exc}{symbolic_note(module.symbolic, example)}") from None
    # the module's forward takes *inputs: name the input groups as the file does
    names = tuple(
        re.sub(r"input:inputs_(\d+)", lambda m: f"input:{module.input_names[int(m.group(1))]}", n)
        for n in graph.group_names
    )
    reading = READING
    if input_shape is not None:
        reading += f" on an input of shape {tuple(int(d) for d in input_shape)}"
    if module.symbolic:
        reading += f"; symbolic input sizes {', '.join(module.symbolic)} set to 1 (--input-shape sets them)"
    return dataclasses.replace(graph, group_names=names).read_as(reading)
