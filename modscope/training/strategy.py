"""The interface of a training strategy: what it adds to the objective and what it does around a step.

BIMT ([`bimt`][modscope.training.bimt]), the spectral clusterability regulariser and the block clusterability
loss ([`clusterability`][modscope.training.clusterability]) plug into the trainer through it. The trainer
calls, for every step::

    before_step(model, step)            # e.g. a function-preserving rescaling of the weights
    loss = task loss + penalty(model, step)       (None: nothing added this step)
    loss.backward()
    add_grad(model, step)               # a gradient added directly (cheaper than autograd)
    optimizer.step(); pruning masks re-applied
    after_step(model, step, optimizer)  # e.g. BIMT's swap passes

and ``start(model, steps)`` once before the first step (``steps``: the main training's length,
pruning steps come after it), ``finish(model)`` once after the last (its metrics go into the
checkpoint). ``name`` and ``params()`` are recorded in the checkpoint's ``train_config``.

A strategy's constructor only stores its parameters; ``start`` creates whatever state one run
needs, so one strategy object can configure many runs (the trainer starts a copy per run).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from .models import MLP

__all__ = ["Regulariser"]


class Regulariser:
    """Base class of training strategies: every hook does nothing until a subclass overrides it."""

    name: ClassVar[str] = "none"

    def params(self) -> dict[str, Any]:
        """The parameters that define the strategy (JSON-able), for ``train_config``."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **params()}``: what the checkpoint's ``train_config`` records."""
        return {"name": self.name, **self.params()}

    def start(self, model: MLP, steps: int) -> None:
        """Begin a run on ``model``; ``steps`` is the main training's length (without pruning)."""

    def before_step(self, model: MLP, step: int) -> None:
        """Called before the forward pass of 0-based ``step``."""

    def penalty(self, model: MLP, step: int) -> torch.Tensor | None:
        """A differentiable scalar added to the task loss at ``step`` (None: nothing)."""
        return None

    def add_grad(self, model: MLP, step: int) -> None:
        """After ``backward``: add a gradient to the parameters' ``.grad`` directly."""

    def after_step(self, model: MLP, step: int, optimizer: torch.optim.Optimizer) -> None:
        """After the optimizer step (and the pruning masks)."""

    def finish(self, model: MLP) -> dict[str, Any]:
        """After the last step, before evaluation: final changes to the model and metrics to record."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params() == other.params()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.params().items()))))
