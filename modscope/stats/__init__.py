"""Statistics of an observed value against a null distribution ([spec §3][spec-3])."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ModscopeError
from ..runtime.jsonable import finite_or_none

__all__ = ["NullComparison", "cohens_d", "compare_to_null", "lesion_p_value", "p_value"]


def p_value(observed: float, samples, larger_is_extreme: bool, tol: float = 0.0) -> float:
    """The one-sided p-value of every test in modscope ([spec §3][spec-3]):
    ``(#{null draws at least as extreme as the observation} + 1) / (N + 1)``.

    "Extreme" is the direction of the effect tested: larger (a lesion's damage, Newman's Q, an
    alignment's AMI) or smaller (an n-cut). A draw *equal* to the observation counts against it,
    so a network no more modular than any of its shuffles gets ``p = 1``, and the floor is
    ``1 / (N + 1)``. ``tol`` widens "equal" for quantities computed in floating point by
    different summation orders (MSEs of lesioned networks).
    """
    s = np.asarray(samples, dtype=np.float64).ravel()
    if s.size == 0:
        raise ModscopeError("a null distribution needs at least one sample")
    hits = s >= observed - tol if larger_is_extreme else s <= observed + tol
    return float((np.count_nonzero(hits) + 1) / (s.size + 1))


@dataclass
class NullComparison:
    """An observed value ``x`` against null samples ``s_1..s_N`` (lower = more modular).

    ``std`` has ddof 0; ``z = (x - mean) / std`` (NaN when every sample is equal and differs
    from ``x``, 0 when all equal ``x``); ``p_value = (#{s_i <= x} + 1) / (N + 1)`` — one-sided,
    "how many null samples are at least as modular" (`p_value`), floored at ``1 / (N + 1)``.
    """

    observed: float
    samples: np.ndarray
    mean: float
    std: float
    z: float
    p_value: float

    @property
    def n(self) -> int:
        return int(self.samples.size)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "samples": [float(s) for s in self.samples],
            "mean": float(self.mean),
            "std": float(self.std),
            "z": finite_or_none(self.z),
            "p_value": float(self.p_value),
        }

    def to_shuffle_dict(self, method: str, samples_key: str = "ncuts") -> dict:
        """The ``shuffle`` block of a result's JSON: ``method, n, <samples_key>, mean, std, z, p_value``."""
        d = self.to_dict()
        return {"method": method, "n": d["n"], samples_key: d.pop("samples"), **d}


def compare_to_null(observed: float, samples, higher_is_modular: bool = False) -> NullComparison:
    """Mean, std (ddof 0), z and the one-sided p-value of ``observed`` against ``samples``.

    The p-value counts null samples at least as modular as ``observed`` (`p_value`): at or below
    it when lower is more modular (n-cuts), at or above it when higher is (Newman Q).
    ``z = (x - mean) / std`` either way.
    """
    s = np.asarray(samples, dtype=np.float64).ravel()
    p = p_value(observed, s, larger_is_extreme=higher_is_modular)  # first: refuses an empty null
    mean, std = float(s.mean()), float(s.std(ddof=0))
    diff = observed - mean
    # With a constant null, z is undefined unless the observation equals it.
    z = diff / std if std > 0 else (0.0 if diff == 0 else math.nan)
    return NullComparison(float(observed), s, mean, std, float(z), p)


def cohens_d(a, b) -> float:
    """Cohen's d of group ``a`` against group ``b`` with the pooled (ddof 1) standard deviation.

    Negative when ``a`` has the lower mean (e.g. trained nets more modular than controls).
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.size < 2 or b.size < 2:
        raise ModscopeError("Cohen's d needs at least two values per group")
    pooled = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    if pooled == 0:
        return 0.0 if a.mean() == b.mean() else math.nan
    return float((a.mean() - b.mean()) / math.sqrt(pooled))


def lesion_p_value(true_damage: float, random_damage, tol: float = 0.0) -> float:
    """`p_value` of a lesion's damage: ``(#{random damage >= true damage - tol} + 1) / (N + 1)``;
    small = the true lesion hurts more than random ones."""
    return p_value(true_damage, random_damage, larger_is_extreme=True, tol=tol)
