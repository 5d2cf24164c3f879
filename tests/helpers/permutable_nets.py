"""Small networks of every kind BIMT and the permutation tests run on (MLP, residual CNN with
BatchNorm, transformer with heads and LayerNorm, LSTM), in float64, seeded."""

from __future__ import annotations

import torch
from torch import nn

from modscope.training.architectures import DigitTransformer, ResidualCNN

__all__ = ["Depthwise", "FlattenHead", "Tied", "TorchMHA", "TwoLayerGRU", "cases", "cnn", "digits"]


class _LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0][:, -1])


def cnn() -> ResidualCNN:
    torch.manual_seed(0)
    net = ResidualCNN(image=(1, 8, 8), widths=(4, 6), blocks=1, classes=3)
    for m in net.modules():  # BatchNorm away from identity, so its statistics must move too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    return net.double()


def digits(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(n, 22, dtype=torch.float64)
    for i in range(n):
        a, b, f = torch.randint(0, 10, (3,), generator=g).tolist()
        x[i, a], x[i, 10 + b], x[i, 20 + f % 2] = 1, 1, 1
    return x


def cases() -> dict[str, tuple[nn.Module, torch.Tensor, int]]:
    """name -> (model, a batch of inputs, how many permutable groups it has)."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2)).double()
    tr = DigitTransformer(digits=2, flag=2, groups=1, d=8, heads=2, layers=2, ff=12).double()
    return {
        "mlp": (mlp, torch.randn(5, 4, dtype=torch.float64), 2),
        "cnn": (cnn(), torch.randn(3, 64, dtype=torch.float64), 4),
        "transformer": (tr, digits(4), 5),
        "lstm": (_LSTMNet().double(), torch.randn(3, 4, 3, dtype=torch.float64), 1),
    }


class Tied(nn.Module):
    """A token model whose output head is the embedding table (tied weights) on a residual stream."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 8)
        self.ln = nn.LayerNorm(8)
        self.head = nn.Linear(8, 11, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        h = self.emb(t)
        h = h + self.fc2(torch.relu(self.fc1(h)))
        return self.head(self.ln(h))


class TorchMHA(nn.Module):
    """``nn.MultiheadAttention`` (packed in-projection, 2 heads) on a residual stream."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(3, 8)
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        a, _ = self.att(h, h, h, need_weights=False)
        return self.out((h + a).mean(1))


class FlattenHead(nn.Module):
    """A conv map flattened into a Linear: its columns hold each channel once per position."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 6 * 6, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(torch.relu(self.bn(self.c1(x))).flatten(1))))


class TwoLayerGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.g = nn.GRU(3, 5, num_layers=2, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.g(x)[0][:, -1])


class Depthwise(nn.Module):
    """A depthwise (grouped) convolution: not permuted yet."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.c2 = nn.Conv2d(4, 3, 1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c2(torch.relu(self.dw(torch.relu(self.c1(x))))).mean((2, 3)))
