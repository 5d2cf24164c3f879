"""Scoring lesions of any traced network on the user's data, batch by batch.

`UnitEvaluator` is the `LesionEvaluator` of networks modscope did not build: the data stream
once per call (`modscope.data`), every lesion of the call is scored on every batch (batched in
one forward where `UnitLesioner` allows, else one forward per lesion), and the metric is summed
as it goes (`modscope.data.accumulate.Accumulator`), so memory holds one batch and the lesions'
copies of it, never the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.accumulate import Accumulator
from ..data.functions import Function
from ..errors import ModscopeError
from ..runtime.modules import eval_mode
from .evaluate import Scores
from .units import UnitLesioner

__all__ = ["UnitEvaluator", "model_output"]


def model_output(out: Any, output: int | Callable[[Any], Any] | None) -> torch.Tensor:
    """The tensor to score from a forward's result: itself, one of several heads (``output``: an
    index), or what ``output(result)`` picks."""
    if callable(output):
        out = output(out)
    elif isinstance(out, tuple | list):
        if output is None:
            raise ModscopeError(
                f"the model returns {len(out)} outputs: say which one to score (output=INDEX)"
            )
        out = out[int(output)]
    elif isinstance(out, Mapping):
        out = out["logits"] if "logits" in out else next(iter(out.values()))
    elif hasattr(out, "logits"):  # Hugging Face model outputs
        out = out.logits
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(getattr(out, "shape", ()))
        raise ModscopeError(f"the scored output must be (batch, outputs), got shape {shape}")
    return out


class UnitEvaluator:
    """Lesions given as keep-masks ``{group g: (N, units of g) bool}`` of ``traced.graph``, scored on
    ``split`` of ``data`` (a `modscope.data.Data`) with ``functions``.

    ``batch_size``: examples per batch; ``max_elements``: the most input elements one forward
    holds (lesions' copies x batch), which bounds memory. ``output``: which head to score.
    """

    def __init__(
        self,
        model: nn.Module,
        traced: Any,
        data: Any,
        *,
        split: str = "test",
        functions: Sequence[Function] = (),
        lesioner: UnitLesioner | None = None,
        batch_size: int = 256,
        max_elements: int = 2**24,
        output: int | Callable[[Any], Any] | None = None,
    ) -> None:
        self.model, self.traced, self.data = model, traced, data
        self.split_name = split
        self.split = data.split(split)
        if len(self.split) == 0:
            raise ModscopeError(f"{data.name} has no {split} examples")
        self.functions = list(functions)
        self.lesioner = lesioner or UnitLesioner(model, traced)
        self.batch_size = int(batch_size)
        self.max_elements = int(max_elements)
        self.output = output
        param = next(model.parameters(), None)
        self.dtype = param.dtype if param is not None else torch.float32
        self.device = param.device if param is not None else torch.device("cpu")
        self._intact: Scores | None = None

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.dtype) if x.is_floating_point() else x).to(self.device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.model(x)
        except ModscopeError:
            raise
        except Exception as exc:  # the user's model on the user's data: its complaint in one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModscopeError(
                f"the model rejects the data ({type(exc).__name__}: {first}); inputs of shape "
                f"{tuple(x.shape)[1:]} per example"
            ) from None
        return model_output(out, self.output)

    def _accumulator(self, n: int, n_outputs: int) -> Accumulator:
        return Accumulator(self.data, n_outputs, n, self.functions, self.split_name)

    def _scores(self, acc: Accumulator) -> Scores:
        metric, per_class, per_fn = acc.result()
        return Scores(metric, per_class, per_fn)

    def intact(self) -> Scores:
        if self._intact is None:
            acc = None
            versions = [p._version for p in self.model.parameters()]  # noqa: SLF001 (torch's counter)
            with eval_mode(self.model, no_grad=True):
                for idx, x, y in self.split.batches(self.batch_size):
                    out = self._forward(self._input(x))
                    acc = acc or self._accumulator(1, out.shape[-1])
                    acc.add(idx, out[None], y)
            if versions != [p._version for p in self.model.parameters()]:  # noqa: SLF001
                raise ModscopeError(
                    "the model changes its own weights in forward: lesions and their baselines would "
                    "not see the same network"
                )
            self._intact = self._scores(acc)
        return self._intact

    def node_lesions(self, keep: Mapping[int, Any]) -> np.ndarray:
        """``(N, n_nodes)`` bool, ``True`` = silenced, from per-group keep-masks."""
        graph = self.traced.graph
        n = next(iter(keep.values())).shape[0]
        lesions = np.zeros((n, graph.n_nodes), dtype=bool)
        for g, mask in keep.items():
            m = np.asarray(mask.cpu() if hasattr(mask, "cpu") else mask, dtype=bool)
            lesions[:, graph.offsets[g] : graph.offsets[g + 1]] = ~m
        return lesions

    def evaluate(self, keep: Mapping[int, Any]) -> Scores:
        if not keep:
            raise ModscopeError("a lesion needs at least one unit group")
        return self.evaluate_nodes(self.node_lesions(keep))

    def evaluate_nodes(self, lesions: np.ndarray) -> Scores:
        """Scores of the ``(N, n_nodes)`` lesions (``True`` = silenced)."""
        n = lesions.shape[0]
        # lesions share one forward as copies along the input's batch axis 0; else one each
        loop = self.lesioner.batch_axis != 0 or self.lesioner.needs_loop(lesions)
        acc = None
        with eval_mode(self.model, no_grad=True):
            for idx, x, y in self.split.batches(self.batch_size):
                x = self._input(x)
                # lesions per forward: their copies of the batch hold at most max_elements input
                # elements and 4 batches (a layer's activations outweigh its input many times)
                per = max(1, x.numel())
                chunk = 1 if loop else max(1, min(n, self.max_elements // per, 4))
                for start in range(0, n, chunk):
                    rows = slice(start, min(n, start + chunk))
                    if loop:
                        with self.lesioner.one_lesion(lesions[start]):
                            out = self._forward(x)[None]
                    else:
                        R = rows.stop - rows.start
                        with self.lesioner.lesioned(lesions[rows]):
                            out = self._forward(x.repeat(R, *([1] * (x.ndim - 1)))).reshape(R, x.shape[0], -1)
                    acc = acc or self._accumulator(n, out.shape[-1])
                    acc.add(idx, out, y, rows)
        return self._scores(acc)
