"""Layers with weights: Linear (and x @ W), convolutions (grouped, transposed), embeddings, and
attention, whose scores carry no units: queries and keys route, values carry the signal."""

from __future__ import annotations

import numpy as np

from ..norms import block_diagonal
from .unit_table import UnitTensor, carries_units, is_param, module_of

__all__ = ["LayerOps"]


class LayerOps:
    """Handlers ``op_<aten name>(node, *args)`` of the `Interpreter` (a mixin)."""

    def linear(
        self, node, x: UnitTensor, w: np.ndarray, param: str, param_axis: int | None = 1
    ) -> UnitTensor:
        if x.units.ndim == 0:
            raise self.refuse(node, "a scalar input")
        units, block = self.weighted(node, module_of(param), x, -1, w, w.shape[0], param, param_axis)
        return self.spread(units, self.shape(node), len(self.shape(node)) - 1, block)

    def op_linear(self, node, x, weight, bias=None):
        if weight is None or weight.param is None:
            raise self.refuse(node, "a linear layer whose weight is computed, not a parameter")
        return self.linear(node, x, self.param_value(weight), weight.param[0])

    def op_addmm(self, node, bias, x, w, *a, **k):
        return self.op_mm(node, x, w)

    def op_mm(self, node, x, w, *a):
        xu, wu = carries_units(x), carries_units(w)
        if xu and not wu and is_param(w):  # x @ W: a layer, W (in, out)
            axis = 0 if w.param[1] is None and w.units.ndim == 2 else None  # W (in, out) as stored
            return self.linear(node, x, self.param_value(w).T, w.param[0], axis)
        if wu:  # weights (attention, a constant mixing of positions) times values
            return self.attention_product(node, x, w)
        if not xu and not wu:  # constants and parameters among themselves (rotary tables): no units
            return self.blank(self.shape(node))
        raise self.refuse(
            node,
            "a product of activations with a tensor that is neither a parameter nor "
            "an activation, or a parameter multiplied from the left (W @ x)",
        )

    op_matmul = op_bmm = op_mm

    def attention_product(self, node, a: UnitTensor, b: UnitTensor) -> UnitTensor:
        """``a @ b`` of two activations: attention. The output carries ``b``'s units where ``b``
        holds one unit along the contracted axis (``softmax(q k^T) v``), none otherwise
        (``q k^T``): queries and keys route, they carry no signal."""
        shape = self.shape(node)
        units = self.one_unit(b.units, -2)
        return UnitTensor(np.broadcast_to(units, shape).copy(), np.zeros(shape, dtype=np.int64), ())

    def op_scaled_dot_product_attention(self, node, q, k, v, *a, **kw):
        return self.attention_product(node, self.blank(q.units.shape), v)

    op__scaled_dot_product_flash_attention_for_cpu = op_scaled_dot_product_attention

    def op_embedding(self, node, weight, indices, *a):
        shape = self.shape(node)
        table = weight.param[0].removesuffix(".weight")
        units = self.builder.new_group(f"input:{table}", shape[-1], self.kind(node))
        return self.spread(units, shape, len(shape) - 1)

    def conv(self, node, x: UnitTensor, weight: UnitTensor, groups: int, transposed: bool) -> UnitTensor:
        if weight is None or weight.param is None:
            raise self.refuse(node, "a convolution whose kernel is computed, not a parameter")
        k = self.param_value(weight)
        if x.units.ndim != k.ndim:  # (channels, *spatial): axis 0 holds the channels, not a batch
            raise self.refuse(
                node,
                f"it reads an unbatched input of shape {tuple(x.units.shape)} (no batch axis); modscope "
                f"reads batch-first networks: pass an example input with a batch axis, (1, "
                f"{', '.join(map(str, x.units.shape))})",
            )
        if transposed:  # (in, out / groups, *kernel) -> (out, in / groups, *kernel)
            cin = k.shape[0]
            k = k.reshape(groups, cin // groups, *k.shape[1:]).swapaxes(1, 2)
            k = k.reshape(groups * k.shape[1], cin // groups, *k.shape[3:])
        full = block_diagonal(k, groups)  # a grouped conv: no edge between channels of different groups
        # the kernel's input-channel axis indexes the features only without groups
        axis = None if groups != 1 or weight.param[1] is not None else (0 if transposed else 1)
        name = weight.param[0]
        units, block = self.weighted(node, module_of(name), x, 1, full, k.shape[0], name, axis)
        return self.spread(units, self.shape(node), 1, block)

    def op_conv2d(self, node, x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *a):
        return self.conv(node, x, weight, int(groups), False)

    op_conv1d = op_conv3d = op_conv2d

    def op_convolution(
        self, node, x, weight, bias, stride, padding, dilation, transposed, output_padding, groups, *a
    ):
        return self.conv(node, x, weight, int(groups), bool(transposed))

    op__convolution = op_convolution

    def op_conv_transpose2d(
        self, node, x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, *a
    ):
        return self.conv(node, x, weight, int(groups), True)

    op_conv_transpose1d = op_conv_transpose3d = op_conv_transpose2d
