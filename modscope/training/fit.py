"""Training any ``nn.Module`` on any `modscope.data.Data`: the plain loop behind the worked
examples on architectures that are not MLPs (`modscope.training.architectures`).

Adam (AdamW with ``weight_decay``) on the data's loss (cross-entropy per output group, MSE, or
the data's own ``loss``), minibatches of the train split drawn with a seeded ``torch.Generator``
(never global state), the model in train mode while it learns and evaluated batch by batch in
eval mode on the test split at the end (and every ``eval_every`` steps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import metrics
from ..data.accumulate import Accumulator
from ..errors import ModscopeError
from ..runtime.modules import device_errors, eval_mode, model_device, on_device

__all__ = ["FitResult", "evaluate_model", "fit_model"]


@dataclass
class FitResult:
    """What `fit_model` did: ``steps``, the test ``metric`` at the end (accuracy or MSE), the
    ``history`` of ``(step, train loss, test metric or None)`` and the settings it ran with."""

    steps: int
    metric: float
    metric_name: str
    history: list[tuple[int, float, float | None]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    strategy: dict[str, Any] = field(default_factory=dict)  # the training strategy's final metrics

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["history"] = [list(h) for h in self.history]
        if not self.strategy:  # plain runs keep 0.3.0's keys
            del d["strategy"]
        return d


def _loss(data: Any, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if data.loss is not None:
        return data.loss(out, y)
    kind = "mse" if data.kind == "regression" else "ce"
    return metrics.loss(out, y, kind, data.groups(out.shape[-1]))


def evaluate_model(
    model: nn.Module, data: Any, split: str = "test", batch_size: int = 512, output: Callable | None = None
) -> float:
    """The data's metric of ``model`` on ``split``, streamed in batches (eval mode, no gradients);
    each batch goes to the device the model is on."""
    acc = None
    dev = model_device(model)
    with eval_mode(model, no_grad=True):
        for idx, x, y in data.split(split).batches(batch_size):
            out = model(x.to(dev))
            out = output(out) if output is not None else out
            acc = acc or Accumulator(data, out.shape[-1], 1, split=split)
            acc.add(idx, out[None], y)
    return float(acc.result()[0][0])


def fit_model(
    model: nn.Module,
    data: Any,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    seed: int = 0,
    eval_every: int | None = None,
    progress: bool = False,
    device: Any = None,
    strategy: Any = None,
) -> FitResult:
    """Train ``model`` in place on ``data``'s train split for ``steps`` minibatch steps.

    ``strategy``: a training strategy (`modscope.training.strategy.Regulariser`: BIMT on any
    architecture through `modscope.training.bimt_graph.bimt_strategy`), its hooks called around
    every step and its final metrics kept in `FitResult.strategy`.

    ``device``: where it trains (``"cpu"``, ``"cuda"``, ``"cuda:1"``; default: where the model is,
    which must be one device); each batch is moved there, and the model goes back to where it was
    when training ends (its weights trained, its place unchanged). The minibatches are drawn on the
    CPU, so every device sees the same batches and the results agree up to float rounding. Running
    out of device memory is one line saying what to lower.
    """
    from ..data.dataset import load_data
    from .strategy import Regulariser

    data = load_data(data)
    train = data.split("train")
    if steps < 1 or batch_size < 1:
        raise ModscopeError(f"steps and batch size must be >= 1, got {steps} and {batch_size}")
    if not lr > 0:
        raise ModscopeError(f"learning rate must be positive, got {lr}")
    with on_device(model, device) as dev, device_errors("batch_size"):
        strategy = strategy if strategy is not None else Regulariser()
        gen = torch.Generator().manual_seed(int(seed))  # on the CPU: the same batches on every device
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        n = len(train)
        history: list[tuple[int, float, float | None]] = []
        from tqdm.auto import tqdm

        bar = tqdm(range(steps), desc="fit", unit="step", disable=not progress)
        losses: list[float] = []
        strategy.start(model, steps)
        for step in bar:
            pick = torch.randint(n, (batch_size,), generator=gen).numpy()
            x, y = train.rows(np.sort(pick))
            model.train()
            strategy.before_step(model, step)
            loss = _loss(data, model(x.to(dev)), y.to(dev))
            extra = strategy.penalty(model, step)
            total = loss if extra is None else loss + extra
            opt.zero_grad(set_to_none=True)
            total.backward()
            strategy.add_grad(model, step)
            opt.step()
            strategy.after_step(model, step, opt)
            losses.append(loss.item())
            if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
                history.append((step + 1, float(np.mean(losses)), evaluate_model(model, data)))
                losses = []
        final = strategy.finish(model)
        metric = evaluate_model(model, data)
        history.append((steps, float(np.mean(losses)) if losses else float("nan"), metric))
        model.eval()
        settings = dict(steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=int(seed))
        if strategy.name != "none":
            settings["strategy"] = strategy.to_dict()
        return FitResult(steps, metric, data.metric_name, history, settings, dict(final))
