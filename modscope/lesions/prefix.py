"""The intact part of a forward pass, computed once per batch and replayed for every lesion.

A lesion changes nothing before the first module that reads a lesioned unit: every module call
that *finishes* before that reader starts sees the intact input, so its output is the intact
output. `PrefixReuse` runs the intact pass once per data batch up to that point, keeps the outputs
of the outermost such calls, and in each lesioned forward (``R`` lesions as ``R`` copies of the
batch) makes those calls return the kept output repeated ``R`` times instead of computing it: a
lesion of a late layer no longer pays for the early layers, for any module structure (residual
adds, shared modules, functional code between modules run as written).

A call is replayed only where a probe on a few examples showed it safe: one tensor output whose
axis 0 is the batch (twice the batch gives twice the rows, the same values in each half) and the
same sequence of module calls at both batch sizes. Anything else runs as written, and when nothing
can be replayed the reason is in `PrefixReuse.note`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["PrefixReuse", "repeated", "swapped_forward"]


class _Stop(Exception):
    """Ends the caching pass once every output to keep is kept (the rest of the forward is not
    needed)."""


@dataclass
class _Call:
    module: nn.Module
    index: int  # the module's index-th call within one forward
    enter: int
    exit: int = -1
    batch_first: bool = False
    width: int = 0  # output elements per example


def _record(model: nn.Module, x: torch.Tensor) -> tuple[list[_Call], dict[tuple[int, int], Any]]:
    """Every module call of ``model(x)`` in order, and each call's output (detached copies)."""
    calls: list[_Call] = []
    outputs: dict[tuple[int, int], Any] = {}
    counts: dict[int, int] = {}
    open_calls: dict[int, list[_Call]] = {}
    step = iter(range(1 << 62))

    def pre(module, _args):
        k = id(module)
        c = _Call(module, counts.get(k, 0), next(step))
        counts[k] = c.index + 1
        calls.append(c)
        open_calls.setdefault(k, []).append(c)

    def post(module, _args, out):
        c = open_calls[id(module)].pop()
        c.exit = next(step)
        outputs[(id(module), c.index)] = out.detach().clone() if isinstance(out, torch.Tensor) else None

    with ExitStack() as stack:
        for m in model.modules():  # each module once, shared ones too
            stack.enter_context(m.register_forward_pre_hook(pre))
            stack.enter_context(m.register_forward_hook(post))
        model(x)
    return calls, outputs


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    scale = float(a.abs().max()) if a.numel() else 0.0
    return bool(torch.allclose(a.double(), b.double(), rtol=1e-4, atol=1e-5 * max(scale, 1.0)))


class PrefixReuse:
    """Replays the intact prefix of ``model``'s forward for batched lesions (module docstring).

    ``probe``: a few examples of the model's input (batch axis 0) for the safety check. ``sites``:
    the modules that read each lesion site, in `modscope.graphs.tracing.Site` order.
    """

    def __init__(self, model: nn.Module, probe: torch.Tensor, sites: Sequence[nn.Module | None]) -> None:
        self.model = model
        self.sites = list(sites)
        self.note: str | None = None
        self.calls: list[_Call] = []
        calls, small = _record(model, probe)
        twice, big = _record(model, probe.repeat(2, *([1] * (probe.ndim - 1))))
        if [(id(c.module), c.index) for c in calls] != [(id(c.module), c.index) for c in twice]:
            self.note = "the model calls different modules at different batch sizes"
            return
        b = probe.shape[0]
        for c in calls:
            key = (id(c.module), c.index)
            one, two = small[key], big[key]
            if one is None or two is None or one.ndim == 0 or one.shape[0] != b:
                continue
            c.batch_first = _same(two[:b], one) and _same(two[b:], one)
            c.width = one[0].numel()
        self.calls = calls
        self.width = max([c.width for c in calls], default=0)  # widest output per example

    def plan(self, touched: Sequence[int]) -> list[_Call]:
        """The outermost calls that finish before the first reader of the ``touched`` sites starts
        and are safe to replay (in call order); empty when there are none."""
        readers = {id(self.sites[i]) for i in touched}
        # no reader called: -1, before every call (none is chosen)
        first = min((c.enter for c in self.calls if id(c.module) in readers), default=-1)
        chosen: list[_Call] = []
        for c in self.calls:  # in call order, so a call's ancestors come before it
            inside = any(p.enter < c.enter and c.exit < p.exit for p in chosen)
            if c.exit < first and c.batch_first and not inside:
                chosen.append(c)
        return chosen

    def cache(
        self, plan: Sequence[_Call], x: torch.Tensor, read: nn.Module | None = None
    ) -> tuple[dict[tuple[int, int], torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]:
        """The intact outputs of ``plan``'s calls on the batch ``x`` and, with ``read``, the intact
        ``(input, output)`` of that module's first call: the forward runs until the last of them is
        done, then stops."""
        wanted = {(id(c.module), c.index) for c in plan}
        kept: dict[tuple[int, int], torch.Tensor] = {}
        io: list[tuple[torch.Tensor, torch.Tensor]] = []
        counts: dict[int, int] = {}

        def done() -> None:
            if len(kept) == len(wanted) and (read is None or io):
                raise _Stop

        copies: dict[int, tuple[torch.Tensor, int, torch.Tensor]] = {}

        def copy(t: torch.Tensor) -> torch.Tensor:
            """A copy a later in-place op cannot change; one per tensor while it is unchanged (an
            ``nn.Identity`` hands its input on: one copy for both calls)."""
            hit = copies.get(id(t))
            if hit is not None and hit[0] is t and hit[1] == t._version:  # noqa: SLF001
                return hit[2]
            out = t.detach().clone()
            copies[id(t)] = (t, t._version, out)  # noqa: SLF001 (torch's counter)
            return out

        def post(module, args, out):
            if module is read and not io and args:
                io.append((copy(args[0]), copy(out)))
            k = id(module)
            key = (k, counts.get(k, 0))
            counts[k] = key[1] + 1
            if key in wanted:
                kept[key] = copy(out)
            done()

        modules = {id(c.module): c.module for c in plan}
        if read is not None:
            modules[id(read)] = read
        with ExitStack() as stack, suppress(_Stop):
            for m in modules.values():
                stack.enter_context(m.register_forward_hook(post))
            self.model(x)
        return kept, (io[0] if io else None)

    @contextmanager
    def replay(
        self,
        plan: Sequence[_Call],
        kept: dict[tuple[int, int], torch.Tensor],
        copies: int,
        memo: dict | None = None,
    ) -> Iterator[None]:
        """Inside, one forward of ``copies`` stacked copies of the batch: ``plan``'s calls return their
        kept outputs repeated ``copies`` times along axis 0 instead of computing them. ``memo``: a dict
        kept across the forwards of one batch, so each repeat is made once (`repeated`)."""
        modules = {id(c.module): c.module for c in plan}
        counts = dict.fromkeys(modules, 0)

        def swap(module: nn.Module, original: Any):
            k = id(module)

            def forward(*args, **kwargs):
                i = counts[k]
                counts[k] = i + 1
                out = kept.get((k, i))
                if out is None:
                    return original(*args, **kwargs)
                return repeated(out, copies, memo, (k, i))

            return forward

        with ExitStack() as stack:
            for module in modules.values():
                stack.enter_context(swapped_forward(module, swap(module, module.forward)))
            yield


def repeated(t: torch.Tensor, copies: int, memo: dict | None = None, key: Any = None) -> torch.Tensor:
    """``t`` repeated ``copies`` times along axis 0, made when an op first reads it (`_Repeat`): a
    replayed output that only a replayed call or a low-rank Linear receives (both ignore their
    input) is never copied. With ``memo``, a value made for ``key`` earlier is handed out again
    while nothing has written it in place (its version counter unchanged)."""
    if memo is not None:
        hit = memo.get((key, copies))
        if hit is not None and hit[0]._version == hit[1]:  # noqa: SLF001 (torch's counter)
            return hit[0]
    out = _Repeat(t, copies) if copies > 1 else t.clone()
    if memo is not None:
        memo[(key, copies)] = (out, out._version)  # noqa: SLF001
    return out


class _Repeat(torch.Tensor):
    """``base`` repeated ``copies`` times along axis 0, as a tensor that holds no data: every torch op
    that reads it gets the real repeat, made then (and kept for the next op)."""

    @staticmethod
    def __new__(cls, base: torch.Tensor, copies: int) -> _Repeat:
        shape = (base.shape[0] * copies, *base.shape[1:])
        out = torch.Tensor._make_wrapper_subclass(cls, shape, dtype=base.dtype, device=base.device)
        out.base_, out.copies, out.made = base, copies, None
        return out

    def real(self) -> torch.Tensor:
        if self.made is None:
            self.made = self.base_.repeat(self.copies, *([1] * (self.base_.ndim - 1)))
        return self.made

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        from torch.utils._pytree import tree_map

        def real(a: Any) -> Any:
            return a.real() if isinstance(a, _Repeat) else a

        return func(*tree_map(real, args), **tree_map(real, kwargs or {}))


@contextmanager
def swapped_forward(module: nn.Module, forward: Any) -> Iterator[None]:
    """``module`` runs ``forward`` instead of its own inside the block (its hooks still run); its own
    comes back on exit, also on error."""
    had = "forward" in module.__dict__
    original = module.forward
    module.forward = forward
    try:
        yield
    finally:
        if had:
            module.forward = original
        else:
            del module.forward
