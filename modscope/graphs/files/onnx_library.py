"""ONNX ops outside modscope's own table (`onnx_ops.OPS`), run by onnx2torch's converters.

modscope's table stays first, measured (experiments/converters/compare.json): onnx2torch 1.5.15
alone reads 4 of the 10 ONNX files the comparison holds, all with other group names, and refuses
the rest (no ``LSTM`` / ``GRU`` / ``RNN``; no converter for the opset versions torch's exporters
write today: ``Reshape`` 19, ``Split`` 18, ``Constant`` 19). What it adds are ops the table lacks
(``Pad``, ``InstanceNormalization``, ``Einsum``, ``CumSum``, ``DepthToSpace``, ``TopK``, ``Mod``,
...): for such a node, onnx2torch's converter for the op at the model's opset makes a torch module,
kept as a submodule of the running module (its weights are parameters named after the node, as
the table's are). Before the node runs on real tensors its output sizes are worked out on fake
ones and checked against the memory budget, as the table's handlers check theirs (a file's
numbers never allocate past it).

onnx2torch imports torchvision at import time for two detection ops (``NonMaxSuppression``,
``RoiAlign``). Where torchvision is missing or cannot load (its PyPI wheels are built for CUDA
torch; torch's CPU build cannot load their compiled ops), an empty stand-in answers that import
while onnx2torch is imported and is removed afterwards; those two ops are then refused in one line.
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

from ...errors import ModscopeError, first_line
from ...runtime.limits import Budget
from .onnx_ops import Call, module_path, node_label

__all__ = ["INSTALL", "library_op", "onnx2torch_version"]

INSTALL = "pip install 'modscope[onnx]'"


def _stand_in(*_: Any, **__: Any) -> Any:
    raise ModscopeError(
        "this ONNX op needs torchvision's compiled ops, which do not load here (a torchvision built "
        "for this torch reads it)"
    )


@functools.cache
def _onnx2torch() -> Any:
    """``onnx2torch``, or ``None`` when it is not installed."""
    try:
        import onnx2torch
    except ModuleNotFoundError as exc:
        if exc.name != "torchvision":
            return None
    except Exception:  # a torchvision that is installed but does not load (built for another torch)
        pass
    else:
        return onnx2torch
    for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "onnx2torch")]:
        del sys.modules[name]  # the half-imported packages of the failed attempt
    tv = types.ModuleType("torchvision")
    tv.ops = types.ModuleType("torchvision.ops")
    tv.ops.nms = tv.ops.roi_align = _stand_in
    sys.modules.update({"torchvision": tv, "torchvision.ops": tv.ops})
    try:
        import onnx2torch
    except ImportError:
        return None
    finally:  # the stand-in is seen by onnx2torch's own modules only
        for name in ("torchvision", "torchvision.ops"):
            sys.modules.pop(name, None)
    return onnx2torch


def onnx2torch_version() -> str | None:
    """The installed onnx2torch's version, ``None`` without it."""
    if _onnx2torch() is None:
        return None
    from importlib.metadata import version

    return version("onnx2torch")


def _converter(c: Call) -> Any:
    """onnx2torch's converter for ``c``'s op at the model's opset; a one-line refusal without one."""
    node = c.node.name or c.index
    what = f"{c.runner.source}: ONNX op {c.op} (node {node}) is not supported by modscope's ONNX reader"
    if _onnx2torch() is None:
        raise ModscopeError(f"{what}; onnx2torch, which reads more ops, is not installed: {INSTALL}")
    from onnx2torch.node_converters.registry import get_converter

    try:
        return get_converter(operation_type=c.op, version=c.runner.opset, domain="")
    except NotImplementedError:
        raise ModscopeError(f"{what} nor by onnx2torch {onnx2torch_version()}") from None


def _graph(c: Call) -> Any:
    """onnx2torch's view of the model's graph, with ONNX's inferred shapes as onnx2torch makes it
    (its converters read initializers and input ranks from it)."""
    if c.runner.library_graph is None:
        import onnx
        from onnx2torch.onnx_graph import OnnxGraph

        model = c.runner.model_proto
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # what cannot be inferred stays open; a converter that needs it refuses
            pass
        c.runner.library_graph = OnnxGraph(model.graph)
    return c.runner.library_graph


def _check_sizes(c: Call, module: Any, args: list) -> None:
    """The node's outputs, worked out on fake tensors, against the memory budget."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            fake = [mode.from_tensor(a) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                    for a in args]
            outs = module(*fake)
    except ModscopeError:
        raise
    except Exception as exc:
        raise c.refuse(f"its output sizes cannot be worked out before it runs ({first_line(exc)})") from None
    budget = Budget(c.runner.source)
    for k, out in enumerate(outs if isinstance(outs, list | tuple) else [outs]):
        if isinstance(out, torch.Tensor):
            budget.shape(list(out.shape), out.element_size(),
                         f"node {c.node.name or c.index} ({c.op}) output {k} of shape {tuple(out.shape)}")


def library_op(c: Call) -> Any:
    """Run ``c`` (an op `onnx_ops.OPS` lacks) with onnx2torch's module for it."""
    convert = _converter(c)
    from onnx2torch.onnx_node import OnnxNode

    def make() -> Any:
        try:
            result = convert(OnnxNode(c.node, unique_name=node_label(c.node, c.index)), _graph(c))
        except ModscopeError:
            raise
        except Exception as exc:
            raise c.refuse(
                f"onnx2torch cannot convert it ({type(exc).__name__}: {first_line(exc)})"
            ) from None
        module, inputs = result.torch_module, tuple(result.onnx_mapping.inputs)
        if c.op == "Pad" and type(module).__name__ == "OnnxPadDynamic" and all(
            c.is_static(i) for i in range(1, len(c.inputs)) if c.has(i)
        ):  # stored pads as numbers: its module reads them with .tolist(), which torch.export cannot
            from onnx2torch.node_converters.pad import OnnxPadStatic

            value = float(c.array(2).reshape(-1)[0]) if c.has(2) else 0.0
            module = OnnxPadStatic.create_from_onnx_params(c.ints(1), c.attr("mode", "constant"), value)
            inputs = inputs[:1]
        module.eval()
        module._modscope_inputs = inputs  # the node's inputs the module reads
        return module

    if c.dynamic:  # made on the eager pass, looked up when traced
        module = c.runner.submodule(c.index, module_path(c.node) or node_label(c.node, c.index), make)
    else:  # a node folded into a constant leaves no module behind
        module = make()

    def arg(name: str) -> Any:
        if name == "":
            return None
        i = c.inputs.index(name)
        # stored weights as parameters; stored integers (pads, axes, shapes) as numbers the
        # module reads, as the table's handlers read them
        weight = c.dynamic and c.is_static(i) and c.array(i).dtype.kind == "f"
        return c.tensor(i) if weight else c.raw(i)

    args = [arg(name) for name in module._modscope_inputs]
    if c.runner.eager:
        _check_sizes(c, module, args)
    return module(*args)
