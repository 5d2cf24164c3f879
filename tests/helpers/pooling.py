"""Pooling written from its definition in numpy: the oracle of the readers' pooling tests."""

from __future__ import annotations

import numpy as np

__all__ = ["average_pool"]


def average_pool(
    x: np.ndarray, kernel: int, stride: int, pads: tuple[tuple[int, int], ...], count_pad: bool
) -> np.ndarray:
    """Average pooling of ``x`` ``(batch, channels, *spatial)`` by square windows of ``kernel``
    moved by ``stride`` over ``x`` padded by ``pads`` (one ``(begin, end)`` per spatial axis) with
    zeros, each window's sum divided by its size (``count_pad``) or by how many of its elements
    are ``x``'s own."""
    width = [(0, 0), (0, 0), *pads]
    padded = np.pad(x, width)
    own = np.pad(np.ones(x.shape[2:]), pads)
    steps = [(n - kernel) // stride + 1 for n in padded.shape[2:]]
    out = np.zeros(x.shape[:2] + tuple(steps))
    for index in np.ndindex(*steps):
        window = tuple(slice(i * stride, i * stride + kernel) for i in index)
        total = padded[(..., *window)].sum(axis=tuple(range(2, x.ndim)))
        out[(..., *index)] = total / (kernel ** len(steps) if count_pad else own[window].sum())
    return out
