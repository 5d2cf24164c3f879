"""The torch module that runs an ONNX graph (see `modscope.graphs.files.onnx_model`): imported only
when a model is read, so that reading other formats never imports torch."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.fx import traceback

from ...errors import ModscopeError, first_line
from .formats import refusing
from .onnx_library import library_op
from .onnx_ops import OPS, Call, check_attributes, module_path, node_label, sanitise

__all__ = ["OnnxModule"]

# initializer / value names an exporter made up (not a torch parameter's name)
_GENERATED = re.compile(r"(^val_\d+$|^_|::|^onnx|_output_\d+$|^/|^\d+$|:\d+$)")
_TORCH_NAME = re.compile(r"^\w+(\.\w+)*$")
# ``torch.fx.traceback.annotate`` (the traced nodes' ``meta["custom"]``), or nothing on a torch without it
_annotate = getattr(traceback, "annotate", lambda meta: contextlib.nullcontext())


def _plain(value: Any) -> np.ndarray:
    """A constant as a numpy array (bfloat16 widened to float32)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy().copy()
    array = np.array(value)
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array


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
        # what was placed, by the name it took: a constant by (value, key), a node's module by its index
        self.named: dict[tuple | int, str] = {}
        self.model_proto, self.library_graph = model, None  # for onnx2torch's converters
        for t in model.graph.initializer:
            try:
                self.static[t.name] = _plain(numpy_helper.to_array(t))
            except Exception as exc:
                raise ModscopeError(
                    f"{source}: initializer {t.name} is unreadable ({first_line(exc)})"
                ) from None
        env = self._eager_pass(dict(zip(input_names, example, strict=True)))
        missing = [n for n in self.output_names if n not in env and n not in self.static]
        if missing:
            raise ModscopeError(f"{source}: graph output {missing[0]!r} is never computed")
        self.returned = [n for n in self.output_names if n in env]
        if not self.returned:
            raise ModscopeError(f"{source}: no output of the graph depends on its input")

    def _eager_pass(self, env: dict) -> dict:
        """Run every node once on the example inputs ``env``; fold what does not depend on them into
        ``static`` and keep the rest (``live``) for the forward. Returns the values computed."""
        self.live: list[int] = []
        self.eager = True
        with torch.no_grad():
            for i, node in enumerate(self.nodes):
                dynamic = node.op_type not in ("Shape", "Size") and any(n in env for n in node.input if n)
                named = self.run_node(i, node, env, dynamic)
                if dynamic:
                    env.update(named)
                    self.live.append(i)
                else:
                    self.static.update((name, _plain(value)) for name, value in named if value is not None)
        self.eager = False
        return env

    def run_node(self, i: int, node: Any, env: dict, dynamic: bool) -> list[tuple[str, Any]]:
        """Node ``i`` run on ``env``: its named outputs, ``(name, value)``."""
        if node.domain not in ("", "ai.onnx"):
            raise ModscopeError(
                f"{self.source}: ONNX op {node.domain}.{node.op_type} (node {node.name or i}) is "
                "not supported by modscope's ONNX reader"
            )
        handler = OPS.get(node.op_type, library_op)  # the ops modscope lacks: onnx2torch's
        call = Call(self, i, node, env, dynamic)
        # a malformed node, or one this reader does not follow
        with refusing(Exception, lambda exc: call.refuse(f"{type(exc).__name__}: {first_line(exc)}")):
            check_attributes(call)
            outs = handler(call)
        outs = outs if isinstance(outs, list) else [outs]
        return [(name, value) for name, value in zip(node.output, outs, strict=False) if name]

    # weights and constants
    def place(self, name: str, obj: Any) -> str:
        """Register ``obj`` (a Parameter, buffer tensor or Module) under the dotted ``name``, or a
        free variant of it; returns the name used."""
        parts, holder, first = name.split("."), self, 0
        for p in parts[:-1]:
            if p not in holder._modules:
                if hasattr(holder, p):  # a parameter, buffer or attribute of that name:
                    parts, holder, first = [sanitise(name).replace(".", "_")], self, 1  # one name, numbered
                    break
                holder.add_module(p, torch.nn.Module())
            holder = holder._modules[p]
        for k in range(first, 1000):
            leaf = parts[-1] if k == 0 else f"{parts[-1]}_{k}"
            if hasattr(holder, leaf):  # nn.Module's attributes include its parameters, buffers, children
                continue
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
            data = torch.from_numpy(np.ascontiguousarray(array)).clone()
            if value in self.initializers and _TORCH_NAME.match(value) and not _GENERATED.search(value):
                name = value
            else:  # the torch module the exporter recorded, else the node's name or op and index
                path = module_path(call.node) or node_label(call.node, call.index)
                name = f"{path}.{role}"
            # floating point: a parameter; integers and masks: a buffer
            obj = torch.nn.Parameter(data, requires_grad=False) if data.is_floating_point() else data
            self.named[(value, key)] = self.place(name, obj)
        return self.lookup(self.named[(value, key)])

    def submodule(self, index: int, name: str, make: Callable[[], Any]) -> Any:
        if index not in self.named:
            self.named[index] = self.place(name, make())
        return self.get_submodule(self.named[index])

    def forward(self, *inputs: Any) -> Any:
        env = dict(zip(self.input_names, inputs, strict=True))
        for i in self.live:
            node = self.nodes[i]
            # the traced ops carry their ONNX node, so a refusal names it (not "OnnxModule")
            with _annotate({"onnx_node": f"ONNX {node.op_type} node {node.name or i}"}):
                env.update(self.run_node(i, node, env, True))
        out = tuple(env[n] for n in self.returned)
        return out[0] if len(out) == 1 else out
