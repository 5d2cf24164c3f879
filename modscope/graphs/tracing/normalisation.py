"""Normalisation layers: BatchNorm folds into the rows of the layer before it, LayerNorm / RMSNorm /
GroupNorm gains into the columns of the layers that read them ([spec §1b][spec-1b])."""

from __future__ import annotations

from typing import Any

import numpy as np

from .unit_table import UnitTensor, along

__all__ = ["NormOps"]


class NormOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    def op_batch_norm(self, node, x, weight, bias, mean, var, training=False, momentum=0.1, eps=1e-5, *a):
        if var is None or var.param is None:
            raise self.refuse(node, "a BatchNorm without running statistics cannot be folded in")
        v = self.param_value(var)
        gamma = np.ones_like(v) if weight is None else self.param_value(weight)
        factor = np.abs(gamma) / np.sqrt(v + eps)
        if x.producer is None:  # no single layer before it (a stream): the gain goes to its readers
            return self.with_gain(node, x, along(factor, x.units.ndim, 1))
        block = self.builder.blocks[x.producer]  # folds into the rows of the layer before it (spec §1b)
        units, _, _, _ = self.features(node, x, 1)
        row = {int(u): i for i, u in enumerate(block.dst)}
        for c, u in enumerate(units):
            if int(u) in row:
                block.weight[row[int(u)]] *= factor[c]
        return self.elementwise(node, [x])

    def op__native_batch_norm_legit_no_training(
        self, node, x, weight, bias, mean, var, momentum=0.1, eps=1e-5
    ):
        out = self.op_batch_norm(node, x, weight, bias, mean, var, False, momentum, eps)
        return [out, None, None]

    def norm_gain(self, node, x: UnitTensor, weight: Any) -> UnitTensor:
        """A LayerNorm / RMSNorm: its statistics carry no unit, its gain ``|w|`` folds into its readers."""
        if isinstance(weight, UnitTensor) and weight.param is not None:
            return self.with_gain(node, x, np.abs(self.param_value(weight)))
        return self.elementwise(node, [x])

    def op_layer_norm(self, node, x, shape, weight=None, *a):
        return self.norm_gain(node, x, weight)

    op_rms_norm = op_layer_norm

    def op_native_layer_norm(self, node, x, shape, weight=None, *a):
        return [self.norm_gain(node, x, weight), None, None]

    def op_group_norm(self, node, x, groups, weight=None, bias=None, *a):
        out = self.elementwise(node, [x])
        if weight is not None:  # the gain per channel replaces any gain carried so far
            gain = along(np.abs(self.param_value(weight)), x.units.ndim, 1)
            out.scale = np.broadcast_to(gain, x.units.shape)
        return out
