"""The BIMT comparison's CNN (`modscope.training.architectures.BIMTCNN`): trained plain or with BIMT
on an image task, and the measures of what BIMT does to it.

`fit_cnn` trains it with `fit_model` (BIMT through `bimt_strategy`, the conv channels on grids).
`pixel_paths` says how strongly each input pixel still reaches the outputs: the sum over every
path pixel -> conv1 -> conv2 -> head -> output of the product of the |weights| along it (or, with a
threshold, the number of paths whose every weight survives). A pixel with no surviving path has
left the receptive field. A weight *survives* when ``|w| >= rel * max |w|`` of its layer
(``rel = 1e-2``, `RELATIVE_THRESHOLD`), for plain and BIMT networks alike (BIMT's own absolute
threshold only zeroes BIMT's weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModscopeError
from .architectures import BIMTCNN
from .bimt import BIMTConfig
from .bimt_graph import bimt_strategy
from .fit import FitResult, fit_model

__all__ = ["RELATIVE_THRESHOLD", "CNNFit", "fit_cnn", "pixel_paths", "receptive_field", "weight_sparsity"]

RELATIVE_THRESHOLD = 1e-2  # a weight below 1 % of its layer's largest |w| does not survive


def _layers(model: BIMTCNN) -> list[nn.Module]:
    if not isinstance(model, BIMTCNN):
        raise ModscopeError(
            f"expected a BIMTCNN (modscope.training.architectures), got {type(model).__name__}"
        )
    return [model.conv1, model.conv2, model.head]


def _surviving(w: torch.Tensor, rel: float) -> torch.Tensor:
    a = w.detach().abs()
    top = float(a.max()) if a.numel() else 0.0
    return a >= rel * top if top > 0 else torch.zeros_like(a, dtype=torch.bool)


def weight_sparsity(model: BIMTCNN, rel: float = RELATIVE_THRESHOLD) -> float:
    """Fraction of the conv and head weights (biases excluded) that do not survive
    (``|w| < rel * max |w|`` of their layer)."""
    masks = [_surviving(layer.weight, rel) for layer in _layers(model)]
    total = sum(m.numel() for m in masks)
    return float(sum(int((~m).sum()) for m in masks) / total)


def pixel_paths(model: BIMTCNN, rel: float | None = None) -> np.ndarray:
    """``(H, W)`` float64 per input pixel: the sum over all paths to the outputs of the product of
    the |weights| along them (``rel=None``), or the number of paths whose weights all survive
    (``rel``: the relative threshold). Biases and ReLUs are left out: the map is the gradient of the
    summed outputs of the network with every weight replaced by |w| (or its 0/1 survival)."""
    layers = _layers(model)
    if rel is not None and not 0.0 <= rel < 1.0:
        raise ModscopeError(f"the relative threshold must be in [0, 1), got {rel}")

    def weight(layer: nn.Module) -> torch.Tensor:
        w = layer.weight.detach().double()
        return _surviving(w, rel).double() if rel is not None else w.abs()

    x = torch.ones(1, 1, *model.image, dtype=torch.float64, requires_grad=True)
    h = x
    for conv in layers[:2]:
        h = nn.functional.conv2d(h, weight(conv), None, conv.stride, conv.padding)
    out = h.flatten(1) @ weight(layers[2]).T
    (grad,) = torch.autograd.grad(out.sum(), x)
    return grad[0, 0].numpy()


def receptive_field(model: BIMTCNN, rel: float = RELATIVE_THRESHOLD) -> dict[str, Any]:
    """``dead_fraction``: the fraction of input pixels with no path of surviving weights to an
    output; ``alive``: the ``(H, W)`` 0/1 map; ``threshold``: ``rel``."""
    alive = pixel_paths(model, rel) > 0
    return {"dead_fraction": float(1.0 - alive.mean()), "alive": alive.astype(int).tolist(), "threshold": rel}


@dataclass
class CNNFit:
    """One trained `BIMTCNN`: the ``model``, its `FitResult`, whether BIMT trained it and the
    options it was built and trained with."""

    model: BIMTCNN
    fit: FitResult
    bimt: bool
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"bimt": self.bimt, "settings": dict(self.settings), "fit": self.fit.to_dict()}


def fit_cnn(
    task: Any,
    *,
    bimt: bool,
    steps: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    seed: int = 0,
    widths: Sequence[int] = (8, 16),
    bimt_options: dict[str, Any] | None = None,
    progress: bool = False,
) -> CNNFit:
    """Build a `BIMTCNN` for ``task`` (a built-in image task: ``task.input_shape`` is its (H, W)),
    its weights drawn from ``seed``, and train it with `fit_model` (minibatches from ``seed`` too).
    ``bimt``: train with BIMT on its unit graph: the task's BIMT defaults (`BIMTConfig.from_task`)
    overridden by ``bimt_options``, conv channels on square grids."""
    shape = tuple(getattr(task, "input_shape", None) or ())
    if len(shape) != 2:
        raise ModscopeError(
            f"the BIMT CNN needs an image task with (H, W) pixels, got input shape {shape or 'none'}; "
            "pass a task such as fashion-mnist, mnist or digits"
        )
    if bimt_options and not bimt:
        raise ModscopeError("bimt_options apply to BIMT training only; pass bimt=True or drop them")
    model = BIMTCNN(image=shape, widths=widths, classes=int(task.n_outputs), seed=seed)
    strategy = None
    if bimt:
        config = BIMTConfig.from_task(task, **(bimt_options or {}))
        strategy = bimt_strategy(model, torch.zeros(1, int(np.prod(shape))), config, input_shape=shape)
    data = task.to_data() if hasattr(task, "to_data") else task
    fit = fit_model(
        model,
        data,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=progress,
        strategy=strategy,
    )
    settings = {
        "image": list(shape),
        "widths": list(widths),
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
    }
    return CNNFit(model, fit, bimt, settings)
