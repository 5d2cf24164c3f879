"""The norm of the several weights that join two units ([spec §1][spec-1], [§1b][spec-1b]): a conv kernel's
slice, a flattened channel's map, stacked gate rows. One definition for every reader of networks."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..errors import ModscopeError

__all__ = ["KERNEL_NORMS", "KernelNorm", "block_diagonal", "check_norm", "kernel_norms", "slice_norms"]

KernelNorm = Literal["1", "l1", "l2", "fro", "max"]
KERNEL_NORMS = ("1", "l1", "l2", "fro", "max")


def block_diagonal(x: np.ndarray, groups: int) -> np.ndarray:
    """A grouped conv's ``(out, in_per_group, ...)`` kernels (or their norms) -> ``(out, in_per_group *
    groups, ...)``, zero between channels of different groups (``x`` itself when ``groups`` is 1)."""
    if groups == 1:
        return x
    out, ipg = x.shape[:2]
    full = np.zeros((out, ipg * groups, *x.shape[2:]))
    group = np.arange(out) // (out // groups)  # torch: output channels split evenly by group
    full[np.arange(out)[:, None], group[:, None] * ipg + np.arange(ipg)[None, :]] = x
    return full


def check_norm(norm: str) -> None:
    """Refuse, in one line, a kernel norm that is not one of `KERNEL_NORMS`."""
    if norm not in KERNEL_NORMS:
        raise ModscopeError(f"unknown kernel norm {norm!r}; choose from {', '.join(KERNEL_NORMS)}")


def slice_norms(slices: np.ndarray, norm: str = "1") -> np.ndarray:
    """Norms of ``|slices|`` ``(out, in, *spatial)`` over their spatial axes -> ``(out, in)``.

    ``"1"``: for 2-D slices numpy's matrix 1-norm (the largest column sum of |.|, the
    reference's for conv kernels); for 1-D slices the sum of |.|; for n-D slices the largest sum
    over the first spatial axis. ``"l1"``: sum of |.|; ``"l2"``/``"fro"``: Frobenius; ``"max"``.
    """
    check_norm(norm)  # before the 2-D shortcut: a name unknown is refused whatever the shape
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
    return k.max(axis=spatial)  # "max"


def kernel_norms(kernel: np.ndarray, norm: KernelNorm = "1") -> np.ndarray:
    """``(out, in)`` norms of the ``(kh, kw)`` slices of a 2-D conv ``kernel`` ``(out, in, kh, kw)``:
    `slice_norms` (``"1"``: numpy's matrix 1-norm, the largest column sum of ``|K|``)."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 4:
        raise ModscopeError(f"a conv kernel must be 4-D (out, in, kh, kw), got shape {k.shape}")
    return slice_norms(k, norm)
