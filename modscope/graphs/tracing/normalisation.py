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

    def normalised(self, node, x: UnitTensor, per_group: int, gain: np.ndarray | None) -> UnitTensor:
        """A norm whose statistics run over groups of ``per_group`` consecutive elements (a LayerNorm's
        normalised shape, a GroupNorm's channels of a group and their positions), then ``gain``.

        Its statistics divide out a gain carried in up to the gain's common size in each group:
        ``norm(s * z)`` does not change when ``s`` is scaled as a whole, and does when one channel's
        ``s`` changes against the others'. So the carried gain is kept relative to its root mean
        square in its group (for iid inputs the group's std is that rms times theirs), then the
        norm's own ``|gain|`` multiplies it as BatchNorm's does."""
        out = self.elementwise(node, [x])
        # its output is no layer's rows any more: a BatchNorm after it scales its readers' columns
        # (folded into the rows before the norm, the norm's statistics would divide it out)
        out.producer = None
        if x.scale is not None:
            carried = np.broadcast_to(x.scale, x.units.shape).reshape(-1, per_group).astype(np.float64)
            rms = np.sqrt(np.mean(carried * carried, axis=1, keepdims=True))
            kept = np.divide(carried, rms, out=np.zeros_like(carried), where=rms > 0)  # all 0: a constant
            out.scale = kept.reshape(x.units.shape)
        return out if gain is None else self.with_gain(node, out, gain)

    def op_layer_norm(self, node, x: UnitTensor, shape: Any, weight: Any = None, *a) -> UnitTensor:
        """A LayerNorm / RMSNorm over the trailing ``shape``: its statistics carry no unit, its gain
        ``|w|`` folds into its readers."""
        gain = np.abs(self.param_value(weight)) if isinstance(weight, UnitTensor) and weight.param else None
        return self.normalised(node, x, int(np.prod(shape)), gain)

    op_rms_norm = op_layer_norm

    def op_native_layer_norm(self, node, x, shape, weight=None, *a):
        return [self.op_layer_norm(node, x, shape, weight), None, None]

    def op_group_norm(self, node, x, groups, weight=None, bias=None, *a):
        gain = None if weight is None else along(np.abs(self.param_value(weight)), x.units.ndim, 1)
        return self.normalised(node, x, x.units.size // (x.units.shape[0] * int(groups)), gain)
