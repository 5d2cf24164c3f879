"""Normalisation layers: BatchNorm folds into the rows of the layer before it, LayerNorm / RMSNorm /
GroupNorm gains into the columns of the layers that read them ([spec §1b][spec-1b])."""

from __future__ import annotations

from typing import Any

import numpy as np

from .unit_table import UnitTensor

__all__ = ["NormOps"]


class NormOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    def op_batch_norm(self, node, x, weight, bias, mean, var, training=False, momentum=0.1, eps=1e-5, *a):
        if var is None or var.param is None:
            raise self.refuse(node, "a BatchNorm without running statistics cannot be folded in")
        v = self.param_value(var)
        gamma = np.ones_like(v) if weight is None else self.param_value(weight)
        factor = np.abs(gamma) / np.sqrt(v + eps)
        out = self.elementwise(node, [x])
        out.scale, out.producer = x.scale, x.producer
        if x.producer is not None:  # folds into the rows of the layer before it (spec §1b)
            block = self.builder.blocks[x.producer]
            units, _, _, _ = self.features(node, x, 1)
            row = {int(u): i for i, u in enumerate(block.dst)}
            for c, u in enumerate(units):
                if int(u) in row:
                    block.weight[row[int(u)]] *= factor[c]
            return out
        # no single layer before it (a stream): the gain goes to the layers that read it
        view = [1] * x.units.ndim
        view[1] = factor.size
        gain = np.broadcast_to(factor.reshape(view), x.units.shape)
        out.scale = gain if x.scale is None else x.scale * gain
        return out

    def op__native_batch_norm_legit_no_training(
        self, node, x, weight, bias, mean, var, momentum=0.1, eps=1e-5
    ):
        out = self.op_batch_norm(node, x, weight, bias, mean, var, False, momentum, eps)
        return [out, None, None]

    def norm_gain(self, node, x: UnitTensor, weight: Any, n_axes: int) -> UnitTensor:
        out = self.elementwise(node, [x])
        out.producer = x.producer
        out.scale = x.scale
        if weight is not None and isinstance(weight, UnitTensor) and weight.param is not None:
            g = np.abs(self.param_value(weight))
            gain = np.broadcast_to(g, x.units.shape)
            out.scale = gain if x.scale is None else x.scale * gain
        return out

    def op_layer_norm(self, node, x, shape, weight=None, bias=None, *a):
        return self.norm_gain(node, x, weight, len(shape))

    def op_native_layer_norm(self, node, x, shape, weight=None, bias=None, *a):
        return [self.norm_gain(node, x, weight, len(shape)), None, None]

    def op_rms_norm(self, node, x, shape, weight=None, *a):
        return self.norm_gain(node, x, weight, len(shape))

    def op_group_norm(self, node, x, groups, weight=None, bias=None, *a):
        if weight is None:
            return self.elementwise(node, [x])
        view = [1] * x.units.ndim
        g = np.abs(self.param_value(weight))
        view[1] = g.size
        out = self.elementwise(node, [x])
        out.scale = np.broadcast_to(g.reshape(view), x.units.shape)
        return out
