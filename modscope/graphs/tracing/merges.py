"""Elementwise ops of two tensors: a residual add and a gate times a value make their operands' units
one unit each (the stream is one set of units); a parameter added is a bias, multiplied a gain."""

from __future__ import annotations

from functools import partialmethod
from typing import Any

import numpy as np

from .unit_table import UnitTensor, carries_units, is_param

__all__ = ["MergeOps"]


class MergeOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    def merge_binary(self, node, a: Any, b: Any, merge: bool) -> UnitTensor:
        shape = self.shape(node)
        if not isinstance(a, UnitTensor) or not isinstance(b, UnitTensor):  # a scalar: the other's units
            return self.elementwise(node, [a, b])
        a, b = a.broadcast(shape), b.broadcast(shape)
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

    def with_gain(self, node, x: UnitTensor, gain: np.ndarray) -> UnitTensor:
        """``x`` times a gain that broadcasts to the output (a learned scale ``|p|``, a divisor's
        ``1 / |p|``, a norm's): each element keeps its unit, the gain folds into its readers."""
        out = self.elementwise(node, [x])
        gain = np.broadcast_to(gain, out.units.shape)
        out.scale = gain if out.scale is None else out.scale * gain
        return out

    def op_add(self, node, a, b, *args, **kwargs):
        if isinstance(a, UnitTensor) and isinstance(b, UnitTensor) and is_param(a) != is_param(b):
            x = a if is_param(b) else b  # a bias or a learned position embedding: no edges
            return self.elementwise(node, [x])
        return self.merge_binary(node, a, b, merge=True)

    op_add_ = op_sub = op_sub_ = op_rsub = op_add

    def op_mul(self, node, a, b, *args):
        for x, y in ((a, b), (b, a)):
            if isinstance(x, UnitTensor) and is_param(y) and x.param is None:
                return self.with_gain(node, x, np.abs(self.param_value(y)))  # a learned gain (RMSNorm weight)
        if carries_units(a) and carries_units(b):  # a gate times a value (SwiGLU, squeeze-excitation)
            if a.producer is not None and b.producer is not None:
                self.builder.stack(a.producer, b.producer)
            return self.merge_binary(node, a, b, merge=True)
        return self.elementwise(node, [a if carries_units(a) else b])  # no tensor: blank

    op_mul_ = op_mul

    def op_div(self, node, a, b, *args, **kwargs):
        if isinstance(a, UnitTensor) and is_param(b) and a.param is None:
            return self.with_gain(node, a, 1.0 / np.abs(self.param_value(b)))  # a learned divisor
        return self.op_mul(node, a, b)

    op_div_ = op_div

    def op_where(self, node, cond, a, b, *args):
        return self.merge_binary(node, a, b, merge=False)

    op_maximum = op_minimum = partialmethod(merge_binary, merge=True)
