"""Any source a user points at -> the weight matrices in forward order -> a `WeightGraph`.

Accepted sources: modscope checkpoints (a path, a payload dict or a `Checkpoint`), plain torch
state dicts of Linear or conv stacks (``.pt``/``.pth``/``.bin``/``.ckpt``), ``.safetensors``,
``.npz``, an ``nn.Module`` or a state-dict ``dict`` in memory. Files are read by the safe readers
of `modscope.graphs.formats`: a file that would need code to run is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ..errors import ModscopeError
from . import formats
from .arrays import as_float64
from .chains import Layout, ordered_weights
from .cnn import channel_weights, holds_conv, module_channel_weights
from .modules import named_linear_layers
from .weight_graph import WeightGraph, check_build_memory

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Source", "load_graph", "load_weights"]

Source = Union[str, os.PathLike, Mapping[str, Any], "nn.Module", Any]  # Any: a Checkpoint (to_payload())


def _is_module(obj: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _tensor_weights(tensors: Mapping[str, Any], layers, layout: Layout) -> list[tuple[str, np.ndarray]]:
    if layers is None and holds_conv(tensors):  # conv kernels: the channel graph, filters as units
        return channel_weights(tensors)
    return ordered_weights(tensors, layers, layout)


def _payload_weights(payload: Mapping[str, Any], layers, layout: Layout, source: str):
    """A modscope checkpoint's Linear weights, inputs and outputs in the task's order."""
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
    return ordered_weights(sd, layers, layout)


def _module_weights(module: Any, layers, layout: Layout) -> list[tuple[str, np.ndarray]]:
    from torch import nn

    if layers is not None:
        return ordered_weights(module.state_dict(), layers, layout)
    if any(isinstance(m, nn.Conv2d) for m in module.modules()):
        return module_channel_weights(module)
    linears = named_linear_layers(module)
    if not linears:
        raise ModscopeError("the module has no nn.Linear layers")
    items = [(f"{n}.weight", as_float64(n, m.weight)) for n, m in linears]
    if not all(b.shape[1] == a.shape[0] for (_, a), (_, b) in zip(items[:-1], items[1:], strict=False)):
        raise ModscopeError("the module's Linear layers do not chain in registration order")
    return items


def load_weights(
    source: Source,
    layers: Sequence[str] | None = None,
    layout: Layout = "out_in",
    trust_pickle: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """``[(name, W)]`` in forward order, each ``W`` an ``(out, in)`` float array."""
    if callable(getattr(source, "to_payload", None)):  # a Checkpoint object
        source = source.to_payload()
    if _is_module(source):
        return _module_weights(source, layers, layout)
    if isinstance(source, Mapping):
        if formats.is_checkpoint_payload(source):
            return _payload_weights(source, layers, layout, "checkpoint")
        return _tensor_weights(formats.unwrap_state_dict(source, "state dict"), layers, layout)
    if not isinstance(source, str | os.PathLike):
        raise ModscopeError(f"cannot load weights from a {type(source).__name__}")
    path = Path(source)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _tensor_weights(formats.read_safetensors(path), layers, layout)
    if suffix == ".npz":
        return _tensor_weights(formats.read_npz(path), layers, layout)
    obj = formats.safe_torch_load(path, trust_pickle=trust_pickle)
    # whole pickled models (only loadable with trust_pickle), bare or under a usual key
    module = obj if _is_module(obj) else None
    if isinstance(obj, Mapping) and module is None:
        module = next((obj[k] for k in formats.STATE_DICT_KEYS if _is_module(obj.get(k))), None)
    if module is not None:
        return load_weights(module, layers, layout)
    if formats.is_checkpoint_payload(obj):
        return _payload_weights(obj, layers, layout, str(path))
    return _tensor_weights(formats.unwrap_state_dict(obj, str(path)), layers, layout)


def load_graph(
    source: Source,
    layers: Sequence[str] | None = None,
    layout: Layout = "out_in",
    trust_pickle: bool = False,
) -> WeightGraph:
    """Build the `WeightGraph` of a checkpoint path, state dict, `Checkpoint` or ``nn.Module``.

    A modscope checkpoint's input and output nodes come in the task's feature order,
    whatever BIMT swapped.
    """
    if isinstance(source, WeightGraph):
        return source
    items = load_weights(source, layers, layout, trust_pickle=trust_pickle)
    if items and all(w.ndim == 2 for _, w in items):
        # refuse a network too large for this machine before the float64 copies are made
        check_build_memory([items[0][1].shape[1], *(w.shape[0] for _, w in items)])
    return WeightGraph.from_weights([w for _, w in items], [n for n, _ in items])
