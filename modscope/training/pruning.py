"""Magnitude pruning on the schedule of the reference ([spec §3][spec-3]): TF model-optimization's
``PolynomialDecay`` raises each layer's sparsity, and each update keeps the largest weights."""

from __future__ import annotations

import torch

__all__ = ["magnitude_mask", "polynomial_sparsity"]


def magnitude_mask(w: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Bool mask keeping all but the ``round(sparsity * numel)`` smallest-|w| entries."""
    n_zero = round(sparsity * w.numel())
    keep = torch.ones(w.numel(), dtype=torch.bool, device=w.device)
    if n_zero > 0:
        order = torch.argsort(w.detach().abs().flatten(), stable=True)
        keep[order[:n_zero]] = False
    return keep.view_as(w)


def polynomial_sparsity(step: int, end: int, final: float, initial: float = 0.5,
                        power: int = 3) -> float:
    """TF model-optimization's ``PolynomialDecay``: ``initial`` at 0, ``final`` from ``end`` on."""
    initial = min(initial, final)
    frac = min(max(step / end, 0.0), 1.0) if end > 0 else 1.0
    return final + (initial - final) * (1.0 - frac) ** power
