"""Padding for the torch modules that run other frameworks' graphs (ONNX, Keras): TensorFlow's
"same" padding, and uneven padding written as concatenated constant blocks, which the tracer
reads (they hold no unit) where torch's ``padding`` argument is even only; and the torch
recurrent layer both build from a file's weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ModscopeError

__all__ = ["average_pool", "pad_by_concat", "recurrent_module", "same_pads"]


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1, upper: bool = True) -> tuple[int, int]:
    """``(begin, end)`` padding of one axis of ``size`` elements so that the output has
    ``ceil(size / stride)`` positions (TensorFlow's and ONNX's SAME_UPPER; ``upper=False``: the
    extra element goes first, ONNX's SAME_LOWER)."""
    total = max((-(-size // stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def pad_by_concat(
    x: Any, pads: Sequence[tuple[int, int]], value: float, first_axis: int = 2
) -> tuple[Any, list[int]]:
    """``x`` with the uneven part of ``pads`` (one ``(begin, end)`` per axis from ``first_axis``)
    concatenated as blocks of ``value``; returns it and the even padding left to the op."""
    import torch

    even = [min(b, e) for b, e in pads]
    for axis, ((b, e), m) in enumerate(zip(pads, even, strict=True), start=first_axis):
        for extra, before in ((b - m, True), (e - m, False)):
            if extra > 0:
                shape = list(x.shape)
                shape[axis] = extra
                block = torch.full(shape, value, dtype=x.dtype)
                x = torch.cat([block, x] if before else [x, block], axis)
    return x, even


def average_pool(
    x: Any, pads: Sequence[tuple[int, int]], fn: Any, kernel: list, strides: list, ceil: bool, count_pad: bool
) -> Any:
    """``fn`` (torch's ``avg_poolNd``) over ``x`` padded by ``pads`` (one ``(begin, end)`` per spatial
    axis); ``count_pad=False``: each window's mean over ``x``'s own elements only (TensorFlow's
    "same", ONNX's ``count_include_pad=0``). The uneven part of the padding is concatenated zeros,
    which torch would count: there the windows' sums are divided by their counts of ``x``'s elements."""
    import torch

    padded, even = pad_by_concat(x, pads, 0.0)
    if count_pad or all(b == e for b, e in pads):
        return fn(padded, kernel, strides, even, ceil, count_pad)
    ones = pad_by_concat(torch.ones(1, 1, *x.shape[2:], dtype=x.dtype), pads, 0.0)[0]
    return fn(padded, kernel, strides, even, ceil, True) / fn(ones, kernel, strides, even, ceil, True)


def recurrent_module(
    kind: str, hidden: int, parts: Sequence[Sequence[Any]], batch_first: bool, order: Sequence[int] = (0,)
) -> Any:
    """A one-layer ``torch.nn`` ``LSTM`` / ``GRU`` / ``RNN`` (``kind``) of ``hidden`` units, in eval
    mode, holding ``parts``: per direction (forward, then reverse) the arrays ``(weight_ih, weight_hh,
    bias_ih, bias_hh)`` in torch's layout (``weight_ih``: ``(gates * hidden, inputs)``), their gate
    blocks of rows put in torch's order: ``order[j]`` is the block torch's ``j``-th gate is (a file's
    GRU z, r, h -> torch's r, z, n: ``[1, 0, 2]``; the default keeps the arrays as they are)."""
    import torch

    def torch_order(array: np.ndarray) -> np.ndarray:
        blocks = np.split(array, len(order), axis=0)
        return np.concatenate([blocks[k] for k in order], axis=0)

    parts = [[torch_order(a) for a in arrays] for arrays in parts]
    if np.ndim(parts[0][0]) != 2:
        raise ModscopeError(f"a {kind} layer's input weights are {np.ndim(parts[0][0])}-D, not 2-D")
    cls = getattr(torch.nn, kind)
    module = cls(parts[0][0].shape[1], hidden, batch_first=batch_first, bidirectional=len(parts) == 2)
    with torch.no_grad():
        for d, arrays in enumerate(parts):
            sfx = "_l0" + ("_reverse" if d else "")
            for name, value in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), arrays, strict=True):
                target = getattr(module, name + sfx)
                want, got = tuple(target.shape), tuple(np.shape(value))
                if got != want:  # the file's weights disagree with its config
                    raise ModscopeError(f"a {kind} layer of {hidden} units needs {name} of shape {want}; "
                                        f"the file holds {got}: its weights and its config disagree")
                target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return module.eval()
