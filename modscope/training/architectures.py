"""Two real architectures modscope can train on its own tasks, for worked examples of scoring,
masks and knockouts on networks that are not MLPs (any ``nn.Module`` works the same way).

- `ResidualCNN`: image classifier, a stem conv then residual blocks (two 3x3 convs with
  BatchNorm and a skip, a 1x1 projection where the width or stride changes), global average
  pooling and a Linear head. Input ``(B, H * W)`` flat pixels or ``(B, C, H, W)``.
- `DigitTransformer`: a pre-LayerNorm transformer encoder over the digit tokens of the one-hot
  arithmetic tasks (`addmul`, `tuple-add`): each 10-way one-hot digit block is a token (looked up
  in an embedding table, plus a learned position), a trailing flag block (addmul's operation) one
  more token; the mean of the final stream gives ``groups x 10`` logits. Input ``(B, 10 * digits
  + flag)``.
- `BIMTCNN`: the small CNN of the BIMT comparison (experiments/bimt_paper/cnn.py): two strided
  5x5 convs (no pooling, so every position of the last map keeps its place on the image) and a
  Linear head on the flattened map. Input ``(B, H * W)`` flat pixels or ``(B, 1, H, W)``.
- `InContextTransformer`: the transformer of BIMT's in-context linear regression (Liu, Gan &
  Tegmark): ``[0, x]`` and ``[y, 0]`` tokens embedded by a Linear, causal attention blocks with no
  LayerNorm and no position embedding, a Linear read-out of ``y`` at every ``x`` token (task
  `incontext-linreg`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ModscopeError

__all__ = ["BIMTCNN", "DigitTransformer", "InContextTransformer", "ResidualCNN"]


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResidualCNN(nn.Module):
    """``widths[i]`` channels in stage ``i`` (``blocks`` residual blocks each; stages after the first
    halve the map), ``classes`` outputs. ``image``: ``(C, H, W)`` of the input."""

    def __init__(
        self,
        image: tuple[int, int, int] = (1, 28, 28),
        widths: Sequence[int] = (16, 32),
        blocks: int = 1,
        classes: int = 10,
    ) -> None:
        super().__init__()
        self.image = tuple(image)
        self.stem = nn.Conv2d(image[0], widths[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        stages, c = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                stages.append(_Block(c, w, 2 if i > 0 and j == 0 else 1))
                c = w
        self.blocks = nn.Sequential(*stages)
        self.head = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.image)
        x = self.blocks(torch.relu(self.bn(self.stem(x))))
        return self.head(x.mean((2, 3)))


class _EncoderLayer(nn.Module):
    """Attention then a GELU MLP, each added to the stream. ``norm=False``: no LayerNorm (identity,
    no parameters); ``causal``: each position attends to itself and the positions before it;
    ``gelu``: ``"none"`` (exact) or ``"tanh"`` (the tanh approximation)."""

    def __init__(
        self, d: int, heads: int, ff: int, *, norm: bool = True, causal: bool = False, gelu: str = "none"
    ) -> None:
        super().__init__()
        self.heads, self.causal, self.gelu = heads, causal, gelu
        self.norm1 = nn.LayerNorm(d) if norm else nn.Identity()
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d) if norm else nn.Identity()
        self.fc1 = nn.Linear(d, ff)
        self.fc2 = nn.Linear(ff, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x)), approximate=self.gelu))


class DigitTransformer(nn.Module):
    """``digits`` one-hot digit tokens (+ a ``flag``-wide one-hot token when ``flag > 0``), ``layers``
    pre-LN encoder layers of width ``d`` with ``heads`` heads and ``ff`` MLP units, ``groups``
    output groups of 10 logits. Tokens are looked up in one embedding table (digits 0-9, then the
    flag's values), so the residual stream starts at the embedding ([spec §1b][spec-1b])."""

    def __init__(
        self,
        digits: int = 4,
        flag: int = 2,
        groups: int = 2,
        d: int = 32,
        heads: int = 4,
        layers: int = 2,
        ff: int = 64,
    ) -> None:
        super().__init__()
        self.digits, self.flag = digits, flag
        self.embed = nn.Embedding(10 + flag, d)
        self.position = nn.Parameter(torch.zeros(digits + (1 if flag else 0), d))
        self.layers = nn.ModuleList(_EncoderLayer(d, heads, ff) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10 * groups)
        nn.init.normal_(self.position, std=0.02)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 10 * digits + flag)`` one-hot blocks -> ``(B, tokens)`` ids."""
        ids = x[:, : 10 * self.digits].reshape(x.shape[0], self.digits, 10).argmax(-1)
        if self.flag:
            ids = torch.cat([ids, 10 + x[:, 10 * self.digits :].argmax(-1, keepdim=True)], dim=1)
        return ids

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(self.tokens(x)) + self.position
        for layer in self.layers:
            h = layer(h)
        return self.head(self.norm(h).mean(1))


def _build(cls: type[nn.Module], *args: int) -> nn.Module:
    return cls(*args)


class BIMTCNN(nn.Module):
    """Conv(1 -> ``widths[0]``, 5x5, stride 2) -> ReLU -> Conv(-> ``widths[1]``, 5x5, stride 2) -> ReLU
    -> flatten -> Linear(-> ``classes``); padding 2 halves each side, so 28x28 pixels give 14x14
    then 7x7 maps (default widths (8, 16): 8 + 16 channels BIMT lays on 3x3 and 4x4 grids).

    Not the BIMT paper's network: its MNIST example (Liu, Gan & Tegmark 2023, reference notebook
    ``mnist_3.5``) is a 784-100-100-10 MLP with the pixels on the image plane; this is the
    two-conv-layer stand-in the comparison asks for. No pooling: the head reads each position of
    the last map with its own weights, so a position the head stops reading shrinks the receptive
    field (`modscope.training.bimt_cnn.pixel_paths`). ``image``: ``(H, W)`` of the one-channel
    input; ``seed``: the initial weights are drawn from ``torch.Generator(seed)`` (torch's default
    U(+-1/sqrt(fan_in)) for weights and biases) instead of the global generator.
    """

    def __init__(
        self,
        image: tuple[int, int] = (28, 28),
        widths: Sequence[int] = (8, 16),
        classes: int = 10,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.image = (int(image[0]), int(image[1]))
        # with a seed the layers are built uninitialised (no draw from torch's global generator)
        make = nn.utils.skip_init if seed is not None else _build
        self.conv1 = make(nn.Conv2d, 1, widths[0], 5, 2, 2)
        self.conv2 = make(nn.Conv2d, widths[0], widths[1], 5, 2, 2)
        h, w = self.map_shape
        self.head = make(nn.Linear, widths[1] * h * w, classes)
        if seed is not None:
            gen = torch.Generator().manual_seed(int(seed))
            with torch.no_grad():
                for layer in (self.conv1, self.conv2, self.head):
                    bound = 1.0 / (layer.weight[0].numel() ** 0.5)  # 1 / sqrt(fan_in)
                    for p in (layer.weight, layer.bias):
                        p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)

    @property
    def map_shape(self) -> tuple[int, int]:
        """``(h, w)`` of the last conv's map: each of the two strided convs maps ``n`` to ``ceil(n / 2)``,
        so the map has ``ceil(n / 4)``."""
        h, w = self.image
        return (h + 3) // 4, (w + 3) // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], 1, *self.image)
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.head(x.flatten(1))
class InContextTransformer(nn.Module):
    """BIMT's in-context regression transformer: ``n_layers`` causal blocks (``heads`` heads,
    ``mlp_ratio * n_embed`` GELU-tanh MLP units, no LayerNorm) on one residual stream of width
    ``n_embed``, read by a Linear that predicts ``y`` at every ``x`` token.

    Input: ``(B, 2T - 1, token_dim)`` tokens or the same flattened, ``(B, (2T - 1) * token_dim)``,
    the tokens alternating ``[0, x_t]`` and ``[y_t, 0]`` (task `incontext-linreg`). Output: ``(B, T)``,
    the prediction of ``y_t`` (t from 1) read at token ``2t - 2`` (0-based), from the tokens up to
    it. The paper's read-out writes ``token_dim`` channels and its loss uses the first; this one
    writes that channel only, so no unit is left without a gradient from the loss.
    """

    def __init__(
        self, n_embed: int = 32, n_layers: int = 2, heads: int = 1, mlp_ratio: int = 4, token_dim: int = 2
    ) -> None:
        super().__init__()
        if min(n_embed, n_layers, heads, mlp_ratio, token_dim) < 1 or n_embed % heads:
            raise ModscopeError(
                f"InContextTransformer needs positive sizes and n_embed divisible by heads, got n_embed "
                f"{n_embed}, n_layers {n_layers}, heads {heads}, mlp_ratio {mlp_ratio}, token_dim {token_dim}"
            )
        self.token_dim = token_dim
        self.embed = nn.Linear(token_dim, n_embed)
        self.blocks = nn.ModuleList(
            _EncoderLayer(n_embed, heads, mlp_ratio * n_embed, norm=False, causal=True, gelu="tanh")
            for _ in range(n_layers)
        )
        self.head = nn.Linear(n_embed, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.reshape(x.shape[0], -1, self.token_dim))
        for block in self.blocks:
            h = block(h)
        return self.head(h[:, ::2]).squeeze(-1)  # the x tokens sit at even positions
