"""The Gumbel-sigmoid straight-through estimator of a hard weight mask ([spec §5][spec-5])::

    s = sigmoid((l + g1 - g2) / tau),   m = 1[s > 0.5] + s - stopgrad(s),   w_eff = w * m

``g1 - g2`` of two Gumbel(0, 1) draws is a Logistic(0, 1) draw: ``logit(u)`` of one uniform.
"""

from __future__ import annotations

import torch

__all__ = ["gumbel_sigmoid_weights", "hard_mask_weights", "straight_through_grad"]


def hard_mask_weights(z: torch.Tensor, w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = w * 1[z > 0]`` (``sigmoid(z) > 0.5`` iff ``z > 0``), ``(K, P)``."""
    # gt into a float tensor, then scale: 10x faster on CPU than torch.where / bool * float
    return torch.gt(z, 0, out=out).mul_(w)


def straight_through_grad(
    grad: torch.Tensor, z: torch.Tensor, w: torch.Tensor, tau: float, out: torch.Tensor
) -> torch.Tensor:
    """d loss / d logits from d loss / d (w * m): ``grad * w * s * (1 - s) / tau``, ``s = sigmoid(z)``.

    Fused by hand into ``out`` (the literal formula keeps five ``(K, P)`` intermediates and
    costs twice the element-wise passes). ``z`` is overwritten with ``s``.
    """
    torch.mul(grad, w, out=out)
    torch.ops.aten.sigmoid_backward.grad_input(out, z.sigmoid_(), grad_input=out)
    return out.div_(tau) if tau != 1.0 else out


def gumbel_sigmoid_weights(
    logits: torch.Tensor, noise: torch.Tensor, w: torch.Tensor, tau: float = 1.0
) -> torch.Tensor:
    """Effective weights ``w * m`` of shape ``(K, P)`` from ``logits`` (K, P), Logistic noise
    ``noise = g1 - g2`` (K, P) and weights ``w`` (P,), with the straight-through gradient.

    The formula as written, through autograd (mask training runs it fused by hand:
    `hard_mask_weights`, `straight_through_grad`). The forward value is exactly ``w * 1[z > 0]``
    (``s - stopgrad(s)`` is exactly 0); the gradient is that of ``w * s`` with respect to ``l``.
    """
    z = (logits + noise) / tau
    s = torch.sigmoid(z)
    return w * (torch.gt(z, 0).to(z.dtype) + (s - s.detach()))
