"""Changes to a model's weights in place that always undo themselves: context managers that silence
an MLP's hidden neurons or remove weights, and restore the exact original values on exit, also when
the body raises. modscope's own knockouts never write the model (`modscope.lesions.lesioner`); these
are for running your own code on a changed model, and for removing function masks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModscopeError

__all__ = ["lesion", "masked", "remove_weights", "weight_masks"]


def _mlp_layers(model: Any) -> list[nn.Linear]:
    """The Linear stack of a modscope MLP (anything with a ``layers`` list of Linear and an ``act``)."""
    layers = getattr(model, "layers", None)
    if not (
        isinstance(layers, nn.ModuleList)
        and len(layers) >= 2
        and all(isinstance(m, nn.Linear) for m in layers)
        and callable(getattr(model, "act", None))
    ):
        raise ModscopeError(
            "lesion() needs a modscope MLP with at least one hidden layer (a `layers` list of "
            "nn.Linear and an `act`); any other network: modscope.knockout"
        )
    return list(layers)


@contextmanager
def lesion(model: nn.Module, neurons: Mapping[int, Any]) -> Iterator[nn.Module]:
    """Silence hidden neurons inside the ``with`` block; the exact weights come back on exit.

    ``neurons``: ``{graph layer l (1 .. L-1): neuron indices in that layer}``. Zeroes the
    neurons' incoming weights (rows of ``layers[l-1].weight``) and biases, so their
    pre-activation is 0 and their output ``act(0)``: 0 for ReLU, SiLU, GELU and tanh. For
    activations with ``act(0) != 0`` (sigmoid: 0.5) the outgoing weights (columns of
    ``layers[l].weight``) are zeroed too, so in every case a lesioned neuron contributes
    nothing downstream ("outputs zero"). Restores on normal exit and on error.
    """
    lins = _mlp_layers(model)
    n_hidden = len(lins) - 1
    index: dict[int, torch.Tensor] = {}
    for layer, ids in neurons.items():
        if not 1 <= int(layer) <= n_hidden:
            raise ModscopeError(f"layer {layer} is not a hidden layer (1 .. {n_hidden})")
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        width = lins[int(layer) - 1].out_features
        if arr.size and (arr.min() < 0 or arr.max() >= width):
            raise ModscopeError(f"neuron index out of range for layer {layer} of width {width}")
        index[int(layer)] = torch.from_numpy(arr).to(lins[0].weight.device)
    w = lins[0].weight
    zero_outgoing = float(model.act(torch.zeros(1, dtype=w.dtype, device=w.device))) != 0.0
    # what changes: each lesioned layer's incoming weights and biases (and its outgoing weights)
    params = [p for layer in index for p in (lins[layer - 1].weight, lins[layer - 1].bias,
              lins[layer].weight if zero_outgoing else None) if p is not None]
    with _restored(params):
        with torch.no_grad():
            for layer, idx in index.items():
                lin = lins[layer - 1]
                lin.weight[idx] = 0
                if lin.bias is not None:
                    lin.bias[idx] = 0
                if zero_outgoing:
                    lins[layer].weight[:, idx] = 0
        yield model


@contextmanager
def _restored(params: Iterable[torch.Tensor]) -> Iterator[None]:
    """The exact values of ``params`` (each once) come back on exit, also on error."""
    saved = [(p, p.detach().clone()) for p in {id(p): p for p in params}.values()]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, original in saved:
                p.copy_(original)


def weight_masks(model: nn.Module, masks: Any) -> dict[str, torch.Tensor]:
    """Normalise one function's mask to ``{parameter name: bool tensor of its shape}``.

    Accepts a sequence of bool tensors, one per ``nn.Linear`` weight in the order the model
    registers them (forward order for an MLP; ``None`` entries skipped), or a mapping from
    parameter names (``"layers.0.weight"``) or Linear indices to bool tensors. ``True`` marks a
    weight of the subnetwork.
    """
    params = dict(model.named_parameters())
    lins = [m for m in model.modules() if isinstance(m, nn.Linear)]
    names = {id(p): n for n, p in params.items()}
    out: dict[str, torch.Tensor] = {}
    if isinstance(masks, Mapping):
        items = list(masks.items())
    elif isinstance(masks, Sequence) and not isinstance(masks, str | bytes):
        if len(masks) != len(lins):
            raise ModscopeError(f"got {len(masks)} masks for a model with {len(lins)} Linear layers")
        items = list(enumerate(masks))
    else:
        raise ModscopeError(f"a mask must be a list of tensors or a dict, got {type(masks).__name__}")
    for key, m in items:
        if m is None:
            continue
        if isinstance(key, int):
            if not 0 <= key < len(lins):
                raise ModscopeError(f"mask for Linear layer {key}, the model has {len(lins)}")
            name = names[id(lins[key].weight)]
        else:
            name = str(key)
        if name not in params:
            raise ModscopeError(f"mask for unknown parameter {name!r}")
        t = torch.as_tensor(m)
        if t.dtype != torch.bool:
            raise ModscopeError(f"mask for {name} must be boolean, got {t.dtype}")
        if tuple(t.shape) != tuple(params[name].shape):
            raise ModscopeError(
                f"mask for {name} has shape {tuple(t.shape)}, "
                f"the weight {tuple(params[name].shape)}"
            )
        out[name] = t
    return out


@contextmanager
def remove_weights(model: nn.Module, masks: Any) -> Iterator[nn.Module]:
    """Zero exactly the weights a function's mask marks (``True``), keep the rest ([spec §5][spec-5]).

    ``masks``: anything [`weight_masks()`][modscope.lesions.inplace.weight_masks] accepts (e.g. one entry of
    [`modscope.masks.load_masks()`][modscope.masks.result.load_masks]). The original values come back on exit,
    also on error.
    """
    with masked(model, weight_masks(model, masks), invert=True) as m:
        yield m


@contextmanager
def masked(
    model: nn.Module, mask: Mapping[str, torch.Tensor], invert: bool = False
) -> Iterator[nn.Module]:
    """Multiply the named parameters by a hard mask in place (``invert``: by its complement) and
    restore the exact original values on exit, also when the body raises.

    ``mask``: ``{parameter name: bool tensor of the parameter's shape}``, e.g. one entry of
    [`load_masks()`][modscope.masks.result.load_masks]. Use it to run your own code on a masked model;
    modscope's own evaluations never touch the model (they go through ``functional_call``).
    """
    params = dict(model.named_parameters())
    unknown = [n for n in mask if n not in params]
    if unknown:
        raise ModscopeError(f"mask names parameters the model does not have: {', '.join(unknown)}")
    for n, m in mask.items():
        if tuple(m.shape) != tuple(params[n].shape):
            raise ModscopeError(
                f"mask for {n} has shape {tuple(m.shape)}, the parameter {tuple(params[n].shape)}"
            )
    with _restored(params[n] for n in mask):
        with torch.no_grad():
            for n, m in mask.items():
                keep = m.to(device=params[n].device, dtype=torch.bool)
                params[n].mul_((~keep if invert else keep).to(params[n].dtype))
        yield model
