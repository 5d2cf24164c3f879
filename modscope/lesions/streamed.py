"""Scoring lesions of any traced network on the user's data, batch by batch.

`UnitEvaluator` is the `LesionEvaluator` of networks modscope did not build: the data stream
once per call (`modscope.data`), every lesion of the call is scored on every batch (batched in
one forward where `UnitLesioner` allows, else one forward per lesion), and the metric is summed
as it goes (`modscope.data.accumulate.Accumulator`), so memory holds one batch and the lesions'
copies of it, never the dataset.
"""

from __future__ import annotations

import contextlib
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
from .prefix import PrefixReuse
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


def _reader(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path) if path else model
    except AttributeError:  # a read the tracer could not hook: no module to time it by
        return None


class UnitEvaluator:
    """Lesions given as keep-masks ``{group g: (N, units of g) bool}`` of ``traced.graph``, scored on
    ``split`` of ``data`` (a `modscope.data.Data`) with ``functions``.

    ``batch_size``: examples per batch; ``max_elements``: the most input elements one forward
    holds (lesions' copies x batch), which bounds memory (``None``: 2**24 on the CPU, and on a GPU
    what its free memory holds). ``output``: which head to score.

    ``reuse``: the intact part of each batch's forward (every module call that finishes before the
    first reader of a lesioned unit) is computed once per call and batch and replayed for every
    lesion (`modscope.lesions.prefix`), so lesions of late layers skip the early ones; where the
    model's structure does not allow it the whole forward runs and ``note`` says why. ``reused`` /
    ``full`` count the (lesion set, batch) passes that did and did not reuse a prefix.
    ``precision``: ``"fp32"`` (default: the model's own dtype) or ``"bf16"`` / ``"fp16"``, the
    lesioned forwards under ``torch.autocast`` (the intact baseline too, so a lesion's damage
    compares like with like); opt-in, for GPUs, since rounding can move a metric near a tie.
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
        max_elements: int | None = 2**24,
        output: int | Callable[[Any], Any] | None = None,
        reuse: bool = True,
        precision: str = "fp32",
    ) -> None:
        if precision not in ("fp32", "bf16", "fp16"):
            raise ModscopeError(f"precision must be 'fp32', 'bf16' or 'fp16', got {precision!r}")
        self.model, self.traced, self.data = model, traced, data
        self.split_name = split
        self.split = data.split(split)
        if len(self.split) == 0:
            raise ModscopeError(f"{data.name} has no {split} examples")
        self.functions = list(functions)
        self.lesioner = lesioner or UnitLesioner(model, traced)
        self.batch_size = int(batch_size)
        self.max_elements = None if max_elements is None else int(max_elements)
        self.output = output
        param = next(model.parameters(), None)
        self.dtype = param.dtype if param is not None else torch.float32
        self.device = param.device if param is not None else torch.device("cpu")
        self._intact: Scores | None = None
        self.reuse, self.precision = bool(reuse), precision
        self._prefix: PrefixReuse | None = None
        self._why: str | None = None  # why the probe could not run, once it failed
        self.note: str | None = None
        self.reused = self.full = 0

    def _autocast(self) -> Any:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _full(self, out: torch.Tensor) -> torch.Tensor:
        """Autocast outputs back in float32 for the metric; the model's own dtype otherwise."""
        return out if self.precision == "fp32" else out.float()

    def _plan(self, x: torch.Tensor, touched: Sequence[int]) -> list:
        """The prefix calls to replay for lesions of the ``touched`` sites (empty: the whole forward)."""
        why = self._why
        if self.lesioner.batch_axis != 0:
            why = "the model's input is not batch-first"
        elif self._prefix is None and why is None:
            sites = [_reader(self.model, s.module) for s in self.traced.sites]
            try:
                with self._autocast():
                    self._prefix = PrefixReuse(self.model, x[: min(2, x.shape[0])], sites)
            except torch.OutOfMemoryError:
                raise
            except Exception as exc:  # noqa: BLE001 - no replay then, never a wrong one
                why = self._why = f"the model fails on a probe of two examples ({type(exc).__name__})"
            else:
                why = self._prefix.note
        if why and self.reuse:
            self.note = f"{why}: every lesion runs the whole forward"
        if self._prefix is None or not self.reuse:
            return []  # the probe runs either way: its widest layer sizes the lesions per GPU forward
        return self._prefix.plan(touched)

    def _copies(self, x: torch.Tensor, n: int, loop: bool) -> int:
        """Lesions per forward: their copies of the batch hold at most ``max_elements`` input
        elements and, on the CPU, 4 batches (a layer's activations outweigh its input many times);
        on a GPU as many as half its free memory holds at the widest layer, counting 6 live float32
        activations of that width per copy, and at most 2**30 elements per activation (kernels
        index with 32-bit integers below 2**31) and 64 copies."""
        if loop:
            return 1
        per = max(1, x.numel())
        if x.device.type == "cuda":
            widest = max(getattr(self._prefix, "width", 0), x[0].numel(), 1)
            free = torch.cuda.mem_get_info(x.device)[0]
            per_copy = x.shape[0] * widest
            cap = int(min(64, 2**30 // per_copy, free // (2 * 6 * 4 * per_copy)))
            if self.max_elements is not None:
                cap = min(cap, self.max_elements // per)
            return max(1, min(n, cap))
        limit = 2**24 if self.max_elements is None else self.max_elements
        return max(1, min(n, limit // per, 4))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.dtype) if x.is_floating_point() else x).to(self.device)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            out = self.model(x)
        except (ModscopeError, torch.OutOfMemoryError):  # the latter: one line from device_errors
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
                    with self._autocast():
                        out = self._full(self._forward(self._input(x)))
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
        touched = self.lesioner.sites_of(lesions.any(0))
        acc = None
        with eval_mode(self.model, no_grad=True):
            for idx, x, y in self.split.batches(self.batch_size):
                x = self._input(x)
                plan = self._plan(x, touched)
                kept = None
                if plan:
                    with self._autocast():
                        kept = self._prefix.cache(plan, x)
                    self.reused += 1
                else:
                    self.full += 1
                chunk = self._copies(x, n, loop)
                for start in range(0, n, chunk):
                    rows = slice(start, min(n, start + chunk))
                    R = rows.stop - rows.start
                    replay = self._prefix.replay(plan, kept, R) if plan else contextlib.nullcontext()
                    with replay, self._autocast():
                        if loop:
                            with self.lesioner.one_lesion(lesions[start]):
                                out = self._forward(x)[None]
                        else:
                            with self.lesioner.lesioned(lesions[rows]):
                                copies = x.repeat(R, *([1] * (x.ndim - 1)))
                                out = self._forward(copies).reshape(R, x.shape[0], -1)
                    acc = acc or self._accumulator(n, out.shape[-1])
                    acc.add(idx, self._full(out), y, rows)
        return self._scores(acc)
