"""In-context linear regression, the transformer task of BIMT (Liu, Gan & Tegmark, "Seeing is
Believing", section 3.4): each example is a sequence of ``pairs`` points ``(x_t, y_t = w x_t)`` of one
weight ``w``, and a model must predict every ``y_t`` from the tokens before it.

``n_sequences`` weights ``w ~ U(-1, 1)``, each with its own ``x_t ~ U(1, 3)`` (d = 1). The sequence
is the tokens ``[0, x_1], [y_1, 0], [0, x_2], ..., [0, x_T]`` (``2T - 1`` tokens of 2 features, the
last ``y`` left out), flattened to ``x`` of ``(N, 2 (2T - 1))`` float32; ``y`` is ``(N, T)`` float32,
``y_t`` to be read at token ``2t - 2``. MSE over the T predictions, as in the paper's training loss;
the first cannot be known (no example of ``w`` yet: its best MSE is ``E[w^2] E[x^2] = 13/9``), the
last is the in-context prediction. Each output is a function (``y1``, ..., ``yT``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ModscopeError
from .base import Task, column_functions, task_from_arrays

__all__ = ["INCONTEXT_DEFAULTS", "build_incontext", "sequence_weights", "to_tokens"]

# The paper's training: AdamW 1e-3, batch 64, 40,000 steps; BIMT lambda 1e-3, x10 at 1/4 and again at
# 3/4 of training, each tensor's cost averaged, A = 2 (its weight_factor), y* = 0.5 (its l0), biases
# penalised throughout; its notebook never swaps (swap_log 1e6 > steps), ours swaps every 200 steps.
INCONTEXT_DEFAULTS: dict[str, Any] = {
    "steps": 40000,
    "batch_size": 64,
    "lr": 1e-3,
    "activation": "gelu",
    "bimt_lambda": 1e-3,
    "bimt_lambdas": (1e-3, 1e-2, 1e-1),
    "bimt_A": 2.0,
    "bimt_y_star": 0.5,
    "bimt_reduction": "mean",
    "bimt_bias_from": 0.0,
    "bimt_top_k": 5,
    "bimt_swap_every": 200,
}


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(N, 2 (2T - 1))`` flat sequences -> ``(N, 2T - 1, 2)`` tokens ``[y, x]``."""
    if x.ndim != 2 or x.shape[1] % 2:
        raise ModscopeError(f"in-context sequences are (N, 2 * tokens) arrays, got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1, 2)


def sequence_weights(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the weight ``w`` of each sequence: ``y_1 / x_1`` (exact up to rounding; ``x >= 1``)."""
    return y[:, 0] / to_tokens(x)[:, 0, 1]


def build_incontext(seed: int, n_sequences: int = 10000, pairs: int = 2, train_frac: float = 0.8) -> Task:
    """``n_sequences`` sequences of ``pairs`` points, a seeded ``train_frac`` / rest split."""
    if n_sequences < 2:
        raise ModscopeError(f"incontext-linreg: n_sequences must be >= 2, got {n_sequences}")
    if pairs < 1:
        raise ModscopeError(f"incontext-linreg: pairs must be >= 1, got {pairs}")
    n_train = int(round(train_frac * n_sequences))
    if not 0 < n_train < n_sequences:
        raise ModscopeError(
            f"incontext-linreg: train_frac {train_frac} leaves an empty split of {n_sequences} sequences; "
            "pass a value in (0, 1)"
        )
    r_w, r_x, r_split = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    w = r_w.uniform(-1.0, 1.0, size=n_sequences)
    xs = r_x.uniform(1.0, 3.0, size=(n_sequences, pairs))
    ys = w[:, None] * xs
    tokens = np.zeros((n_sequences, 2 * pairs, 2))
    tokens[:, 0::2, 1] = xs  # [0, x_t]
    tokens[:, 1::2, 0] = ys  # [y_t, 0]
    flat = tokens[:, :-1].reshape(n_sequences, -1)  # the last y is what is asked for
    order = r_split.permutation(n_sequences)
    train, test = order[:n_train], order[n_train:]

    return task_from_arrays(
        "incontext-linreg", (flat[train], ys[train]), (flat[test], ys[test]), loss_kind="mse",
        output_groups=(1,) * pairs, n_inputs=flat.shape[1], functions=column_functions(pairs),
        defaults={"hidden": [32, 32], **INCONTEXT_DEFAULTS},
    )
