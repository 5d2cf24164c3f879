"""The networks modscope trains and analyses: a plain MLP, optionally fed by learned embeddings.

Every model is a stack of ``nn.Linear`` layers (torch's out x in weight layout), which is
exactly what [`modscope.graphs`][modscope.graphs] turns into a weight graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import ModscopeError

__all__ = ["ACTIVATIONS", "MLP", "Architecture"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
}


@dataclass(frozen=True)
class Architecture:
    """What a checkpoint needs to rebuild its model.

    ``widths`` are the neuron counts of the Linear stack, input to output. When
    ``vocab_size`` is set the inputs are ``n_tokens`` integer ids, each looked up in a
    learned ``vocab_size x embed_dim`` table and concatenated, so
    ``widths[0] == n_tokens * embed_dim``.
    """

    widths: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    vocab_size: int | None = None
    embed_dim: int | None = None
    n_tokens: int | None = None

    def __post_init__(self) -> None:
        widths = tuple(int(w) for w in self.widths)
        object.__setattr__(self, "widths", widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ModscopeError(f"an MLP needs at least two layers of positive width, got {widths}")
        if self.activation not in ACTIVATIONS:
            raise ModscopeError(
                f"unknown activation {self.activation!r}; choose from {', '.join(ACTIVATIONS)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ModscopeError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.vocab_size is not None:
            if not (self.embed_dim and self.n_tokens):
                raise ModscopeError("an embedding needs vocab_size, embed_dim and n_tokens")
            if self.n_tokens * self.embed_dim != widths[0]:
                raise ModscopeError(
                    f"n_tokens * embed_dim = {self.n_tokens * self.embed_dim} "
                    f"but the first layer has {widths[0]} inputs"
                )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class MLP(nn.Module):
    """``widths[0] -> ... -> widths[-1]`` with an activation (and dropout) after every hidden layer.

    Input: ``(batch, widths[0])`` floats, or ``(batch, n_tokens)`` integer ids when the
    architecture has an embedding. Output: ``(batch, widths[-1])`` logits / regressions.
    """

    def __init__(self, arch: Architecture | Sequence[int], **kwargs) -> None:
        super().__init__()
        if not isinstance(arch, Architecture):
            arch = Architecture(tuple(arch), **kwargs)
        self.arch = arch
        self.embedding = (
            nn.Embedding(arch.vocab_size, arch.embed_dim) if arch.vocab_size is not None else None
        )
        w = arch.widths
        self.layers = nn.ModuleList(nn.Linear(w[i], w[i + 1]) for i in range(len(w) - 1))
        self.act = ACTIVATIONS[arch.activation]()
        self.drop = nn.Dropout(arch.dropout) if arch.dropout > 0 else nn.Identity()

    @property
    def widths(self) -> tuple[int, ...]:
        return self.arch.widths

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Map raw inputs to the first Linear layer's input: ``(batch, widths[0])``."""
        if self.embedding is None:
            return x
        return self.embedding(x.long()).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        *hidden, output = self.layers
        for layer in hidden:
            h = self.drop(self.act(layer(h)))
        return output(h)
