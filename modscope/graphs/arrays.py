"""Weights from any container as float64 numpy arrays, with one-line errors for bad dtypes."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import ModscopeError

__all__ = ["as_float64", "is_tensor"]


def is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch: none exists before it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def as_float64(name: str, value: Any) -> np.ndarray:
    """``value`` (a torch tensor, a numpy array or anything array-like) as a float64 array.

    Integer, boolean and complex weights are refused: a weight graph needs real magnitudes.
    """
    if is_tensor(value):
        if not value.is_floating_point():
            raise ModscopeError(f"{name}: weights must be floating point, got dtype {value.dtype}")
        import torch

        return value.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ModscopeError(f"{name}: weights must be floating point, got dtype {arr.dtype}")
    return arr.astype(np.float64)
