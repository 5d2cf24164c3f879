"""Reductions and pooling: a unit survives a reduction over axes along which it is constant
(global pooling), and is lost over features (a LayerNorm's statistics)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .unit_table import UnitTensor, along

__all__ = ["ReductionOps"]


class ReductionOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    @staticmethod
    def one_unit(units: np.ndarray, axis: int) -> np.ndarray:
        """``units`` reduced over ``axis`` (kept, of size 1): where every element along it is the
        first element's unit or none, that unit; else ``-1`` (values that mix units carry none)."""
        first = np.take(units, [0], axis=axis)
        return np.where(np.all((units == first) | (units < 0), axis=axis, keepdims=True), first, -1)

    def reduce(self, node, x: UnitTensor, dims: Any = None, *a, **k) -> UnitTensor:
        """A reduction over ``dims`` (``mean``, ``sum``, ... of any ``keepdim``: the output's shape
        says it): a unit survives along axes where it is constant."""
        shape = self.shape(node)
        if dims is None or dims == []:
            return self.blank(shape)
        dims = sorted(d % x.units.ndim for d in ([dims] if isinstance(dims, int) else dims))
        u = x.units
        moved = np.moveaxis(u, dims, list(range(u.ndim - len(dims), u.ndim)))
        units = self.one_unit(moved.reshape(*moved.shape[: u.ndim - len(dims)], -1), -1)
        return UnitTensor(units.reshape(shape), np.zeros(shape, dtype=np.int64), (), None, None, x.producer)

    op_mean = op_sum = op_amax = op_amin = op_logsumexp = op_var = op_std = reduce

    def op_linalg_vector_norm(self, node, x, ord=2, dim=None, keepdim=False, *a, **k):
        """A norm over the feature axis (``F.normalize``, ``torch.norm``): like a LayerNorm's
        statistics, it carries no unit, and ``x / norm`` keeps ``x``'s units (speaker and sentence
        embedders end with it)."""
        return self.reduce(node, x, dim)

    op_norm = op_linalg_vector_norm

    def op_max(self, node, x, dim=None, keepdim=False, *a):
        if isinstance(dim, UnitTensor):  # max(a, b) of two tensors (aten.max.other): elementwise
            return self.op_maximum(node, x, dim)
        out = self.reduce(node, x, dim)
        return [out, self.blank(out.units.shape)] if isinstance(dim, int) else out

    op_min = op_max

    def pool(self, node, x: UnitTensor, *a, **k) -> UnitTensor:
        """Pooling and resizing: each channel stays its unit (and keeps its gain)."""
        shape = self.shape(node)
        units, _, scale, _ = self.features(node, x, 1)
        out = self.spread(units, shape, 1, x.producer)
        if x.scale is not None:
            out.scale = np.broadcast_to(along(scale, len(shape), 1), shape).copy()
        return out

    op_max_pool2d = op_max_pool1d = op_max_pool3d = op_avg_pool1d = op_avg_pool2d = op_avg_pool3d = pool
    op_adaptive_avg_pool1d = op_adaptive_avg_pool2d = op_adaptive_avg_pool3d = pool
    op_adaptive_max_pool1d = op_adaptive_max_pool2d = op_upsample_nearest2d = op_upsample_bilinear2d = pool
    op__adaptive_avg_pool2d = op_upsample_nearest1d = op_upsample_nearest3d = pool
    op_upsample_linear1d = op_upsample_trilinear3d = op_upsample_bicubic2d = pool
    op__upsample_nearest_exact1d = op__upsample_nearest_exact2d = op__upsample_nearest_exact3d = pool

    def op_max_pool2d_with_indices(self, node, x, *a, **k):
        out = self.pool(node, x)
        return [out, self.blank(out.units.shape)]

    op_max_pool1d_with_indices = op_max_pool3d_with_indices = op_max_pool2d_with_indices
