"""The weights-only family: plain stacks built straight from their weights ([spec §1][spec-1]).

A plain stack's order is its dataflow, so its unit graph needs no trace (no ``torch.export``, and
no torch import at all for a ``.safetensors`` / ``.npz`` file):

- Linear stacks (a state dict, an ``nn.Sequential`` of Linear and weightless layers, modscope's
  own MLP, a modscope checkpoint): the matrices in forward order (`ordered_weights`), the ``in x
  out`` layout of Keras and JAX detected when only it chains, BatchNorm folded in;
- conv stacks: channels as units, the kernel-slice norms of `modscope.graphs.cnn`.

Key names that say a network is not a plain stack (attention, recurrent, residual shortcuts)
are refused, never chained (`not_a_plain_stack`). For a stack of Linear layers the reading of
each unit group is known too: the `Site` of every Linear's input (`linear_sites`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ModscopeError
from .arrays import as_float64
from .cnn import FlattenOrder, channel_weights, holds_conv, module_channel_weights
from .families import WAY_OUT
from .files import formats
from .names import EMBEDDING, natural_key
from .weight_graph import WeightGraph, check_build_memory

if TYPE_CHECKING:
    from .tracing.export import TracedNetwork
    from .tracing.sites import Site

__all__ = [
    "Layout",
    "LayoutOption",
    "StackReading",
    "chains",
    "is_modscope_mlp",
    "linear_layers",
    "linear_sites",
    "linear_stack",
    "mlp_trace",
    "module_stack",
    "named_linear_layers",
    "not_a_plain_stack",
    "ordered_weights",
    "payload_stack",
    "state_stack",
    "weights_graph",
]

Layout = Literal["out_in", "in_out"]
LayoutOption = Literal["auto", "out_in", "in_out"]

# Key names that say a state dict is not a plain stack: (pattern, what it is).
_NOT_A_STACK = (
    (
        re.compile(
            r"(^|\.)(query|key|value|q_proj|k_proj|v_proj|o_proj|out_proj|in_proj_weight|qkv|c_attn|"
            r"query_key_value|attn|attention|self_attn|selfattention|encdecattention)(\.|$)",
            re.IGNORECASE,
        ),
        "attention weights",
    ),
    (  # torch's names, and others' (enc_w_ih, gru.W_hh, lstm_kernel): never chained by shape
        re.compile(
            r"(^|\.)(weight|bias)_(ih|hh)(_l\d+)?(_reverse)?$|recurrent_kernel|(^|[._])[wb]_?(ih|hh)(_|\.|$)|"
            r"(^|[._])(lstm|gru|rnn|bilstm|bigru)\d*([._]|$)",
            re.IGNORECASE,
        ),
        "recurrent weights",
    ),
    (
        re.compile(r"(^|\.)(downsample|shortcut|skip|residual)(\.|_|$)", re.IGNORECASE),
        "a residual shortcut",
    ),
)


def not_a_plain_stack(names: Sequence[str]) -> str | None:
    """Why tensors named ``names`` cannot be read as a plain stack of layers (None: they can)."""
    for pattern, what in _NOT_A_STACK:
        hit = next((n for n in names if pattern.search(n)), None)
        if hit is not None:
            return (
                f"{hit}: {what}, and a state dict does not say how the forward joins them; "
                f"modscope never chains such matrices: {WAY_OUT}"
            )
    return None


def chains(items: Sequence[tuple[str, np.ndarray]]) -> bool:
    """Whether each matrix (out x in) feeds the next one."""
    return all(b.shape[1] == a.shape[0] for (_, a), (_, b) in zip(items[:-1], items[1:], strict=False))


def ordered_weights(
    tensors: Mapping[str, Any], layers: Sequence[str] | None = None, layout: Layout = "out_in",
) -> list[tuple[str, np.ndarray]]:
    """Pick the Linear weight matrices of a state dict and put them in forward order.

    ``layers`` names the weight tensors explicitly; otherwise every 2-D ``*weight`` tensor
    (embeddings excluded) is used, in stored order, or else in natural-sorted key order
    (``.safetensors`` files store keys sorted). Never in an order found by matching shapes: that
    chains matrices that do not follow each other (a transformer's). ``layout="in_out"`` reads
    Keras/JAX-style ``in x out`` kernels. Raises `ModscopeError` if the shapes do not chain.
    """
    if layout not in ("out_in", "in_out"):
        raise ModscopeError(f"unknown weight layout {layout!r}; use 'out_in' (torch) or 'in_out'")
    if layers is not None:
        missing = [k for k in layers if k not in tensors]
        if missing:
            raise ModscopeError(f"no tensor named {missing[0]!r}; available: {', '.join(list(tensors)[:12])}")
        names = list(layers)
    else:
        two_d = [k for k, v in tensors.items() if np.ndim(v) == 2 and not EMBEDDING.search(k)]
        names = [k for k in two_d if k.endswith("weight") or k.endswith("kernel")] or two_d
    if not names:
        raise ModscopeError("no 2-D weight matrices found (is this a stack of Linear layers?)")
    items = []
    for k in names:
        a = as_float64(k, tensors[k])
        if a.ndim != 2:
            raise ModscopeError(f"{k}: a Linear weight must be 2-D, got shape {tuple(a.shape)}")
        items.append((k, a.T if layout == "in_out" else a))
    if layers is not None or chains(items):
        return items
    by_key = sorted(items, key=lambda kv: natural_key(kv[0]))
    if chains(by_key):
        return by_key
    shapes = ", ".join(f"{k} {a.shape[0]}x{a.shape[1]}" for k, a in items[:8])
    raise ModscopeError(
        f"weight shapes ({layout.replace('_', ' x ')}) do not chain in stored or key order: {shapes}; "
        "a network that is not a plain stack needs its module (example_input=...) or a .pt2 archive"
    )


def named_linear_layers(model: Any) -> list[tuple[str, Any]]:
    """``[(name, nn.Linear)]`` in registration order (the forward order of an MLP)."""
    from torch import nn

    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def linear_layers(model: Any) -> list[Any]:
    """The model's ``nn.Linear`` modules in registration order."""
    return [m for _, m in named_linear_layers(model)]


def linear_sites(graph: WeightGraph) -> tuple[Site, ...]:
    """Where each unit group of a Linear chain is read: the input of the Linear whose weight is
    ``graph.names[i]`` (``layers.2.weight`` -> module ``layers.2``) reads group ``i``, its
    features on the last axis, as the tracer finds them."""
    from .tracing.sites import Site  # the tracer's package loads only when a module is read

    return tuple(
        Site(
            name.removesuffix(".weight"), "input", np.arange(graph.offsets[i], graph.offsets[i + 1]),
            module_type="Linear",
        )
        for i, name in enumerate(graph.names)
    )


def mlp_trace(module: Any) -> TracedNetwork | None:
    """What `trace_network` finds in modscope's own MLP without a token embedding, read from its
    Linear layers instead (``torch.export`` takes seconds; this, milliseconds): the same unit
    groups, names (``input:x``, ``layers.0``, ...) and sites. ``None`` for any other module."""
    if not is_modscope_mlp(module) or getattr(module, "embedding", None) is not None:
        return None
    import inspect

    from .tracing.export import TracedNetwork

    graph = module_stack(module, None, "1")
    first = next(iter(inspect.signature(module.forward).parameters), "x")
    layers = [name.removesuffix(".weight") for name in graph.names]
    graph = replace(
        graph, group_names=(f"input:{first}", *layers), group_kinds=("input", *["Linear"] * len(layers))
    )
    return TracedNetwork(graph, linear_sites(graph))


@dataclass(frozen=True)
class StackReading:
    """How a stack's weights are read (`modscope.network`'s keyword options for weights)."""

    layout: LayoutOption = "auto"
    kernel_norm: str = "1"
    flatten: FlattenOrder | None = None
    map_shape: tuple[int, int] | None = None
    bn_eps: float | None = None
    input_shape: tuple[int, ...] | None = None


def weights_graph(items: list[tuple[str, np.ndarray]], reading: str) -> WeightGraph:
    """The graph of ``[(name, W)]`` in forward order, refusing one too large for this machine
    before its float64 copies are made."""
    if items and all(w.ndim == 2 for _, w in items) and chains(items):
        check_build_memory([items[0][1].shape[1], *(w.shape[0] for _, w in items)])
    return WeightGraph.from_weights([w for _, w in items], [n for n, _ in items], reading=reading)


def _linear_chain(
    tensors: Mapping[str, Any], layers: Sequence[str] | None, layout: LayoutOption
) -> tuple[list[tuple[str, np.ndarray]], str]:
    """A plain stack of Linear layers in forward order, and how it was read."""
    if layout != "auto":
        items = ordered_weights(tensors, layers, layout)
        return items, f"a plain stack of {len(items)} Linear layers ({layout.replace('_', ' x ')} weights)"
    try:
        return ordered_weights(tensors, layers, "out_in"), (
            "a plain stack of Linear layers (out x in weights, as torch stores them)"
        )
    except ModscopeError as torch_layout:
        try:
            items = ordered_weights(tensors, layers, "in_out")
        except ModscopeError:
            raise ModscopeError(f"{torch_layout} (nor in x out, as Keras / JAX store them)") from None
        return items, (
            f"a plain stack of {len(items)} Linear layers with in x out weights (Keras / JAX): "
            "only that layout chains"
        )


def _bn_eps(how: StackReading) -> tuple[float, str]:
    """A state dict's BatchNorm eps (the file cannot say it: torch's default unless given), and
    ``eps 1e-05 (torch default, assumed)`` for the reading."""
    assumed = (1e-5, "eps 1e-05 (torch default, assumed)")
    return assumed if how.bn_eps is None else (how.bn_eps, f"eps {how.bn_eps:g}")


def state_stack(
    tensors: Mapping[str, Any], layers: Sequence[str] | None, how: StackReading, source: str
) -> WeightGraph:
    """The graph of a state dict read as a plain stack of Linear or conv layers, or a refusal."""
    if layers is not None:
        items = _linear_chain(tensors, layers, how.layout)[0]
        return weights_graph(items, f"the {len(items)} named layers, in the order given")
    why = not_a_plain_stack([k for k, v in tensors.items() if np.ndim(v) > 1 and not EMBEDDING.search(k)])
    if why is not None:
        raise ModscopeError(f"{source}: {why}")
    if holds_conv(tensors):
        if any(np.ndim(v) in (3, 5) for k, v in tensors.items() if k.endswith("weight")):
            raise ModscopeError(f"{source}: Conv1d / Conv3d kernels: {WAY_OUT}")
        eps, said = _bn_eps(how)
        items = channel_weights(
            tensors, norm=how.kernel_norm, flatten=how.flatten, spatial=how.map_shape, bn_eps=eps
        )
        reading = "a plain conv stack in stored order, channels as units"
        if how.flatten is not None:
            reading += f", {how.flatten.replace('_', '-')} flatten"
        if how.map_shape is not None:
            reading += f" of {how.map_shape[0]} x {how.map_shape[1]} maps"
        if any(k.endswith("running_var") for k in tensors):  # the file cannot say: state it
            reading += f", BatchNorm {said}"
        return weights_graph(items, reading)
    if any(np.ndim(v) in (3, 5) for v in tensors.values()):
        raise ModscopeError(f"{source}: 3-D kernels (Conv1d) are not a plain Linear stack: {WAY_OUT}")
    if how.layout != "in_out" and any(k.endswith("running_var") for k in tensors):
        eps, said = _bn_eps(how)
        items = channel_weights(tensors, norm=how.kernel_norm, need_conv=False, bn_eps=eps)
        return weights_graph(
            items, f"a plain stack of Linear layers in stored order, BatchNorm folded in ({said})"
        )
    return weights_graph(*_linear_chain(tensors, layers, how.layout))


def payload_stack(payload: Mapping[str, Any], layers: Sequence[str] | None, source: str) -> WeightGraph:
    """A modscope checkpoint's MLP: its Linear weights, inputs and outputs in the task's order
    (whatever BIMT swapped)."""
    formats.check_checkpoint_version(payload, source)
    try:
        n_linear = len(payload["architecture"]["widths"]) - 1
        state = payload["state_dict"]
    except (KeyError, TypeError) as exc:
        raise ModscopeError(f"{source}: malformed modscope checkpoint ({exc})") from None
    perms = (payload.get("bimt") or {}).get("permutations")
    sd = formats.task_ordered_state_dict(state, perms, n_linear)
    if layers is None:
        layers = [f"layers.{i}.weight" for i in range(n_linear)]
    return weights_graph(ordered_weights(sd, layers, "out_in"), "a modscope checkpoint (MLP)")


def _plain_sequential(module: Any) -> bool:
    """An ``nn.Sequential`` (nested ones allowed) of Linear layers and layers without weights."""
    from torch import nn

    def weightless_leaf(m: nn.Module) -> bool:
        return not [*m.parameters(recurse=False), *m.buffers(recurse=False), *m.children()]

    return isinstance(module, nn.Sequential) and all(
        isinstance(m, nn.Sequential | nn.Linear) or weightless_leaf(m) for m in module.modules()
    )


def is_modscope_mlp(module: Any) -> bool:
    """Whether ``module`` is modscope's own MLP (its forward is the chain of its Linear layers)."""
    return type(module).__name__ == "MLP" and type(module).__module__.startswith("modscope.")


def linear_stack(module: Any) -> bool:
    """Whether ``module``'s forward is the chain of its Linear layers in registration order:
    modscope's own MLP, or an ``nn.Sequential`` of Linear layers and layers without weights."""
    return is_modscope_mlp(module) or _plain_sequential(module)


def module_stack(module: Any, layers: Sequence[str] | None, kernel_norm: str) -> WeightGraph:
    """The graph of a module whose order is its dataflow, read without a trace: the named layers,
    modscope's own MLP, an ``nn.Sequential`` of Linear layers or a plain conv stack; any other
    module has its order in its forward, and is refused."""
    from torch import nn

    if layers is not None:
        return weights_graph(
            ordered_weights(module.state_dict(), layers, "out_in"), "the named layers, in the order given"
        )
    if linear_stack(module):
        items = [(f"{n}.weight", as_float64(n, m.weight)) for n, m in named_linear_layers(module)]
        if not items:
            raise ModscopeError("the module has no layer with weights")
        if not chains(items):
            raise ModscopeError("the Sequential's Linear layers do not chain")
        what = "a modscope MLP" if is_modscope_mlp(module) else "an nn.Sequential of Linear layers"
        return weights_graph(items, what)
    if isinstance(module, nn.Sequential) and any(isinstance(m, nn.Conv2d) for m in module.modules()):
        try:
            items = module_channel_weights(module, norm=kernel_norm)
        except ModscopeError as exc:
            if "height and width" not in str(exc):
                raise
            raise ModscopeError(
                f"{type(module).__name__}: its head flattens a map whose height and width only a forward "
                "pass shows: pass example_input=... (a tensor of the shape the forward takes, batch 1)"
            ) from None
        return weights_graph(items, "an nn.Sequential conv stack, channels as units")
    raise ModscopeError(
        f"{type(module).__name__}: its layers' order is in its forward: pass example_input=... "
        "(a tensor of the shape the forward takes, batch 1) to trace it"
    )
