"""Algorithmic tasks: digit arithmetic with one-hot inputs (Csordás et al.) and group
operations on learned token embeddings (Liu et al.'s BIMT).

Digit layout everywhere: a two-digit number is two one-hot blocks of 10, **least
significant digit first** (units, then tens); result digits are output groups in the same
order.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import torch

from ..data.functions import Function
from ..errors import ModscopeError
from .base import MINIBATCH_BIMT_DEFAULTS, Task, check_sizes, task_from_arrays

__all__ = [
    "ADDMUL_DEFAULTS",
    "MODADD_DEFAULTS",
    "S4_DEFAULTS",
    "build_addmul",
    "build_modadd",
    "build_s4",
    "build_tuple_add",
    "s4_elements",
    "s4_table",
]

_EYE10 = np.eye(10, dtype=np.float32)


def _digits_onehot(v: np.ndarray) -> np.ndarray:
    """``(n,)`` ints in [0, 100) -> ``(n, 20)``: one-hot units digit, then one-hot tens digit."""
    return np.concatenate([_EYE10[v % 10], _EYE10[v // 10]], axis=1)


def _digits(v: np.ndarray) -> np.ndarray:
    """``(n,)`` ints in [0, 100) -> ``(n, 2)`` digit classes, units first."""
    return np.stack([v % 10, v // 10], axis=1).astype(np.int64)


ADD, MUL = 0, 1

ADDMUL_DEFAULTS = {
    **MINIBATCH_BIMT_DEFAULTS,
    "hidden": [800, 800, 800, 800],  # spec §5's reference network
    "steps": 20000,
    # BIMT: not a reference task; the larger-task settings of spec §6.
    "bimt_top_k": 30,
    "bimt_swap_every": 200,
}


def _addmul_examples(rng: np.random.Generator, n: int, pool: np.ndarray | None, each_once: bool = False):
    """``n`` examples with ops exactly balanced (to within one), shuffled.

    Without ``pool`` the operands are uniform on [0, 100)^2; with ``pool`` (per op, a 1-D
    array of allowed ``100 a + b`` codes) they are uniform over the pool, or with ``each_once``
    (a pool holding exactly as many codes as the op has examples) every code once, shuffled.
    """
    op = rng.permutation(np.arange(n) % 2)
    if pool is None:
        a, b = rng.integers(0, 100, size=(2, n))
    else:
        code = np.empty(n, dtype=np.int64)
        for o in (ADD, MUL):
            sel = op == o
            code[sel] = rng.permutation(pool[o]) if each_once else rng.choice(pool[o], size=int(sel.sum()))
        a, b = code // 100, code % 100
    return a, b, op


def _encode_addmul(a, b, op):
    x = np.concatenate([_digits_onehot(a), _digits_onehot(b), np.eye(2, dtype=np.float32)[op]], 1)
    return x, _digits(np.where(op == ADD, a + b, a * b) % 100)


def build_addmul(seed: int, n_train: int = 50000, n_test: int = 5000, heldout: bool = False) -> Task:
    """Two-digit addition or multiplication mod 100 ([spec §5][spec-5]).

    Input ``(N, 42)``: ``[a units | a tens | b units | b tens]`` (4 one-hot blocks of 10),
    then the op as 2 one-hot values (column 40 = add, 41 = mul). Output: 2 groups of 10
    logits, the result's units digit then tens digit. Operands are uniform in [0, 100);
    each split has the two ops exactly balanced. Only 20,000 distinct inputs exist: with
    ``heldout=False`` (the reference's setting) train and test are independent draws and
    overlap; with ``heldout=True`` the test inputs are distinct and never occur in training.
    """
    check_sizes("addmul", n_train=n_train, n_test=n_test)
    rng_split, rng_tr, rng_te = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    test_codes = train_pool = None  # uniform operands unless held out
    if heldout:
        per_op = [(n_test + 1 - o) // 2 for o in (ADD, MUL)]  # matches arange(n) % 2 counts
        if max(per_op) >= 10000:
            raise ModscopeError(f"addmul: heldout needs n_test < 19999, got {n_test}")
        perms = [rng_split.permutation(10000) for _ in (ADD, MUL)]  # per op: its test codes, then the rest
        test_codes = [perm[:k] for perm, k in zip(perms, per_op, strict=True)]
        train_pool = [np.sort(perm[k:]) for perm, k in zip(perms, per_op, strict=True)]
    test = _addmul_examples(rng_te, n_test, test_codes, each_once=heldout)
    train = _addmul_examples(rng_tr, n_train, train_pool)
    functions = {
        name: Function(
            name,
            train_index=torch.from_numpy(np.flatnonzero(train[2] == o)),
            test_index=torch.from_numpy(np.flatnonzero(test[2] == o)),
        )
        for name, o in (("add", ADD), ("mul", MUL))
    }
    return _digit_task("addmul", 42, (10, 10), _encode_addmul(*train), _encode_addmul(*test), functions)


def _digit_task(name: str, n_inputs: int, output_groups: tuple[int, ...], train: tuple, test: tuple,
                functions: dict[str, Function]) -> Task:
    """A task on one-hot digits: ``(x, y)`` arrays of each split, 10-way output groups, addmul's training."""
    return task_from_arrays(name, train, test, output_groups=output_groups, n_inputs=n_inputs,
                            functions=functions, defaults=dict(ADDMUL_DEFAULTS))


def build_tuple_add(seed: int, n_train: int = 50000, n_test: int = 5000) -> Task:
    """Two independent additions mod 100 by one network ([spec §5][spec-5]'s tuple arithmetic).

    Input ``(N, 80)``: ``[a1 | b1 | a2 | b2]``, each a two-digit one-hot block of 20
    (units first). Output: 4 groups of 10 logits: ``(a1 + b1) % 100`` units, tens, then
    ``(a2 + b2) % 100`` units, tens. Functions ``first`` = groups (0, 1), ``second`` =
    groups (2, 3), on all examples. All four operands are independent and uniform in [0, 100).
    """
    check_sizes("tuple-add", n_train=n_train, n_test=n_test)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)]

    def draw(rng, n):
        a1, b1, a2, b2 = rng.integers(0, 100, size=(4, n))
        x = np.concatenate([_digits_onehot(v) for v in (a1, b1, a2, b2)], axis=1)
        return x, np.concatenate([_digits((a1 + b1) % 100), _digits((a2 + b2) % 100)], axis=1)

    functions = {"first": Function("first", groups=(0, 1)), "second": Function("second", groups=(2, 3))}
    return _digit_task("tuple-add", 80, (10, 10, 10, 10), draw(rngs[0], n_train), draw(rngs[1], n_test),
                       functions)


def _token_task(name, table: np.ndarray, seed: int, train_frac: float, defaults) -> Task:
    """All ``(i, j)`` pairs of a ``k x k`` operation table as 2-token inputs, label ``table[i, j]``,
    split at random into ``round(train_frac * k^2)`` train pairs and the rest for test."""
    if not 0.0 < train_frac < 1.0:
        raise ModscopeError(f"{name}: train_frac must be in (0, 1), got {train_frac}")
    k = table.shape[0]
    n_train = int(round(train_frac * k * k))
    if not 0 < n_train < k * k:
        raise ModscopeError(f"{name}: train_frac {train_frac} leaves an empty split")
    i, j = np.divmod(np.arange(k * k), k)
    x = np.stack([i, j], axis=1).astype(np.int64)
    y = table[i, j].astype(np.int64)[:, None]
    perm = np.random.default_rng(np.random.SeedSequence(seed)).permutation(k * k)
    tr, te = perm[:n_train], perm[n_train:]
    return task_from_arrays(
        name, (x[tr], y[tr]), (x[te], y[te]), output_groups=(int(table.max()) + 1,),
        n_inputs=2,  # raw input columns: two token ids (the first Linear sees 2 * embed_dim)
        vocab_size=k, n_tokens=2, defaults=dict(defaults),
    )


MODADD_DEFAULTS = {
    "hidden": [50, 50],
    "embed_dim": 32,  # widths 64-50-50-59
    "steps": 20000,
    "batch_size": None,
    "lr": 1e-3,
    "activation": "silu",
    # plain (non-BIMT) training only: without weight decay the MLP memorises the train pairs
    # and tests near chance; AdamW with decay 1.0 generalises (measured: 100 % test)
    "weight_decay": 1.0,
    "bimt_lambda": 0.1,
    "bimt_y_star": 0.5,
    "bimt_A": 2.0,
    "bimt_top_k": 30,
    "bimt_swap_every": 200,
    "bimt_reduction": "mean",
    "bimt_schedule": "reference",
}


def build_modadd(seed: int, p: int = 59, train_frac: float = 0.8) -> Task:
    """``(a + b) mod p`` over all ``p^2`` token pairs ``(a, b)``; a seeded 80/20 split."""
    if p < 2:
        raise ModscopeError(f"modadd: p must be >= 2, got {p}")
    table = np.add.outer(np.arange(p), np.arange(p)) % p
    return _token_task("modadd", table, seed, train_frac, MODADD_DEFAULTS)


def s4_elements() -> np.ndarray:
    """The 24 permutations of ``{0, 1, 2, 3}`` as a ``(24, 4)`` array, lexicographic order
    (index 0 is the identity); row ``p`` maps ``k -> p[k]``."""
    return np.array(list(permutations(range(4))), dtype=np.int64)


def s4_table() -> np.ndarray:
    """``(24, 24)`` table: ``table[i, j]`` = index of ``p_j ∘ p_i`` (apply ``p_i`` first, then
    ``p_j``), i.e. the permutation ``k -> p_j[p_i[k]]``."""
    P = s4_elements()
    comp = P[np.arange(24)[None, :, None], P[:, None, :]]  # [i, j, k] = P[j, P[i, k]]
    lookup = np.full(4**4, -1, dtype=np.int64)  # base-4 code of a permutation -> its index
    lookup[(P * 4 ** np.arange(4)).sum(-1)] = np.arange(24)
    return lookup[(comp * 4 ** np.arange(4)).sum(-1)]


# S4 trains as modular addition (the same network and weight decay) but at lr 2e-3, and under BIMT
# with lambda 1 held constant (spec §6)
S4_DEFAULTS = {**MODADD_DEFAULTS, "lr": 2e-3, "bimt_lambda": 1.0, "bimt_schedule": "constant"}


def build_s4(seed: int, train_frac: float = 0.8) -> Task:
    """Products in S4: tokens ``(i, j)`` = ``(p1, p2)``, label = index of ``p2 ∘ p1``
    (``p1`` applied first; see [`s4_table()`][modscope.tasks.arithmetic.s4_table]), 576 pairs, a seeded 80/20
    split."""
    return _token_task("s4", s4_table(), seed, train_frac, S4_DEFAULTS)
