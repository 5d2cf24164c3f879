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
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModscopeError, first_line
from ...runtime.limits import Budget
from ..weight_graph import WeightGraph
from .formats import MAX_FILE_BYTES, check_file, optional_import, refusing, symbolic_note, unreadable
from .onnx_ops import NP_TYPES

__all__ = ["onnx_graph", "onnx_module", "read_onnx"]


def _onnx() -> Any:
    return optional_import("onnx", "reading ONNX models needs the onnx package: pip install modscope[onnx]")


# -- reading the file --------------------------------------------------------------------------------
def _external_tensors(model: Any) -> Iterator[Any]:
    """Every tensor of the main graph and its local functions that can hold data."""
    onnx = _onnx()
    yield from model.graph.initializer
    for node in [*model.graph.node, *(n for f in model.functions for n in f.node)]:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                yield a.t
            elif a.type == onnx.AttributeProto.TENSORS:
                yield from a.tensors


def _load_external(model: Any, path: Path) -> None:
    """Fill in external data, reading only plain files beside the model."""
    onnx = _onnx()
    folder = path.resolve().parent
    for t in _external_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        plain = location and location == Path(location).name and location not in (".", "..")
        if not plain or "\\" in location or "\x00" in location:
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
    check_file(path, limit=True)
    with refusing(Exception, lambda exc: unreadable(path, "ONNX model", exc)):  # protobuf's DecodeError, ...
        model = onnx.load(str(path), load_external_data=False)
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


def onnx_module(model: Any, input_shape: Sequence[int] | None = None, source: str = "model") -> tuple:
    """``(module, example_input)``: a torch module running ``model`` (an ``onnx.ModelProto``) and an
    example input (a tuple of zero tensors of the graph's declared shapes, symbolic sizes 1;
    ``input_shape`` replaces the first input's shape)."""
    import torch

    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if not inputs:
        raise ModscopeError(f"{source}: the graph has no input")
    example, symbolic = [], []
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
    try:
        from .onnx_runner import OnnxModule

        module = OnnxModule(model, tuple(example), [inp.name for inp in inputs], source)
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

    module, example = onnx_module(read_onnx(path), input_shape, str(path))
    try:
        graph = trace_graph(module, example, kernel_norm=kernel_norm)
    except ModscopeError as exc:
        raise ModscopeError(f"{exc}{symbolic_note(module.symbolic, example)}") from None
    # the module's forward takes *inputs: name the input groups as the file does
    names = tuple(
        re.sub(r"input:inputs_(\d+)", lambda m: f"input:{module.input_names[int(m.group(1))]}", n)
        for n in graph.group_names
    )
    reading = "an ONNX model, traced"
    if input_shape is not None:
        reading += f" on an input of shape {tuple(int(d) for d in input_shape)}"
    if module.symbolic:
        reading += f"; symbolic input sizes {', '.join(module.symbolic)} set to 1 (--input-shape sets them)"
    return dataclasses.replace(graph, group_names=names).read_as(reading)
