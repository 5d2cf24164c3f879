"""Scoring lesions of a traced network on its data, batch by batch: the one lesion path.

`UnitEvaluator` streams the data once per call (`modscope.data`), scores every lesion of the call
on every batch (batched in one forward where `UnitLesioner` allows, else one forward per lesion)
and sums the metric as it goes (`modscope.data.accumulate.Accumulator`), so memory holds one batch
and the lesions' copies of it, never the dataset. Two things make it fast:

- the intact part of each batch's forward, up to the first reader of a lesioned unit, runs once
  and is replayed for every lesion (`modscope.lesions.prefix`);
- where that first reader is an ``nn.Linear``'s input (every hidden layer of an MLP), its lesioned
  output is the intact one minus the silenced features' contribution, ``z - (h[:, R] - m[R]) @
  W[:, R].T`` (``m`` = 0, or the means of mean ablation): an ``(N, B, r) @ (N, r, out)`` batched
  product of the ``r`` silenced features instead of the full layer, for ``N`` lesions of equal size
  ``r`` under half the layer (the true lesion and its random ones are).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..data.accumulate import Accumulator
from ..data.functions import Function
from ..errors import ModscopeError, first_line
from ..runtime.modules import eval_mode
from .lesioner import UnitLesioner, site_drops
from .prefix import PrefixReuse, repeated, swapped_forward

__all__ = ["Scores", "Split", "UnitEvaluator", "model_output", "score_model"]

Split = Literal["train", "test"]
PRECISIONS = ("fp32", "bf16", "fp16")
# Elements of the widest input or output in one lesioned forward on the CPU: 20 copies of a
# 256-example batch of 784 inputs. Working sets of a few MB stay in the caches: the 784-256x4-10
# MLP's lesions took 15-25 % less CPU time at 16 to 40 copies than at 83 (2**24 elements).
CPU_FORWARD = 2**22
KEEP_BYTES = 2**29  # intact prefix outputs kept across calls, all plans together


@dataclass
class Scores:
    """Metrics of ``N`` lesioned networks: ``metric`` ``(N,)``; ``per_class`` ``(N, C)`` accuracy per
    true class (NaN for classes absent from the data; ``None`` unless the data is a one-group
    classifier); ``per_function`` ``(N, F)`` in the order of the evaluator's functions."""

    metric: np.ndarray
    per_class: np.ndarray | None
    per_function: np.ndarray


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


def _autocast(precision: str, device: torch.device) -> Any:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _run(model: nn.Module, x: torch.Tensor, output: Any) -> torch.Tensor:
    """The scored output of ``model(x)``; the user's model failing on the user's data is one line."""
    try:
        out = model(x)
    except (ModscopeError, torch.OutOfMemoryError):  # the latter: one line from device_errors
        raise
    except Exception as exc:
        raise ModscopeError(
            f"the model rejects the data ({type(exc).__name__}: {first_line(exc)}); inputs of shape "
            f"{tuple(x.shape)[1:]} per example"
        ) from None
    return model_output(out, output)


def _placed(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    param = next(model.parameters(), None)
    if param is None:
        return torch.float32, torch.device("cpu")
    return param.dtype, param.device


def score_model(
    model: nn.Module,
    data: Any,
    *,
    split: str = "test",
    functions: Sequence[Function] = (),
    batch_size: int = 256,
    output: int | Callable[[Any], Any] | None = None,
    precision: str = "fp32",
) -> Scores:
    """The intact ``model``'s scores (``N = 1``) on ``split`` of ``data`` (a `modscope.data.Data`),
    streamed in batches of ``batch_size``; floating inputs are cast to the model's dtype."""
    dtype, device = _placed(model)
    acc = None
    with eval_mode(model, no_grad=True):
        for idx, x, y in data.split(split).batches(batch_size):
            x = (x.to(dtype) if x.is_floating_point() else x).to(device)
            with _autocast(precision, device):
                out = _run(model, x, output)
            out = out if precision == "fp32" else out.float()
            acc = acc or Accumulator(data, out.shape[-1], 1, functions, split)
            acc.add(idx, out[None], y)
    return Scores(*acc.result())


def _kept_bytes(kept: dict) -> int:
    return sum(size for batches in kept.values() for _, size, _ in batches)


@dataclass
class _LowRank:
    """The first lesioned read of a call when it is an ``nn.Linear``'s input: ``removed`` ``(N, r)``
    the features each lesion silences there, ``mean`` ``(F,)`` their value under mean ablation."""

    site: int
    module: nn.Linear
    removed: torch.Tensor
    mean: torch.Tensor | None

    def forward(self, io: tuple[torch.Tensor, torch.Tensor], rows: slice) -> Callable[..., torch.Tensor]:
        """A forward for ``module`` that ignores its (intact, repeated) input and returns the lesions
        ``rows``' outputs stacked along axis 0, from the batch's intact input and output ``io``."""
        h, z = io  # (B, ..., F), (B, ..., out)
        idx = self.removed[rows]  # (R, r)

        def forward(*_args: Any, **_kwargs: Any) -> torch.Tensor:
            flat = h.reshape(-1, h.shape[-1])
            silenced = flat[:, idx].transpose(0, 1)  # (R, M, r)
            if self.mean is not None:
                silenced = silenced - self.mean.to(silenced.dtype)[idx][:, None, :]
            delta = torch.bmm(silenced, self.module.weight.t()[idx].to(silenced.dtype))  # (R, M, out)
            return (z.reshape(1, -1, z.shape[-1]) - delta).reshape(idx.shape[0] * h.shape[0], *z.shape[1:])

        return forward


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
    ``full`` count the (lesion set, batch) passes that did and did not reuse a prefix. ``low_rank``:
    a first lesioned read at an ``nn.Linear``'s input is computed from the silenced features only
    (module docstring; ``low_ranked`` counts those calls); ``False`` runs that layer whole, the
    plain oracle. ``precision``: ``"fp32"`` (default: the model's own dtype) or ``"bf16"`` /
    ``"fp16"``, the lesioned forwards under ``torch.autocast`` (the intact baseline too, so a
    lesion's damage compares like with like); opt-in, for GPUs, since rounding can move a metric
    near a tie.
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
        low_rank: bool = True,
        precision: str = "fp32",
    ) -> None:
        if precision not in PRECISIONS:
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
        self.dtype, self.device = _placed(model)
        self._intact: Scores | None = None
        self.reuse, self.low_rank, self.precision = bool(reuse), bool(low_rank), precision
        self._prefix: PrefixReuse | None = None
        self._why: str | None = None  # why the probe could not run, once it failed
        self.note: str | None = None
        self.reused = self.full = self.low_ranked = 0
        self._kept: dict = {}  # per plan, its intact outputs batch by batch; the latest plan last

    def _plan(self, x: torch.Tensor, touched: Sequence[int]) -> list:
        """The prefix calls to replay for lesions of the ``touched`` sites (empty: the whole forward)."""
        why = self._why
        if self.lesioner.batch_axis != 0:
            why = "the model's input is not batch-first"
        elif self._prefix is None and why is None:
            # each site's reading module ("": the model itself; a shared one under every name), None for
            # a read the tracer could not hook: no module to time it by
            named = dict(self.model.named_modules(remove_duplicate=False))
            sites = [named.get(s.module) for s in self.traced.sites]
            try:
                with _autocast(self.precision, self.device):
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

    def _low_rank_read(self, lesions: np.ndarray, touched: Sequence[int]) -> _LowRank | None:
        """The low-rank form of the call's first lesioned read (module docstring), or ``None`` where
        it does not apply: not an ``nn.Linear``'s plain input called once per forward, another
        lesioned read starting before it ends, or lesions of unequal size or over half its inputs."""
        prefix = self._prefix
        if not (self.low_rank and self.reuse and prefix is not None and prefix.note is None):
            return None
        readers = {i: [c for c in prefix.calls if c.module is prefix.sites[i]] for i in touched}
        first = min(touched, key=lambda i: min((c.enter for c in readers[i]), default=-1))
        site, calls = self.traced.sites[first], readers[first]
        module = prefix.sites[first]
        plain = site.kind == "input" and site.arg == 0 and site.axis == -1 and site.batch_axis == 0
        if not (plain and isinstance(module, nn.Linear) and len(calls) == 1):
            return None
        if any(c.enter < calls[0].exit for i in touched if i != first for c in readers[i]):
            return None
        drop = site_drops(site, lesions)
        r = int(drop[0].sum())
        if r == 0 or 2 * r >= drop.shape[1] or not (drop.sum(1) == r).all():
            return None
        removed = torch.from_numpy(np.argsort(~drop, axis=1, kind="stable")[:, :r]).to(self.device)
        means = self.lesioner.means
        mean = None if means is None else torch.as_tensor(means[first], device=self.device)
        return _LowRank(first, module, removed, mean)

    def _copies(self, x: torch.Tensor, n: int, loop: bool) -> int:
        """Lesions per forward: their copies of the batch hold at most ``max_elements`` input
        elements and, on the CPU, 4 batches or more where the widest layer allows (`CPU_FORWARD`
        elements of the widest input or output per forward: a layer's activations can outweigh its
        input many times, and a few MB per activation stay in the CPU's caches); on a GPU as many
        as half its free memory holds at the widest layer, counting 6 live float32 activations of
        that width per copy, and at most 2**30 elements per activation (kernels index with 32-bit
        integers below 2**31) and 64 copies."""
        if loop:
            return 1
        per = max(1, x.numel())
        widest = max(getattr(self._prefix, "width", 0), x[0].numel(), 1)
        if x.device.type == "cuda":
            free = torch.cuda.mem_get_info(x.device)[0]
            per_copy = x.shape[0] * widest
            cap = int(min(64, 2**30 // per_copy, free // (2 * 6 * 4 * per_copy)))
            if self.max_elements is not None:
                cap = min(cap, self.max_elements // per)
            return max(1, min(n, cap))
        limit = 2**24 if self.max_elements is None else self.max_elements
        return max(1, min(n, limit // per, max(4, CPU_FORWARD // (x.shape[0] * widest))))

    def intact(self) -> Scores:
        if self._intact is None:
            versions = [p._version for p in self.model.parameters()]  # noqa: SLF001 (torch's counter)
            self._intact = score_model(
                self.model, self.data, split=self.split_name, functions=self.functions,
                batch_size=self.batch_size, output=self.output, precision=self.precision,
            )
            if versions != [p._version for p in self.model.parameters()]:  # noqa: SLF001
                raise ModscopeError(
                    "the model changes its own weights in forward: lesions and their baselines would "
                    "not see the same network"
                )
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
        acc, low, first = None, None, True
        with eval_mode(self.model, no_grad=True):
            for b, (idx, x, y) in enumerate(self.split.batches(self.batch_size)):
                x = (x.to(self.dtype) if x.is_floating_point() else x).to(self.device)
                plan = self._plan(x, touched)
                if first and not loop:  # decided once per call, after the probe
                    low, first = self._low_rank_read(lesions, touched), False
                kept, io = None, None
                if plan or low is not None:
                    kept, io = self._intact_prefix(b, idx, x, plan, low)
                    if io is None:  # the Linear took its input by keyword: it runs whole
                        low = None
                self.reused += bool(plan)
                self.full += not plan
                self.low_ranked += low is not None
                chunk, memo = self._copies(x, n, loop), {}  # memo: this batch's repeats
                for start in range(0, n, chunk):
                    rows = slice(start, min(n, start + chunk))
                    out = self._lesioned(x, lesions, rows, loop, (plan, kept, memo), low, io)
                    acc = acc or Accumulator(self.data, out.shape[-1], n, self.functions, self.split_name)
                    # autocast outputs back in float32 for the metric; the model's own dtype otherwise
                    acc.add(idx, out if self.precision == "fp32" else out.float(), y, rows)
        return Scores(*acc.result())

    def _intact_prefix(self, b: int, idx: np.ndarray, x: torch.Tensor, plan: list, low: _LowRank | None):
        """Batch ``b``'s kept prefix outputs (and the low-rank read's intact input and output), kept
        across calls per plan while all plans' fit in ``KEEP_BYTES`` (the oldest plans go first): the
        sub-modules of one group share them, as 0.3.0's intact activations were computed once a run."""
        key = (tuple((id(c.module), c.index) for c in plan), None if low is None else id(low.module))
        batches = self._kept.pop(key, [])
        self._kept[key] = batches  # the latest plan last
        if b < len(batches) and np.array_equal(batches[b][0], idx):
            return batches[b][2]
        with _autocast(self.precision, self.device):
            found = self._prefix.cache(plan, x, read=None if low is None else low.module)
        kept, io = found
        tensors = {id(t): t for t in (*kept.values(), *(io or ()))}  # each tensor once
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        while len(self._kept) > 1 and _kept_bytes(self._kept) + size > KEEP_BYTES:
            del self._kept[next(iter(self._kept))]
        if b == len(batches) and _kept_bytes(self._kept) + size <= KEEP_BYTES:
            batches.append((np.asarray(idx).copy(), size, found))
        return found

    def _lesioned(self, x, lesions, rows, loop, prefix, low, io) -> torch.Tensor:
        """``(R, B, n_out)``: the outputs of lesions ``rows`` on the batch ``x``; ``prefix``: the calls
        to replay, their kept outputs and the batch's memo of repeats."""
        R = rows.stop - rows.start
        plan, kept, memo = prefix
        with contextlib.ExitStack() as stack:
            if plan:
                stack.enter_context(self._prefix.replay(plan, kept, R, memo))
            stack.enter_context(_autocast(self.precision, self.device))
            if loop:
                stack.enter_context(self.lesioner.one_lesion(lesions[rows.start]))
                return _run(self.model, x, self.output)[None]
            skip = () if low is None else (low.site,)
            stack.enter_context(self.lesioner.lesioned(lesions[rows], skip=skip))
            if low is not None:
                stack.enter_context(swapped_forward(low.module, low.forward(io, rows)))
            return _run(self.model, repeated(x, R, memo, "input"), self.output).reshape(R, x.shape[0], -1)
