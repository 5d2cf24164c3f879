"""The networks lesions run on: a modscope MLP's stack of Linear layers and its activation."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import ModscopeError

__all__ = ["act_at_zero", "layer_widths", "mlp_layers"]


def mlp_layers(model: Any) -> list[nn.Linear]:
    """The Linear stack of a modscope MLP (or anything with ``layers``, ``act``, ``embed``)."""
    layers = getattr(model, "layers", None)
    ok = (
        isinstance(layers, nn.ModuleList)
        and len(layers) >= 2
        and all(isinstance(m, nn.Linear) for m in layers)
        and callable(getattr(model, "act", None))
        and callable(getattr(model, "embed", None))
    )
    if not ok:
        raise ModscopeError(
            "knockouts need a modscope MLP with at least one hidden layer "
            "(a `layers` list of nn.Linear, an `act` and an `embed`)"
        )
    return list(layers)


def layer_widths(model: Any) -> tuple[int, ...]:
    """Neuron counts of the model's layers, input to output (the graph's ``layer_widths``)."""
    lins = mlp_layers(model)
    return (lins[0].in_features, *(m.out_features for m in lins))


def act_at_zero(model: Any) -> float:
    w = mlp_layers(model)[0].weight
    return float(model.act(torch.zeros(1, dtype=w.dtype, device=w.device)))
