"""Elementwise ops of two tensors: a residual add and a gate times a value make their operands' units
one unit each (the stream is one set of units); a parameter added is a bias, multiplied a gain."""

from __future__ import annotations

from typing import Any

import numpy as np

from .unit_table import UnitTensor

__all__ = ["MergeOps"]


class MergeOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    def merge_binary(self, node, a: Any, b: Any, merge: bool) -> UnitTensor:
        shape = self.shape(node)
        if not isinstance(a, UnitTensor) or not isinstance(b, UnitTensor):
            x = a if isinstance(a, UnitTensor) else b
            return self.elementwise(node, [x]) if isinstance(x, UnitTensor) else self.blank(shape)
        a = a.map(lambda arr: np.broadcast_to(arr, shape).copy()) if a.units.shape != shape else a
        b = b.map(lambda arr: np.broadcast_to(arr, shape).copy()) if b.units.shape != shape else b
        if merge:
            self.builder.union(a.units, b.units)
        units = np.where(a.units >= 0, a.units, b.units)
        pos = np.where(a.units >= 0, a.pos, b.pos)
        frame = a.frame if (a.units >= 0).any() else b.frame
        # a function of one layer's output with itself (a GELU written out: x * (1 + tanh(x))) is
        # still that layer's output: keep its producer, so a gate times it stacks with its rows
        same = a.producer == b.producer or not (b.units >= 0).any() or not (a.units >= 0).any()
        producer = (a.producer if a.producer is not None else b.producer) if same else None
        return UnitTensor(units, pos, frame, producer=producer)

    def op_add(self, node, a, b, *args, **kwargs):
        if (
            isinstance(a, UnitTensor)
            and isinstance(b, UnitTensor)
            and (a.param is not None) != (b.param is not None)
        ):
            x = a if b.param is not None else b  # a bias or a learned position embedding: no edges
            out = self.elementwise(node, [x])
            out.scale, out.producer = x.scale, x.producer
            return out
        return self.merge_binary(node, a, b, merge=True)

    op_add_ = op_sub = op_sub_ = op_rsub = op_add

    def op_mul(self, node, a, b, *args):
        for x, y in ((a, b), (b, a)):
            if (
                isinstance(x, UnitTensor)
                and isinstance(y, UnitTensor)
                and y.param is not None
                and x.param is None
            ):
                out = self.elementwise(node, [x])  # a learned gain (RMSNorm weight): fold into readers
                gain = np.abs(np.broadcast_to(self.param_value(y), out.units.shape))
                out.scale = gain if x.scale is None else np.broadcast_to(x.scale, out.units.shape) * gain
                out.producer = x.producer
                return out
        both = (
            isinstance(a, UnitTensor)
            and isinstance(b, UnitTensor)
            and (a.units >= 0).any()
            and (b.units >= 0).any()
        )
        if both:  # a gate times a value (SwiGLU, squeeze-excitation): the same units
            if a.producer is not None and b.producer is not None:
                self.builder.stack(a.producer, b.producer)
            return self.merge_binary(node, a, b, merge=True)
        x = a if isinstance(a, UnitTensor) and (a.units >= 0).any() else b
        out = self.elementwise(node, [x]) if isinstance(x, UnitTensor) else self.blank(self.shape(node))
        if isinstance(x, UnitTensor):
            out.scale, out.producer = x.scale, x.producer
        return out

    op_mul_ = op_mul

    def op_div(self, node, a, b, *args, **kwargs):
        if (
            isinstance(a, UnitTensor)
            and isinstance(b, UnitTensor)
            and b.param is not None
            and a.param is None
        ):
            out = self.elementwise(node, [a])  # a learned divisor: the gain 1 / |p|
            gain = 1.0 / np.abs(np.broadcast_to(self.param_value(b), out.units.shape))
            out.scale = gain if a.scale is None else np.broadcast_to(a.scale, out.units.shape) * gain
            out.producer = a.producer
            return out
        return self.op_mul(node, a, b)

    op_div_ = op_div

    def op_where(self, node, cond, a, b, *args):
        return self.merge_binary(node, a, b, merge=False)

    def op_maximum(self, node, a, b, *args):
        return self.merge_binary(node, a, b, merge=True)

    op_minimum = op_maximum
