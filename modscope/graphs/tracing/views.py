"""Views: reshape, permute, slice, cat, split, index: the same operation on the unit arrays, so a
layer reads each feature from where the model's code put it (channel-major or channel-last)."""

from __future__ import annotations

import math
from functools import partialmethod
from itertools import pairwise

import numpy as np

from .unit_table import UnitTensor, carries_units

__all__ = ["ViewOps"]


class ViewOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    def op_view(self, node, x: UnitTensor, *a, **k) -> UnitTensor:
        shape = self.shape(node)
        return x.map(lambda arr: arr.reshape(shape))

    op_reshape = op__unsafe_view = op_flatten = op_unflatten = op_view_as = op_view

    def op_permute(self, node, x, dims, *a):
        return x.map(lambda arr: np.transpose(arr, dims))

    def op_transpose(self, node, x, d0, d1, *a):
        return x.map(lambda arr: np.swapaxes(arr, d0, d1))

    def op_t(self, node, x, *a):
        return x.map(lambda arr: arr.T)

    op_numpy_T = op_t

    def op_movedim(self, node, x, src, dst, *a):
        return x.map(lambda arr: np.moveaxis(arr, src, dst))

    op_unsqueeze = op_squeeze = op_view  # a new or dropped axis of size 1: a reshape too

    def op_expand(self, node, x, *a, **k):
        return x.broadcast(self.shape(node))  # numpy broadcasting adds the leading axes as torch's

    op_expand_as = op_expand

    def op_repeat(self, node, x, repeats, *a):
        return x.map(lambda arr: np.tile(arr.reshape((1,) * (len(repeats) - arr.ndim) + arr.shape), repeats))

    def op_repeat_interleave(self, node, x, repeats, dim=None, *a, **k):
        if not isinstance(repeats, int):
            raise self.refuse(node, "repeat_interleave with tensor repeats")
        return x.map(lambda arr: np.repeat(arr, repeats, axis=dim))

    def op_select(self, node, x, dim, index, *a):
        return x.map(lambda arr: np.take(arr, index, axis=dim))

    def op_slice(self, node, x, dim=0, start=None, end=None, step=1, *a):
        # arr[:, ..., start:end:step] with the slice at axis dim: a view, as torch's
        return x.map(lambda arr: arr[(slice(None),) * (dim % arr.ndim) + (slice(start, end, step),)])

    def op_narrow(self, node, x, dim, start, length, *a):
        return self.op_slice(node, x, dim, start, start + length)

    def op_pad(self, node, x, pad, mode="constant", value=None, *a):
        """``F.pad``: new elements of a constant pad hold no unit; a reflect / replicate / circular
        pad copies the units (and positions) of the elements it repeats. Negative pads crop."""
        modes = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
        if mode not in modes:
            raise self.refuse(node, f"a pad of mode {mode!r}")
        ndim = x.units.ndim
        widths = [(0, 0)] * ndim
        for i in range(len(pad) // 2):
            widths[ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
        crop = tuple(slice(max(-lo, 0), x.units.shape[d] - max(-hi, 0)) for d, (lo, hi) in enumerate(widths))
        grow = [(max(lo, 0), max(hi, 0)) for lo, hi in widths]

        def padded(arr: np.ndarray, fill) -> np.ndarray:
            fills = {"constant_values": fill} if modes[mode] == "constant" else {}
            return np.pad(arr[crop], grow, mode=modes[mode], **fills)

        scale = None if x.scale is None else padded(x.scale, 1.0)
        return UnitTensor(padded(x.units, -1), padded(x.pos, 0), x.frame, scale, None, x.producer)

    def op_constant_pad_nd(self, node, x, pad, value=0, *a):
        return self.op_pad(node, x, pad, "constant")

    op_reflection_pad1d = op_reflection_pad2d = op_reflection_pad3d = partialmethod(op_pad, mode="reflect")
    op_replication_pad1d = partialmethod(op_pad, mode="replicate")
    op_replication_pad2d = op_replication_pad3d = op_replication_pad1d

    def op_flip(self, node, x, dims, *a):
        return x.map(lambda arr: np.flip(arr, dims).copy())

    def op_roll(self, node, x, shifts, dims=(), *a):
        return x.map(lambda arr: np.roll(arr, shifts, dims or None))

    def op_split(self, node, x, size, dim=0, *a):
        """Pieces of ``size`` along ``dim`` (the last one shorter), or of each of the sizes given."""
        n = x.units.shape[dim]
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if isinstance(size, int) else size
        return [self.op_slice(node, x, dim, int(lo), int(hi)) for lo, hi in pairwise(np.cumsum([0, *sizes]))]

    op_split_with_sizes = op_split

    def op_chunk(self, node, x, chunks, dim=0, *a):
        return self.op_split(node, x, math.ceil(x.units.shape[dim] / chunks), dim)

    def op_unbind(self, node, x, dim=0, *a):
        return [self.op_select(node, x, dim, i) for i in range(x.units.shape[dim])]

    def op_cat(self, node, tensors, dim=0, *a):
        tensors = [t for t in tensors if t is not None]
        frame = next((t.frame for t in tensors if (t.units >= 0).any()), ())
        scale = (
            np.concatenate([t.scale if t.scale is not None else np.ones(t.units.shape) for t in tensors], dim)
            if any(t.scale is not None for t in tensors)
            else None
        )
        units = np.concatenate([t.units for t in tensors], dim)
        return UnitTensor(units, np.concatenate([t.pos for t in tensors], dim), frame, scale)

    def op_stack(self, node, tensors, dim=0, *a):
        return self.op_cat(node, [t.map(lambda arr: np.expand_dims(arr, dim)) for t in tensors], dim)

    def op_getitem(self, node, x, i):
        return x[i] if isinstance(x, list | tuple) else None

    def op_index(self, node, x, indices, *a):
        """``x[..., idx, ...]`` with index tensors (picking tokens, the last time step): allowed
        along axes where every element holds the same unit, so the values of the indices (unknown
        while tracing) cannot change which unit an element is."""
        shape = self.shape(node)
        dims = [d for d, i in enumerate(indices) if i is not None]
        u = x.units
        for d in dims:
            first = np.take(u, [0], axis=d)
            if np.any((u != first) & (u >= 0) & (first >= 0)):
                raise self.refuse(
                    node, "it indexes along an axis of features, with indices known only at run time"
                )
        first = tuple(0 if d in dims else slice(None) for d in range(u.ndim))
        extra = len(shape) - (u.ndim - len(dims))
        adjacent = dims == list(range(dims[0], dims[0] + len(dims))) if dims else True
        at = dims[0] if adjacent and dims else 0  # where numpy and torch put the index's axes

        def pick(arr: np.ndarray) -> np.ndarray:
            return np.broadcast_to(np.expand_dims(arr[first], tuple(range(at, at + extra))), shape).copy()

        return UnitTensor(pick(u), pick(x.pos), x.frame, None if x.scale is None else pick(x.scale))

    op__unsafe_index = op_index

    def op_gather(self, node, x, dim, index, *a, **k):
        """``torch.gather``: from a tensor with no units (a constant buffer such as BERT's token-type
        ids, positions) it makes none; from an activation, only along an axis where every element
        is the same unit (the picked element's unit does not depend on the index values)."""
        shape = self.shape(node)
        if not carries_units(x):
            return self.blank(shape)
        u = x.units
        first = np.take(u, [0], axis=dim)
        if np.any((u != first) & (u >= 0) & (first >= 0)) or u.ndim != len(shape):
            raise self.refuse(
                node, "it gathers along an axis of features, with indices known only at run time"
            )
        return UnitTensor(np.broadcast_to(first, shape).copy(), np.zeros(shape, dtype=np.int64), x.frame)

    op_index_select = op_gather  # of a constant (a position table): no units; of an activation: the same rule
