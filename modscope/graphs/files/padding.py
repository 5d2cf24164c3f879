"""Padding for the torch modules that run other frameworks' graphs (ONNX, Keras): TensorFlow's
"same" padding, and uneven padding written as concatenated constant blocks, which the tracer
reads (they hold no unit) where torch's ``padding`` argument is even only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["pad_by_concat", "same_pads"]


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
