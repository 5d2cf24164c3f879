"""The frozen network as a pure function of K sets of effective weights (``torch.func``).

The maskable weights (see `maskable_names`: the weights of Linear, convolution, recurrent and
attention layers and of custom layers such as GPT-2's ``Conv1D``; biases optionally) are flattened
into one vector; `FrozenNet` runs the user's module on K weight vectors at once
(``torch.func.vmap`` over ``torch.func.functional_call``), so the module itself is never
modified and no gradient or state reaches it.

``vmap`` has no batching rule for the fused recurrent ops (``aten::lstm``, ``aten::gru``,
``aten::lstm_cell``, ...), so a module with recurrent layers runs its K weight sets one after the
other (`FrozenNet.loop`): the same ``functional_call`` per weight set, each the arithmetic of a
single-mask run. Convolutions on the CPU run that way too: ``vmap`` turns K kernels into one
grouped convolution, which the CPU kernels run slower than K plain ones (measured by
``benchmarks/masks_any.py``; its receipt is ``benchmarks/results/masks_any.json``).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from ..errors import ModscopeError
from ..runtime.modules import eval_mode

__all__ = [
    "CONVOLUTIONS",
    "MASKABLE",
    "NOT_LAYERS",
    "RECURRENT",
    "FrozenNet",
    "loops",
    "maskable_names",
    "no_fastpath",
    "recurrent",
]

CONVOLUTIONS: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
)
# layers whose ``weight`` (and ``bias``) are masked
MASKABLE: tuple[type[nn.Module], ...] = (nn.Linear, nn.Bilinear, *CONVOLUTIONS)
# layers whose ``weight_*`` (and ``bias_*``) parameters are masked: LSTM / GRU / RNN and their cells
RECURRENT: tuple[type[nn.Module], ...] = (nn.RNNBase, nn.RNNCellBase)
# modules whose 2-D+ ``weight`` is a table or a gain, not a layer's weights: never masked
NOT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Embedding, nn.EmbeddingBag, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d,
    nn.InstanceNorm3d, nn.PReLU, *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
_ATTENTION_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


def _own(mod: nn.Module, mask_bias: bool) -> list[str]:
    """The maskable parameters of ``mod`` itself (not of its children), in registration order."""
    own = dict(mod.named_parameters(recurse=False))
    if isinstance(mod, RECURRENT):  # weight_ih_l0, weight_hh_l0, weight_hr_l0, ..._reverse; cells' too
        return [n for n in own if n.startswith("weight_") or (mask_bias and n.startswith("bias_"))]
    if isinstance(mod, nn.MultiheadAttention):  # out_proj is a Linear child
        keep = [*_ATTENTION_WEIGHTS, *(["in_proj_bias"] if mask_bias else [])]
    elif isinstance(mod, NOT_LAYERS):
        return []
    # a layer's weight; in a custom layer (GPT-2's Conv1D) a 2-D+ parameter called weight
    elif isinstance(mod, MASKABLE) or getattr(own.get("weight"), "ndim", 0) >= 2:
        keep = ["weight"] + (["bias"] if mask_bias else [])
    else:
        return []
    return [n for n in own if n in keep and own[n] is not None]


def maskable_names(model: nn.Module, mask_bias: bool = False) -> list[str]:
    """Parameter names of the weights that masks act on, in module registration order (the
    forward order of a modscope MLP); with ``mask_bias`` each layer's biases follow its weights.

    Masked: the ``weight`` of ``nn.Linear``, ``nn.Bilinear`` and every convolution (1-, 2-, 3-D
    and transposed); ``weight_ih_*`` / ``weight_hh_*`` (and ``weight_hr_*``) of ``nn.LSTM`` /
    ``GRU`` / ``RNN`` and their cells; ``nn.MultiheadAttention``'s ``in_proj_weight`` (or its
    separate q / k / v weights) and ``out_proj``; any other module's own 2-D+ parameter called
    ``weight`` (a custom layer, e.g. GPT-2's ``Conv1D``). Not masked: embeddings and
    normalisation gains. A parameter shared by several modules (tied weights) is masked under its
    first name only, and not at all when that module is not a layer (an embedding).
    """
    known = {n for n, _ in model.named_parameters()}  # a tied parameter: only its first name
    names = []
    for mname, mod in model.named_modules():
        prefix = f"{mname}." if mname else ""
        names += [prefix + n for n in _own(mod, mask_bias) if prefix + n in known]
    if not names:
        raise ModscopeError(
            f"{type(model).__name__} has no layer weights to mask (Linear, convolution, recurrent, "
            "attention, or a module's own 2-D weight)"
        )
    return names


def recurrent(model: nn.Module) -> bool:
    """Whether ``model`` holds a recurrent layer (`RECURRENT`), whose fused op ``vmap`` cannot batch."""
    return any(isinstance(m, RECURRENT) for m in model.modules())


def loops(model: nn.Module, device: str | torch.device = "cpu") -> bool:
    """Whether K weight sets run one by one (see the module docstring): a recurrent layer anywhere,
    or a convolution on the CPU."""
    conv = torch.device(device).type == "cpu" and any(isinstance(m, CONVOLUTIONS) for m in model.modules())
    return conv or recurrent(model)


@contextlib.contextmanager
def no_fastpath() -> Iterator[None]:
    """torch's fused attention fast path off inside (``torch.backends.mha``), restored after.

    ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` switch to fused kernels in eval
    mode when no parameter *appears* to need a gradient; under ``vmap`` the effective weights do
    not appear to, and the fused encoder op has no derivative. Masks must run the plain path.
    Set once around a whole run (the flag is process-wide; threads share it).
    """
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


class FrozenNet:
    """``model`` as a function of flat effective weights, batched over K weight sets.

    The maskable weights are flattened and concatenated into ``w`` of shape ``(P,)``;
    ``forward(eff, x)`` takes ``eff`` of shape ``(K, P)`` and ``x`` of shape ``(K, B, ...)``
    (or ``(B, ...)`` shared by all K with ``shared_input=True``) and returns ``(K, B, out)``.
    Everything else (biases, embeddings, buffers) is passed detached, so no gradient or
    state ever reaches ``model``. ``output``: which of several outputs to use (an index, or a
    function of the forward's result; `modscope.lesions.evaluator.model_output`). ``loop``: run
    the K weight sets one by one (default `loops`: recurrent layers, or convolutions on the CPU);
    ``False`` on a recurrent model is refused (``vmap`` cannot batch it).
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        device: str | torch.device = "cpu",
        output: int | Callable[[Any], Any] | None = None,
        loop: bool | None = None,
    ):
        params = dict(model.named_parameters())
        missing = [n for n in names if n not in params]
        if missing:
            raise ModscopeError(f"{type(model).__name__} has no parameter {missing[0]!r} to mask")
        self.model = model
        self.names = list(names)
        self.output = output
        if loop is False and recurrent(model):
            raise ModscopeError("a recurrent layer's K masks cannot be batched by vmap: use the loop")
        self.loop = loops(model, device) if loop is None else bool(loop)
        self._probed = loop is not None  # auto: the first batched call checks vmap's coverage
        self.shapes = [tuple(params[n].shape) for n in self.names]
        self.offsets = np.cumsum([0] + [params[n].numel() for n in self.names])
        # layer i's weights in the flat (P,) order
        self.spans = [slice(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]
        self.device = torch.device(device)
        self.w = torch.cat([params[n].detach().reshape(-1) for n in self.names]).to(self.device)
        self.fixed = {
            k: v.detach().to(self.device)
            for k, v in {**params, **dict(model.named_buffers())}.items() if k not in self.names
        }

    @property
    def n_weights(self) -> int:
        return int(self.offsets[-1])

    def split(self, eff: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer views ``(K, *shape)`` of effective weights ``eff`` ``(K, P)``."""
        K = eff.shape[0]
        return [eff[:, sl].view(K, *shape) for sl, shape in zip(self.spans, self.shapes, strict=True)]

    def _call(self, ws: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.model, {**self.fixed, **dict(zip(self.names, ws, strict=True))}, (x,))
        if self.output is not None or not isinstance(out, torch.Tensor):
            from ..lesions.evaluator import model_output

            out = model_output(out, self.output)
        return out

    def copy(self) -> FrozenNet:
        """The same frozen network over its own copy of the model: `functional_call` swaps a
        module's parameters while it runs, so concurrent threads each need their own."""
        return FrozenNet(copy.deepcopy(self.model), self.names, self.device, self.output, self.loop)

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
        larger run split over threads. With `loop`, every weight set is a plain call.
        """
        ws = self.split(eff) if isinstance(eff, torch.Tensor) else list(eff)
        with eval_mode(self.model), no_fastpath():
            if self.loop:  # one plain call per weight set: vmap cannot batch recurrent ops
                return torch.stack([
                    self._call([w[k] for w in ws], x if shared_input else x[k]) for k in range(ws[0].shape[0])
                ])
            if ws[0].shape[0] == 1 and not batched:  # a plain call, no vmap batching overhead
                # view, not select: its backward is a view too, not a zero-filled copy
                return self._call([w.view(w.shape[1:]) for w in ws], x if shared_input else x[0])[None]
            if self._probed:
                return vmap(self._call, in_dims=(0, None if shared_input else 0))(ws, x)
            # the first batched call: an op vmap has no rule for (scaled_dot_product_attention on the
            # CPU) runs through torch's slow per-sample fallback; then every call loops instead
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = vmap(self._call, in_dims=(0, None if shared_input else 0))(ws, x)
            self._probed = True
            if any("batching rule" in str(w.message) for w in caught):
                self.loop = True
                return self.forward(eff, x, shared_input, batched)
            return out

    __call__ = forward
