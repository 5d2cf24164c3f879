"""BIMT's small reference tasks ([spec §6][spec-6]): three symbolic formulas and two moons.

Formulas: ``x ~ U[-1, 1]^d``, MSE on the outputs; each output column is a function
``y1, y2, ...`` (output group ``i`` = column ``i``). The biases of the formula tasks are
penalised by BIMT only in the last quarter of training (``bimt_bias_from = 0.75``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ModscopeError
from .base import Task, check_sizes, column_functions, task_from_arrays

__all__ = ["FORMULAS", "MOONS_DEFAULTS", "build_formula", "build_moons"]

FormulaFn = Callable[[np.ndarray], np.ndarray]


def _independence(x: np.ndarray) -> np.ndarray:
    return np.stack([(x[:, 0] + x[:, 2]) ** 3, x[:, 1] ** 2 + np.sin(np.pi * x[:, 3])], axis=1)


def _sharing(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x**2, axis=1)  # (x1^2, x1^2 + x2^2, x1^2 + x2^2 + x3^2)


def _composition(x: np.ndarray) -> np.ndarray:
    return np.sqrt((x[:, 0] - x[:, 1]) ** 2 + (x[:, 2] - x[:, 3]) ** 2)[:, None]


# name -> (input dimension, formula, hidden widths, one-line definition)
FORMULAS: dict[str, tuple[int, FormulaFn, list[int], str]] = {
    "formula-independence": (
        4,
        _independence,
        [20, 20],
        "y = ((x1 + x3)^3, x2^2 + sin(pi x4))",
    ),
    "formula-sharing": (3, _sharing, [20, 20], "y = (x1^2, x1^2 + x2^2, x1^2 + x2^2 + x3^2)"),
    "formula-composition": (
        4,
        _composition,
        [20, 20, 20, 20],
        "y = sqrt((x1 - x2)^2 + (x3 - x4)^2)",
    ),
}

_FORMULA_TRAINING = {
    "steps": 20000,
    "batch_size": None,
    "lr": 2e-3,
    "activation": "silu",
    "bimt_lambda": 1e-3,
    "bimt_y_star": 0.1,
    "bimt_A": 1.0,
    "bimt_top_k": 5,
    "bimt_swap_every": 200,
    "bimt_reduction": "sum",
    "bimt_schedule": "reference",
    "bimt_bias_from": 0.75,
}


def build_formula(name: str, seed: int, n_train: int = 100, n_test: int = 100) -> Task:
    """``x ~ U[-1, 1]^d`` (float32 ``(N, d)``), ``y`` = the formula, float32 ``(N, n_out)``."""
    check_sizes(name, n_train=n_train, n_test=n_test)
    d, formula, hidden, _ = FORMULAS[name]
    rng_tr, rng_te = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    x_tr = rng_tr.uniform(-1.0, 1.0, size=(n_train, d))
    x_te = rng_te.uniform(-1.0, 1.0, size=(n_test, d))
    y_tr, y_te = formula(x_tr), formula(x_te)  # float64 formulas, then float32 tensors
    n_out = y_tr.shape[1]
    return task_from_arrays(
        name, (x_tr, y_tr), (x_te, y_te), loss_kind="mse", output_groups=(1,) * n_out, n_inputs=d,
        functions=column_functions(n_out), defaults={"hidden": list(hidden), **_FORMULA_TRAINING},
    )


# the formulas' training (without its bimt_bias_from), but 10000 steps, y* 0.2 and the top 10 swaps
MOONS_DEFAULTS = {
    "hidden": [20, 20],
    **{k: v for k, v in _FORMULA_TRAINING.items() if k != "bimt_bias_from"},
    "steps": 10000,
    "bimt_y_star": 0.2,
    "bimt_top_k": 10,
}


def build_moons(seed: int, n_train: int = 200, n_test: int = 200, noise: float = 0.1) -> Task:
    """sklearn ``make_moons(n_train, noise)`` for training and a separate seeded draw for test;
    ``x`` float32 ``(N, 2)``, ``y`` the moon (0 or 1), 2-way CE."""
    from sklearn.datasets import make_moons

    check_sizes("moons", n_train=n_train, n_test=n_test)
    if noise < 0:
        raise ModscopeError(f"moons: noise must be >= 0, got {noise}")
    s_tr, s_te = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))
    x_tr, y_tr = make_moons(n_train, noise=noise, random_state=s_tr)
    x_te, y_te = make_moons(n_test, noise=noise, random_state=s_te)
    return task_from_arrays("moons", (x_tr, y_tr), (x_te, y_te), output_groups=(2,),
                            n_inputs=2, defaults=dict(MOONS_DEFAULTS))
