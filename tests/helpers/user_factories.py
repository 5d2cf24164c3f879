"""Factories a user would write, for ``--model tests.helpers.user_factories:NAME`` (run from the
repository root): a tiny residual CNN on 1x6x6 images with 3 classes, a tiny MLP, and a module
whose hidden units BIMT cannot permute (a depthwise convolution)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tests.helpers.permutable_nets import Depthwise

__all__ = ["depthwise", "mlp", "small_cnn", "tiny_data"]


class _SmallCNN(nn.Module):
    """Two convs with a residual add, global pooling and a Linear head: 1x6x6 in, 3 classes out."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.mid = nn.Linear(4, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c1(x))
        h = h + torch.relu(self.c2(h))
        return self.fc(torch.relu(self.mid(h.mean((2, 3)))))


def small_cnn() -> tuple[nn.Module, torch.Tensor]:
    """The CNN and its example input."""
    return _SmallCNN(), torch.zeros(1, 1, 6, 6)


def mlp() -> nn.Module:
    """36 -> 8 -> 8 -> 3 with ReLUs (reads the 6x6 images flattened: no example input given)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)
    )


def depthwise() -> tuple[nn.Module, torch.Tensor]:
    """A depthwise convolution between two convs: refused by BIMT's permutation."""
    net = Depthwise()
    net.fc = nn.Linear(3, 3)
    return net, torch.zeros(1, 1, 6, 6)


def tiny_data(path, n_train: int = 48, n_test: int = 24, seed: int = 0) -> None:
    """An ``.npz`` of 1x6x6 noisy images whose class (0-2) is their brightness, learnable in a few
    steps (by the CNN's global pooling too)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    y = rng.integers(0, 3, n)
    x = rng.normal(0.0, 0.3, (n, 1, 6, 6)).astype(np.float32)
    x += (y[:, None, None, None] - 1.0).astype(np.float32)
    np.savez(path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
