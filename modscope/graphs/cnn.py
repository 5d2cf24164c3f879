"""CNNs as channel graphs: filters as units ([spec §1][spec-1]).

A plain (sequential) Conv2d stack becomes a `WeightGraph` with one node per channel: the
input image's channels, every conv layer's output channels, then every Linear layer's units.
The matrices of that graph are derived from the kernels:

- **conv**: kernel ``K`` ``(out_ch, in_ch, kh, kw)`` gives the ``(out_ch, in_ch)`` matrix
  ``N[b, a] = norm(|K[b, a, :, :]|)``. ``norm="1"`` (default, as the reference) is numpy's
  matrix 1-norm of the ``kh x kw`` slice, the largest absolute column sum
  (``np.linalg.norm(K[b, a], 1)``); ``"l1"`` sums all ``|K[b, a]|``, ``"l2"`` / ``"fro"`` is the
  Frobenius norm, ``"max"`` the largest ``|K[b, a, i, j]|``. Grouped / depthwise convs give a
  block-diagonal matrix (no edge between channels of different groups).
- **BatchNorm folded in**: a BatchNorm after a conv (or Linear) multiplies output channel
  ``b`` by ``gamma_b / sqrt(var_b + eps)``; every norm is absolutely homogeneous, so the
  folded edge weight is ``N[b, a] * |gamma_b| / sqrt(var_b + eps)`` (the BN shift and the
  biases are not edges). State dicts do not store ``eps``: ``bn_eps`` (default 1e-5,
  torch's default) is used.
- **conv -> linear**: a Linear after a flatten has ``in_features = C * H * W``. The edge channel
  ``c`` -> unit ``u`` is the same norm over the columns that hold channel ``c``, seen as an
  ``H x W`` map (``H, W`` from ``spatial`` or from a forward pass with ``input_shape`` for
  modules; never guessed from the count: only the 1-norm needs them). Which columns those are depends on the
  model's code ([spec §1b][spec-1b]): ``flatten="channel_major"`` (torch's ``x.flatten(1)``: columns
  ``c*H*W ... (c+1)*H*W - 1``) or ``"channel_last"`` (a permute to ``(H, W, C)`` first, Keras:
  columns ``c, c + C, c + 2C, ...``). A state dict does not say which: without ``flatten`` such
  a head is refused. A module built of ``nn.Flatten`` is channel-major. After global pooling
  (``in_features == C``) there is no order to know: the edge is ``|W[u, c]|``.
- **linear -> linear**: ``|W|`` as for an MLP (every norm of a 1 x 1 slice is ``|w|``).

Shuffles: the `layer` shuffle of a derived matrix permutes its entries, i.e. it permutes
whole kernels (and so their norms) across (out, in) positions, the reference's CNN shuffle:
``norm(permuted kernels) == permuted norms`` exactly (tested). `layer_nonzero` keeps the
pattern of zero kernels (pruned filters, grouped convs).

Residual / branching networks (ResNets) do not form a chain and are refused; trace them
(`modscope.graphs.tracing`) or read them as a known family.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import ModscopeError
from ..runtime.modules import eval_mode
from .arrays import as_float64
from .files import formats
from .names import EMBEDDING, natural_key
from .norms import KERNEL_NORMS, KernelNorm, block_diagonal, check_norm, kernel_norms
from .weight_graph import WeightGraph

__all__ = [
    "FLATTEN_ORDERS",
    "KERNEL_NORMS",
    "FlattenOrder",
    "KernelNorm",
    "channel_weights",
    "conv_graph",
    "holds_conv",
    "kernel_norms",
    "module_channel_weights",
]

FlattenOrder = Literal["channel_major", "channel_last"]
FLATTEN_ORDERS = ("channel_major", "channel_last")


# -- the layer stack -------------------------------------------------------------------------
@dataclass
class _Conv:
    name: str
    kernel: np.ndarray  # (out, in / groups, kh, kw)
    groups: int | None  # None: infer from the channels that come in


@dataclass
class _Linear:
    name: str
    weight: np.ndarray  # (out, in)
    spatial: tuple[int, int] | None = None  # (H, W) of the flattened map, when known


@dataclass
class _BatchNorm:
    name: str
    gamma: np.ndarray
    var: np.ndarray
    eps: float


def _conv_matrix(item: _Conv, channels: int | None, norm: KernelNorm) -> np.ndarray:
    """The ``(out, in)`` channel matrix of a conv reading ``channels`` channels (None: the input)."""
    k = item.kernel
    ipg = k.shape[1]
    groups = item.groups
    if groups is None:
        # channels a multiple of the kernel's inputs: a grouped conv; else a mismatch below
        groups = channels // ipg if channels is not None and channels % ipg == 0 else 1
    if channels is not None and ipg * groups != channels:
        raise ModscopeError(
            f"{item.name}: kernel {tuple(k.shape)} takes {ipg * groups} channels but the "
            f"layer before gives {channels} (residual or branching networks are not supported)"
        )
    if k.shape[0] % groups:
        raise ModscopeError(f"{item.name}: {k.shape[0]} output channels do not split into {groups} groups")
    return block_diagonal(kernel_norms(k, norm), groups)


def _flattened_linear(
    item: _Linear, channels: int, norm: KernelNorm, spatial: tuple[int, int] | None,
    flatten: FlattenOrder | None,
) -> np.ndarray:
    """The ``(out, channels)`` matrix of a Linear reading a flattened ``channels``-channel map:
    the norm over each channel's columns, in the ``flatten`` order."""
    w = item.weight
    n_out, n_in = w.shape
    if n_in % channels:
        raise ModscopeError(
            f"{item.name}: Linear takes {n_in} inputs, not a multiple of the {channels} channels before it"
        )
    hw = n_in // channels
    if flatten is None and hw > 1:
        raise ModscopeError(
            f"{item.name}: the Linear reads a flattened {channels}-channel map of {hw} positions, "
            "and a state dict does not say in which order: pass flatten='channel_major' "
            "(x.flatten(1)) or 'channel_last' (a permute first, as Keras), or the module"
        )
    shape = item.spatial or spatial
    if shape is None and norm != "1":
        shape = (hw, 1)  # sums, Frobenius and max norms do not depend on the map's shape
    if shape is None:
        raise ModscopeError(
            f"{item.name}: the 1-norm of a channel's flattened map depends on its height and "
            f"width ({hw} positions), which the weights do not hold: pass spatial=(H, W) "
            "(--map-shape H,W), the module with an example input, or a norm that does not "
            "(l1, l2, max)"
        )
    if shape[0] * shape[1] != hw:
        raise ModscopeError(f"{item.name}: a {shape[0]} x {shape[1]} map is not the {hw} positions it reads")
    slices = (
        w.reshape(n_out, shape[0], shape[1], channels).transpose(0, 3, 1, 2)  # columns (h, w, c)
        if flatten == "channel_last"
        else w.reshape(n_out, channels, shape[0], shape[1])  # columns (c, h, w)
    )
    return kernel_norms(slices, norm)


def _derive(
    stack: Sequence[_Conv | _Linear | _BatchNorm], norm: KernelNorm, fold_batchnorm: bool,
    spatial: tuple[int, int] | None, flatten: FlattenOrder | None = None, need_conv: bool = True,
) -> list[tuple[str, np.ndarray]]:
    """The channel-graph matrices ``[(name, (n_out, n_in))]`` of a forward-ordered stack
    (``need_conv=False``: a Linear stack with BatchNorm layers is accepted too)."""
    if flatten is not None and flatten not in FLATTEN_ORDERS:
        raise ModscopeError(f"unknown flatten order {flatten!r}; choose from {', '.join(FLATTEN_ORDERS)}")
    check_norm(norm)
    if need_conv and not any(isinstance(s, _Conv) for s in stack):
        raise ModscopeError("no Conv2d kernels (4-D weights) found: not a CNN")
    out: list[tuple[str, np.ndarray]] = []
    channels: int | None = None  # width of the last node layer
    after_conv = False  # the last layer was a conv: a Linear next sees a flattened map
    for item in stack:
        if isinstance(item, _BatchNorm):
            if not fold_batchnorm:
                continue
            if not out or out[-1][1].shape[0] != item.gamma.size:
                raise ModscopeError(
                    f"{item.name}: a BatchNorm of {item.gamma.size} channels must follow a conv or "
                    "Linear layer with as many outputs to be folded in (fold_batchnorm=False ignores it)"
                )
            scale = np.abs(item.gamma) / np.sqrt(item.var + item.eps)
            out[-1] = (out[-1][0], out[-1][1] * scale[:, None])
        elif isinstance(item, _Conv):
            out.append((item.name, _conv_matrix(item, channels, norm)))
            channels, after_conv = item.kernel.shape[0], True
        else:
            n_out, n_in = item.weight.shape
            if channels is not None and after_conv and n_in != channels:
                out.append((item.name, _flattened_linear(item, channels, norm, spatial, flatten)))
            elif channels is not None and n_in != channels:
                raise ModscopeError(
                    f"{item.name}: Linear takes {n_in} inputs but the layer before gives {channels}"
                )
            else:
                out.append((item.name, np.abs(item.weight)))
            channels, after_conv = n_out, False
    return out


# -- state dicts -------------------------------------------------------------------------------
def holds_conv(tensors: Mapping[str, Any]) -> bool:
    """Whether a state dict has a 4-D ``*weight`` tensor (a Conv2d kernel)."""
    return any(k.endswith("weight") and np.ndim(v) == 4 for k, v in tensors.items())


def _stack_from_state_dict(tensors: Mapping[str, Any], bn_eps: float, prefixes: Sequence[str]) -> list:
    """Modules in ``prefixes`` order: conv (4-D weight), BatchNorm (running_var), Linear (2-D weight)."""
    stack: list = []
    for p in prefixes:
        dot = f"{p}." if p else ""
        weight = tensors.get(f"{dot}weight")
        if f"{dot}running_var" in tensors:
            var = as_float64(f"{dot}running_var", tensors[f"{dot}running_var"])
            gamma = as_float64(f"{dot}weight", weight) if weight is not None else np.ones_like(var)
            stack.append(_BatchNorm(p, gamma, var, bn_eps))
        elif weight is None or EMBEDDING.search(f"{dot}weight"):
            continue
        elif weight.ndim == 4:
            stack.append(_Conv(f"{dot}weight", as_float64(f"{dot}weight", weight), None))
        elif weight.ndim == 2:
            stack.append(_Linear(f"{dot}weight", as_float64(f"{dot}weight", weight)))
    return stack


def channel_weights(
    tensors: Mapping[str, Any], norm: KernelNorm = "1", fold_batchnorm: bool = True,
    spatial: tuple[int, int] | None = None, bn_eps: float = 1e-5, flatten: FlattenOrder | None = None,
    need_conv: bool = True,
) -> list[tuple[str, np.ndarray]]:
    """The channel-graph matrices ``[(name, (n_out, n_in))]`` of a CNN state dict (or, with
    ``need_conv=False``, of a Linear stack with BatchNorm layers to fold in).

    A prefix with ``running_var`` is a BatchNorm, a 4-D ``weight`` a conv, a 2-D ``weight`` a
    Linear. Modules are taken in stored (registration) order, or, if that does not chain (a
    ``.safetensors`` file stores its keys in its own order), in natural key order
    (``features.2`` before ``features.10``).
    """
    def derive(prefixes: Sequence[str]) -> list[tuple[str, np.ndarray]]:
        stack = _stack_from_state_dict(tensors, bn_eps, prefixes)
        return _derive(stack, norm, fold_batchnorm, spatial, flatten, need_conv)

    stored = list(dict.fromkeys(key.rpartition(".")[0] for key in tensors))  # module prefixes (features.0)
    try:
        return derive(stored)
    except ModscopeError:
        by_key = sorted(stored, key=natural_key)
        if by_key == stored:
            raise
        with contextlib.suppress(ModscopeError):  # else the stored order's refusal
            return derive(by_key)
        raise


# -- modules -----------------------------------------------------------------------------------
def _flatten_shapes(model: Any, input_shape: Sequence[int]) -> dict[Any, tuple[int, int]]:
    """``{linear: (H, W)}`` of the last 4-D activation before each Linear, from one forward pass."""
    import torch
    from torch import nn

    last: list[tuple[int, int] | None] = [None]
    found: dict[nn.Module, tuple[int, int]] = {}

    def record(_m, _inp, output):
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            last[0] = (int(output.shape[2]), int(output.shape[3]))

    def before_linear(m, _inp):
        if last[0] is not None and m not in found:
            found[m] = last[0]

    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    with contextlib.ExitStack() as hooks:  # each hook's handle removes it on the way out
        for m in model.modules():
            if isinstance(m, nn.Linear):
                hooks.enter_context(m.register_forward_pre_hook(before_linear))
            elif not list(m.children()):
                hooks.enter_context(m.register_forward_hook(record))
        try:
            with eval_mode(model, no_grad=True):
                model(torch.zeros((1, *input_shape), dtype=dtype))
        except Exception as exc:  # the user's module: report its failure in one line
            raise ModscopeError(
                f"a forward pass with input_shape {tuple(input_shape)} failed: {exc}"
            ) from None
    return found


def _stack_from_module(model: Any, input_shape: Sequence[int] | None) -> list:
    from torch import nn

    shapes = _flatten_shapes(model, input_shape) if input_shape is not None else {}
    stack: list = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            stack.append(_Conv(f"{name}.weight", as_float64(name, m.weight), int(m.groups)))
        elif isinstance(m, nn.Linear):
            stack.append(_Linear(f"{name}.weight", as_float64(name, m.weight), shapes.get(m)))
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            if m.running_var is None:
                raise ModscopeError(f"{name}: BatchNorm without running statistics cannot be folded in")
            var = as_float64(name, m.running_var)
            gamma = as_float64(name, m.weight) if m.weight is not None else np.ones_like(var)
            stack.append(_BatchNorm(name, gamma, var, float(m.eps)))
    return stack


def module_channel_weights(
    model: Any, norm: KernelNorm = "1", fold_batchnorm: bool = True, input_shape: Sequence[int] | None = None,
    spatial: tuple[int, int] | None = None,
) -> list[tuple[str, np.ndarray]]:
    """The channel-graph matrices of an ``nn.Sequential`` CNN (Conv2d / BatchNorm / Linear, in
    order; its ``nn.Flatten`` is channel-major). ``input_shape`` ``(C, H, W)`` runs one forward
    pass to find the spatial size of the map a Linear flattens; BatchNorm ``eps`` comes from the
    module. A module with a forward of its own is refused: its order is in its code, so trace it
    (``load_graph(module, example_input=...)``)."""
    from torch import nn

    if not isinstance(model, nn.Sequential):
        raise ModscopeError(
            f"{type(model).__name__} defines its own forward, so its layers' order is in its code: "
            "pass example_input=... to load_graph to trace it"
        )
    return _derive(_stack_from_module(model, input_shape), norm, fold_batchnorm, spatial, "channel_major")


def conv_graph(
    source: str | os.PathLike | Mapping | Any, norm: KernelNorm = "1", fold_batchnorm: bool = True,
    input_shape: Sequence[int] | None = None, spatial: tuple[int, int] | None = None, bn_eps: float = 1e-5,
    flatten: FlattenOrder | None = None,
) -> WeightGraph:
    """The channel `WeightGraph` of a CNN: an ``nn.Sequential``, a state dict, or a file
    (``.pt``/``.pth``/``.bin`` read with ``weights_only=True``, ``.safetensors``, ``.npz``).

    Nodes: input channels, each conv's output channels, each Linear's units, in forward order.
    """
    if hasattr(source, "named_modules"):  # an nn.Module
        items = module_channel_weights(source, norm, fold_batchnorm, input_shape, spatial)
    else:
        if isinstance(source, Mapping):
            tensors = formats.unwrap_state_dict(source, "state dict")
        elif isinstance(source, str | os.PathLike):
            tensors = formats.read_state_dict(source)
        else:
            raise ModscopeError(f"cannot load a CNN from a {type(source).__name__}")
        items = channel_weights(tensors, norm, fold_batchnorm, spatial, bn_eps, flatten)
    return WeightGraph.from_weights([w for _, w in items], [n for n, _ in items])
