"""The frozen network as a pure function of K sets of effective weights (``torch.func``).

The maskable weights (of ``nn.Linear`` / ``nn.Conv2d`` layers; biases optionally) are flattened
into one vector; `FrozenNet` runs the user's module on K weight vectors at once
(``torch.func.vmap`` over ``torch.func.functional_call``), so the module itself is never
modified and no gradient or state reaches it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from ..errors import ModscopeError
from ..runtime.modules import eval_mode

__all__ = ["MASKABLE", "FrozenNet", "maskable_names"]

MASKABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv2d)


def maskable_names(model: nn.Module, mask_bias: bool = False) -> list[str]:
    """Parameter names of the weights (and, with ``mask_bias``, biases) of Linear / Conv2d layers,
    in registration order (the forward order for :class:`~modscope.models.MLP`)."""
    names = []
    for mname, mod in model.named_modules():
        if isinstance(mod, MASKABLE):
            prefix = f"{mname}." if mname else ""
            names.append(prefix + "weight")
            if mask_bias and getattr(mod, "bias", None) is not None:
                names.append(prefix + "bias")
    if not names:
        raise ModscopeError("the model has no nn.Linear or nn.Conv2d layer to mask")
    return names


class FrozenNet:
    """``model`` as a function of flat effective weights, batched over K weight sets.

    The maskable weights are flattened and concatenated into ``w`` of shape ``(P,)``;
    ``forward(eff, x)`` takes ``eff`` of shape ``(K, P)`` and ``x`` of shape ``(K, B, ...)``
    (or ``(B, ...)`` shared by all K with ``shared_input=True``) and returns ``(K, B, out)``.
    Everything else (biases, embeddings, buffers) is passed detached, so no gradient or
    state ever reaches ``model``.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], device: str | torch.device = "cpu"):
        params = dict(model.named_parameters())
        self.model = model
        self.names = list(names)
        self.shapes = [tuple(params[n].shape) for n in self.names]
        self.sizes = [int(params[n].numel()) for n in self.names]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        # layer i's weights in the flat (P,) order
        self.spans = [slice(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]
        self.device = torch.device(device)
        self.w = torch.cat([params[n].detach().reshape(-1) for n in self.names]).to(self.device)
        fixed = {**params, **dict(model.named_buffers())}
        self.fixed = {k: v.detach().to(self.device) for k, v in fixed.items() if k not in self.names}

    @property
    def n_weights(self) -> int:
        return int(self.offsets[-1])

    def split(self, eff: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer views ``(K, *shape)`` of effective weights ``eff`` ``(K, P)``."""
        K = eff.shape[0]
        return [eff[:, sl].view(K, *shape) for sl, shape in zip(self.spans, self.shapes, strict=True)]

    def _call(self, ws: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, {**self.fixed, **dict(zip(self.names, ws, strict=True))}, (x,))

    def copy(self) -> FrozenNet:
        """The same frozen network over its own copy of the model: `functional_call` swaps a
        module's parameters while it runs, so concurrent threads each need their own."""
        return FrozenNet(copy.deepcopy(self.model), self.names, self.device)

    def forward(
        self,
        eff: torch.Tensor | Sequence[torch.Tensor],
        x: torch.Tensor,
        shared_input: bool = False,
        batched: bool = False,
    ) -> torch.Tensor:
        """``eff``: ``(K, P)``, or its per-layer ``(K, *shape)`` tensors as `split` gives them.

        ``K = 1`` runs as a plain call unless ``batched``: the batched (vmap) path rounds a
        little differently, and a group of one mask set must match it when it is part of a
        larger run split over threads.
        """
        ws = self.split(eff) if isinstance(eff, torch.Tensor) else list(eff)
        with eval_mode(self.model):
            if ws[0].shape[0] == 1 and not batched:  # a plain call, no vmap batching overhead
                # view, not select: its backward is a view too, not a zero-filled copy
                return self._call([w.view(w.shape[1:]) for w in ws], x if shared_input else x[0])[None]
            return vmap(self._call, in_dims=(0, None if shared_input else 0))(ws, x)

    __call__ = forward
