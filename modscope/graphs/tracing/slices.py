"""The norm of the several weights that join two units (a kernel, a flattened map, gate rows)."""

from __future__ import annotations

import numpy as np

from ...errors import ModscopeError
from ..cnn import KERNEL_NORMS

__all__ = ["slice_norms"]


def slice_norms(slices: np.ndarray, norm: str = "1") -> np.ndarray:
    """Norms of ``|slices|`` ``(out, in, *spatial)`` over their spatial axes -> ``(out, in)``.

    ``"1"``: for 2-D slices numpy's matrix 1-norm (the largest column sum of |.|, the
    reference's for conv kernels); for 1-D slices the sum of |.|; for n-D slices the largest sum
    over the first spatial axis. ``"l1"``: sum of |.|; ``"l2"``/``"fro"``: Frobenius; ``"max"``.
    """
    k = np.abs(np.asarray(slices, dtype=np.float64))
    spatial = tuple(range(2, k.ndim))
    if not spatial:
        return k
    if norm == "1":
        col = k.sum(axis=2)
        return col.max(axis=tuple(range(2, col.ndim))) if col.ndim > 2 else col
    if norm == "l1":
        return k.sum(axis=spatial)
    if norm in ("l2", "fro"):
        return np.sqrt((k * k).sum(axis=spatial))
    if norm == "max":
        return k.max(axis=spatial)
    raise ModscopeError(f"unknown kernel norm {norm!r}; choose from {', '.join(KERNEL_NORMS)}")
