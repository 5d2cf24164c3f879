"""Lesions of any unit set of a traced network ([spec §4][spec-4] on the unit graphs of [§1b][spec-1b]).

A unit is silenced where layers with weights read it (`modscope.graphs.tracing.Site`): at a
module's input by a forward pre-hook (the value set to 0, or to its mean over the data as that
reader sees it), or, for reads inside one module (an LSTM's recurrent weights, attention's output
projection), by running the module with a copy of that parameter whose columns for the unit are
zero. The model's own tensors are never written; hooks and swapped parameters are removed and
restored when the ``with`` block ends, also on error.

Many lesions run in one forward pass when every read they touch is a module input: the batch is
repeated once per lesion and each hook applies lesion ``r``'s mask to the ``r``-th copy. Lesions
that touch a parameter read run one forward each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ModscopeError

__all__ = ["Ablation", "UnitLesioner", "site_drops", "unit_means"]

Ablation = Literal["zero", "mean"]


class UnitLesioner:
    """Lesions of the units of ``traced`` (a `TracedNetwork` of ``model``).

    ``means``: per site, the ``(F,)`` mean input each reader sees (`unit_means`), for mean
    ablation. ``batch_axis``: the model input's batch axis.
    """

    def __init__(
        self, model: nn.Module, traced: Any, ablation: Ablation = "zero", means=None, batch_axis: int = 0
    ):
        if ablation not in ("zero", "mean"):
            raise ModscopeError(f"ablation must be 'zero' or 'mean', got {ablation!r}")
        if ablation == "mean" and means is None:
            raise ModscopeError("mean ablation needs the units' means (unit_means)")
        self.model, self.traced, self.ablation, self.means = model, traced, ablation, means
        self.batch_axis = int(batch_axis)

    def sites_of(self, nodes: np.ndarray) -> list[int]:
        """Indices of the sites that read any of ``nodes`` (a ``(n_nodes,)`` bool mask)."""
        out = []
        for i, s in enumerate(self.traced.sites):
            if nodes[s.nodes[s.nodes >= 0]].any():  # (features that are no unit: -1)
                if s.unhookable is not None:
                    raise ModscopeError(f"cannot lesion units read there: {s.unhookable}")
                if s.kind == "input" and s.arg == 1 and self.ablation == "mean":
                    raise ModscopeError(
                        f"mean ablation of units read as {s.module} ({s.module_type})'s initial state "
                        "is not supported: use zero ablation"
                    )
                if s.kind == "parameter" and self.ablation == "mean":
                    raise ModscopeError(
                        "mean ablation needs every read of the units to be a module's input; "
                        f"{s.module or 'the model'} ({s.module_type}) reads them inside its forward: "
                        "use zero ablation"
                    )
                out.append(i)
        return out

    @contextmanager
    def lesioned(self, lesions: np.ndarray, skip: Sequence[int] = ()) -> Iterator[int]:
        """Run the model with ``lesions`` ``(R, n_nodes)`` bool (``True`` = silenced) applied to
        the ``R`` copies of a repeated batch; yields ``R``. Only input sites are allowed here:
        see `one_lesion` for lesions that reach parameters. ``skip``: sites the caller lesions
        itself (the evaluator's low-rank Linear read)."""
        lesions = np.asarray(lesions, dtype=bool)
        with ExitStack() as stack:
            for i in (i for i in self.sites_of(lesions.any(0)) if i not in skip):
                site = self.traced.sites[i]
                if site.kind != "input":
                    raise ModscopeError("a parameter read cannot be batched: use one_lesion")
                stack.enter_context(self._input_hook(site, i, site_drops(site, lesions)))
            yield lesions.shape[0]

    @contextmanager
    def one_lesion(self, lesion: np.ndarray) -> Iterator[None]:
        """Run the model with one lesion ``(n_nodes,)`` bool: input sites by hooks, parameter sites
        by swapped copies of their parameters (zero ablation)."""
        lesion = np.asarray(lesion, dtype=bool)
        with ExitStack() as stack:
            for i in self.sites_of(lesion):
                site = self.traced.sites[i]
                drop = site_drops(site, lesion[None])
                if site.kind == "input":
                    stack.enter_context(self._input_hook(site, i, drop))
                else:
                    stack.enter_context(self._swap(site, drop[0]))
            yield

    def needs_loop(self, lesions: np.ndarray) -> bool:
        """Whether any of ``lesions`` reaches a parameter read (then one forward per lesion)."""
        return any(
            self.traced.sites[i].kind == "parameter" for i in self.sites_of(np.asarray(lesions).any(0))
        )

    # -- the two ways in -----------------------------------------------------------------------
    @contextmanager
    def _input_hook(self, site, index: int, drop: np.ndarray) -> Iterator[None]:
        module = self.model.get_submodule(site.module)  # "": the model itself
        R = drop.shape[0]
        mean = None if self.means is None else self.means[index]

        def change(x: torch.Tensor) -> torch.Tensor:
            if isinstance(x, tuple | list):  # an LSTM's (h0, c0): the units are silenced in both
                return type(x)(change(t) for t in x)
            axis = site.axis % x.ndim
            ba = site.batch_axis % x.ndim
            if x.shape[axis] != drop.shape[1]:
                raise ModscopeError(
                    f"{site.module or 'the model'} got {x.shape[axis]} features where the trace "
                    f"saw {drop.shape[1]}"
                )
            moved = x.movedim((ba, axis), (0, -1))  # (R * B, ..., F)
            if moved.shape[0] % R:
                raise ModscopeError("the batch does not split into the lesions' copies")
            view = moved.reshape(R, moved.shape[0] // R, *moved.shape[1:])
            d = torch.as_tensor(drop, device=x.device).reshape(R, 1, *([1] * (view.ndim - 3)), drop.shape[1])
            view = (
                view.masked_fill(d, 0.0) if self.ablation == "zero"
                else torch.where(d, torch.as_tensor(mean, device=x.device, dtype=x.dtype), view)
            )
            return view.reshape(moved.shape).movedim((0, -1), (ba, axis))

        def hook(_module, args, kwargs):
            args = list(args)
            if site.arg is not None:
                if len(args) > site.arg:
                    args[site.arg] = change(args[site.arg])
                elif site.arg == 1 and kwargs.get("hx") is not None:  # a recurrent layer's state
                    kwargs["hx"] = change(kwargs["hx"])
                else:  # passed by keyword: the first tensor keyword argument
                    key = next(k for k, v in kwargs.items() if isinstance(v, torch.Tensor))
                    kwargs[key] = change(kwargs[key])
                return tuple(args), kwargs
            done: dict[int, torch.Tensor] = {}  # the same tensor passed as query, key, value
            for j, a in enumerate(args):
                if isinstance(a, torch.Tensor) and a.ndim > 0 and a.shape[site.axis] == drop.shape[1]:
                    if id(a) not in done:
                        done[id(a)] = change(a)
                    args[j] = done[id(a)]
            return tuple(args), kwargs

        with module.register_forward_pre_hook(hook, with_kwargs=True):
            yield

    @contextmanager
    def _swap(self, site, drop: np.ndarray) -> Iterator[None]:
        owner = self.model.get_submodule(site.module)
        original = getattr(owner, site.parameter)
        keep = torch.ones(original.shape[site.axis], dtype=original.dtype, device=original.device)
        keep[torch.from_numpy(np.flatnonzero(drop))] = 0
        shape = [1] * original.ndim
        shape[site.axis] = -1
        changed = nn.Parameter(original.detach() * keep.reshape(shape), requires_grad=False)
        setattr(owner, site.parameter, changed)  # recurrent modules refresh their flat weights
        try:
            yield
        finally:
            setattr(owner, site.parameter, original)


def site_drops(site: Any, lesions: np.ndarray) -> np.ndarray:
    """``(R, F)`` bool: which of the ``F`` features ``site`` reads each of the ``(R, n_nodes)``
    lesions silences (a feature that is no unit never is)."""
    valid = site.nodes >= 0
    drop = np.zeros((lesions.shape[0], site.nodes.size), dtype=bool)
    drop[:, valid] = lesions[:, site.nodes[valid]]
    return drop


def unit_means(
    model: nn.Module, traced: Any, batches: Sequence[Any] | Any, device: Any = "cpu"
) -> list[np.ndarray | None]:
    """Per input site, the ``(F,)`` mean of each feature the reader receives, over every example,
    position and time step of ``batches`` (an iterable of input tensors), in one pass."""
    sums: list[Any] = [None] * len(traced.sites)
    counts = [0] * len(traced.sites)

    def make(i, site):
        def hook(_module, args, kwargs):
            x = (
                args[site.arg]
                if site.arg is not None and len(args) > site.arg
                else next(a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor))
            )
            flat = x.detach().double().movedim(site.axis % x.ndim, -1).reshape(-1, x.shape[site.axis])
            sums[i] = flat.sum(0) if sums[i] is None else sums[i] + flat.sum(0)
            counts[i] += flat.shape[0]

        return hook

    with ExitStack() as stack, torch.no_grad():
        for i, site in enumerate(traced.sites):
            if site.kind == "input" and site.unhookable is None and site.arg != 1:  # not a state (hx)
                module = model.get_submodule(site.module)
                stack.enter_context(module.register_forward_pre_hook(make(i, site), with_kwargs=True))
        for x in batches:
            model(x.to(device))
    return [None if s is None else (s / counts[i]).cpu().numpy() for i, s in enumerate(sums)]
