"""Small networks of the shapes researchers bring (written here from the architectures'
descriptions), for the tracing tests: residual, attention, recurrent, gated, multi-head."""

from __future__ import annotations

import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Separate q, k, v, o projections (BERT / LLaMA style); ``kv < heads``: grouped queries."""

    def __init__(self, d: int, heads: int, kv: int | None = None, bias: bool = True) -> None:
        super().__init__()
        self.heads, self.kv, self.hd = heads, kv or heads, d // heads
        self.q = nn.Linear(d, d, bias=bias)
        self.k = nn.Linear(d, self.kv * self.hd, bias=bias)
        self.v = nn.Linear(d, self.kv * self.hd, bias=bias)
        self.o = nn.Linear(d, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, self.hd).transpose(1, 2)
        k = self.k(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        v = self.v(x).view(b, t, self.kv, self.hd).transpose(1, 2)
        if self.kv != self.heads:
            k = k.repeat_interleave(self.heads // self.kv, dim=1)
            v = v.repeat_interleave(self.heads // self.kv, dim=1)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.hd), dim=-1)
        return self.o((a @ v).transpose(1, 2).reshape(b, t, d))


class PostLNLayer(nn.Module):
    """A BERT layer: post-LayerNorm, GELU MLP."""

    def __init__(self, d: int, heads: int, f: int) -> None:
        super().__init__()
        self.attn = SelfAttention(d, heads)
        self.ln1 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, f)
        self.fc2 = nn.Linear(f, d)
        self.ln2 = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x))
        return self.ln2(x + self.fc2(nn.functional.gelu(self.fc1(x))))


class TinyBert(nn.Module):
    """Token + position embeddings, LayerNorm, ``n`` post-LN layers, a classifier on token 0."""

    def __init__(
        self, vocab: int = 20, d: int = 8, heads: int = 2, f: int = 12, n: int = 2, classes: int = 3
    ):
        super().__init__()
        self.tokens = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(16, d)
        self.ln = nn.LayerNorm(d)
        self.layers = nn.ModuleList(PostLNLayer(d, heads, f) for _ in range(n))
        self.classifier = nn.Linear(d, classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.ln(self.tokens(ids) + self.positions(torch.arange(ids.shape[1])))
        for layer in self.layers:
            x = layer(x)
        return self.classifier(x[:, 0])


class RMSNorm(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class LlamaLayer(nn.Module):
    """Pre-RMSNorm, grouped-query attention, SwiGLU MLP."""

    def __init__(self, d: int, heads: int, kv: int, f: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(d)
        self.attn = SelfAttention(d, heads, kv, bias=False)
        self.norm2 = RMSNorm(d)
        self.gate = nn.Linear(d, f, bias=False)
        self.up = nn.Linear(d, f, bias=False)
        self.down = nn.Linear(f, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        h = self.norm2(x)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


class TinyLlama(nn.Module):
    def __init__(self, vocab: int = 20, d: int = 8, heads: int = 4, kv: int = 2, f: int = 12, n: int = 2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(LlamaLayer(d, heads, kv, f) for _ in range(n))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))


class Conv1D(nn.Module):
    """GPT-2's layer: weight ``(in, out)``, ``y = x @ W + b`` by ``addmm``."""

    def __init__(self, n_out: int, n_in: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.1)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], self.weight.shape[1])


class GPT2Block(nn.Module):
    """Pre-LN, fused qkv (columns q | k | v), causal sdpa, GELU MLP."""

    def __init__(self, d: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = Conv1D(4 * d, d)
        self.mlp_proj = Conv1D(d, 4 * d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)

        def heads(z):
            return z.view(b, t, self.heads, d // self.heads).permute(0, 2, 1, 3)

        y = nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v), is_causal=True)
        x = x + self.c_proj(y.permute(0, 2, 1, 3).reshape(b, t, d))
        return x + self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x))))


class BasicBlock(nn.Module):
    """A ResNet block: conv-BN-ReLU-conv-BN plus the input (or a 1x1 projection when it changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class TinyResNet(nn.Module):
    def __init__(self, widths=(4, 8), classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks += [BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w)]
            c = w
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(self.layers(x).mean((2, 3)))


class ChannelLastHead(nn.Module):
    """A conv whose head flattens channels last (a permute first), as Keras ports and audio nets."""

    def __init__(self, c_in: int = 2, c: int = 3, hw: tuple[int, int] = (2, 3), out: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, 1)
        self.fc = nn.Linear(c * hw[0] * hw[1], out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1))


class TwoHeadCNN(nn.Module):
    """A trunk and two heads on it (a detector's classifier and box regressor), PReLU."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, c, 3), nn.PReLU(c), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classes = nn.Linear(c, 2)
        self.boxes = nn.Linear(c, 3)

    def forward(self, x: torch.Tensor):
        z = self.trunk(x)
        return self.classes(z), self.boxes(z)


class LSTMClassifier(nn.Module):
    def __init__(self, n_in: int = 3, hidden: int = 4, layers: int = 2, out: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, num_layers=layers, batch_first=True)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(x)
        return self.fc(y[:, -1])


class CellLoop(nn.Module):
    """An LSTMCell stepped in Python over a fixed number of time steps."""

    def __init__(self, n_in: int = 3, hidden: int = 4, out: int = 2) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(n_in, hidden)
        self.fc = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = c = torch.zeros(x.shape[0], self.cell.hidden_size)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.fc(h)
