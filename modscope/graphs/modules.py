"""The layers with weights of a torch module, in registration order."""

from __future__ import annotations

from typing import Any

__all__ = ["linear_layers", "named_linear_layers"]


def named_linear_layers(model: Any) -> list[tuple[str, Any]]:
    """``[(name, nn.Linear)]`` in registration order (the forward order of an MLP)."""
    from torch import nn

    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def linear_layers(model: Any) -> list[Any]:
    """The model's ``nn.Linear`` modules in registration order."""
    return [m for _, m in named_linear_layers(model)]
