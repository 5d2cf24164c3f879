"""Image classification tasks: scikit-learn's 8x8 digits, two digits side by side, (Fashion-)MNIST.

Pixels are scaled to [0, 1] and flattened row-major; ``Task.input_shape`` keeps the grid so
BIMT can place the inputs on it.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from ..data.functions import Function
from ..data.idx import load_image_data
from ..errors import ModscopeError
from .base import MINIBATCH_BIMT_DEFAULTS, Task, check_sizes, task_from_arrays

__all__ = [
    "DIGITS_DEFAULTS",
    "DIGITS_SPLIT_STATE",
    "DIGITS_TEST_FRACTION",
    "FASHION_MNIST_DIR",
    "HALVES_DEFAULTS",
    "HINTS",
    "MNIST_DEFAULTS",
    "build_digits",
    "build_halves",
    "build_mnist_like",
]

DIGITS_SPLIT_STATE = 0  # the digits train/test split is fixed, whatever the task seed
DIGITS_TEST_FRACTION = 0.2


@lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """sklearn's 1797 digit images, ``(N, 8, 8)`` in [0, 1], split 80/20 stratified by class."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    parts = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_STATE
    )
    for a in parts:
        a.setflags(write=False)
    x_tr, x_te, y_tr, y_te = parts
    return x_tr, y_tr, x_te, y_te


def _classifier(name: str, x_tr, y_tr, x_te, y_te, n_classes: int, input_shape, defaults) -> Task:
    # copied into tensors: the cached digits arrays are read-only and must stay untouched
    return task_from_arrays(name, (x_tr, y_tr), (x_te, y_te), output_groups=(n_classes,),
                            n_inputs=int(np.prod(input_shape)), input_shape=tuple(input_shape),
                            defaults=dict(defaults))


DIGITS_DEFAULTS = {
    **MINIBATCH_BIMT_DEFAULTS,
    "hidden": [64, 64],  # 8x8 grids for BIMT
    "steps": 3000,
    # BIMT: not a reference task; the larger-task settings of spec §6, k scaled to width 64.
    "bimt_top_k": 16,
    "bimt_swap_every": 200,
}


def build_digits(seed: int) -> Task:
    """scikit-learn's 8x8 digits (1797 images), 10-way CE.

    ``seed`` is unused: the stratified 80/20 split is fixed (``random_state=0``) so test
    numbers of differently seeded models are comparable.
    """
    del seed
    return _classifier("digits", *_digits_split(), 10, (8, 8), DIGITS_DEFAULTS)  # x_tr, y_tr, x_te, y_te


HALVES_DEFAULTS = {**DIGITS_DEFAULTS, "steps": 4000}


def build_halves(seed: int, n_train: int = 20000, n_test: int = 4000) -> Task:
    """Two digits side by side, ``(8, 16)`` input; output groups (left digit, right digit).

    Training pairs are drawn (with replacement, uniformly and independently for the two
    sides) from the digits *train* split, test pairs from the *test* split, so no test
    image is ever seen in training.
    """
    check_sizes("halves", n_train=n_train, n_test=n_test)
    x_tr, y_tr, x_te, y_te = _digits_split()
    rng_tr, rng_te = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))

    def pairs(rng, x, y, n):
        i, j = rng.integers(0, len(x), size=(2, n))
        img = np.concatenate([x[i], x[j]], axis=2)  # (n, 8, 16): left | right
        return img.reshape(n, -1), np.stack([y[i], y[j]], axis=1)

    return task_from_arrays(
        "halves", pairs(rng_tr, x_tr, y_tr, n_train), pairs(rng_te, x_te, y_te, n_test),
        output_groups=(10, 10), n_inputs=128, input_shape=(8, 16), defaults=dict(HALVES_DEFAULTS),
        functions={"left": Function("left", groups=(0,)), "right": Function("right", groups=(1,))},
    )


# Spec §3's reference MLP (784-256x4-10, 20 epochs of Adam at batch 128 = 9375 steps on 60k);
# under BIMT, spec §6's MNIST row: 784-100-100-10 (10x10 hidden grids, output ring), MSE to
# one-hot, batch 100, 40,000 steps at 1e-3, lambda 0.01 -> 0.1 -> 1, y* 0.5, A 2, top-k 30,
# a swap pass every 500 steps.
MNIST_DEFAULTS = {
    **MINIBATCH_BIMT_DEFAULTS,
    "hidden": [256, 256, 256, 256],
    "steps": 9375,
    "bimt_hidden": [100, 100],
    "bimt_steps": 40000,
    "bimt_batch_size": 100,
    "bimt_lr": 1e-3,
    "bimt_loss": "mse_onehot",
    "bimt_lambdas": (0.01, 0.1, 1.0),
    "bimt_top_k": 30,
    "bimt_swap_every": 500,
    "bimt_output_layout": "ring",
}

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
HINTS = {
    "fashion-mnist": " (install the Debian package dataset-fashion-mnist, "
    "or pass data=PATH: a directory of IDX files or an .npz)",
    "mnist": " (pass data=PATH: a directory of IDX files or an .npz)",
}


def _downsample(x: np.ndarray, shape: tuple[int, ...], factor: int, name: str) -> np.ndarray:
    """``(N, h // f, w // f)``: the mean of each ``f x f`` block of pixels (area resizing)."""
    if len(shape) != 2 or shape[0] % factor or shape[1] % factor:
        raise ModscopeError(f"{name}: cannot downsample {'x'.join(map(str, shape))} images by {factor}")
    h, w = shape
    x = np.asarray(x, dtype=np.float32).reshape(len(x), h // factor, factor, w // factor, factor)
    return x.mean(axis=(2, 4))


def build_mnist_like(
    name: str, seed: int, data: str | None, limit: int | None = None, downsample: int | None = None
) -> Task:
    """MNIST (``name="mnist"``) or Fashion-MNIST (``"fashion-mnist"``; ``data`` defaults to the Debian
    package's directory in the registry) read from ``data`` (IDX directory or .npz). ``seed`` is
    unused (fixed split). ``downsample``: average ``f x f`` pixel blocks (4: 7x7 images, as Filan et
    al.'s small MNIST, which resized with anti-aliasing instead)."""
    del seed
    if data is None:
        raise ModscopeError(
            f"task {name} needs data=PATH: a directory of MNIST IDX files "
            "(train-images-idx3-ubyte[.gz], ...) or an .npz with x_train, y_train, x_test, y_test"
        )
    if limit is not None and limit < 1:
        raise ModscopeError(f"{name}: limit must be >= 1, got {limit}")
    if downsample is not None and downsample < 1:
        raise ModscopeError(f"{name}: downsample must be >= 1, got {downsample}")
    if not os.path.exists(data):
        raise ModscopeError(f"{name}: no data at {data}{HINTS.get(name, '')}")
    d = load_image_data(data, n_classes=10)
    x_tr, y_tr = d.x_train, d.y_train
    if limit is not None:
        x_tr, y_tr = x_tr[:limit], y_tr[:limit]
    if x_tr.ndim == 3:
        shape = x_tr.shape[1:]
    else:
        side = int(round(np.sqrt(x_tr.shape[1])))
        shape = (side, side) if side * side == x_tr.shape[1] else (x_tr.shape[1],)
    x_te = d.x_test
    if downsample is not None and downsample > 1:  # e.g. 4: 28x28 -> 7x7 (Filan et al.'s small MNIST)
        x_tr, x_te = (_downsample(x, shape, downsample, name) for x in (x_tr, x_te))
        shape = x_tr.shape[1:]
    return _classifier(name, x_tr, y_tr, x_te, d.y_test, 10, shape, MNIST_DEFAULTS)
