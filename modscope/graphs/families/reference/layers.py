"""Pieces the reference modules share: GPT-2's Conv1D, RMS norms, attention over value units, two
named layers in a row (an MLP, an attention over fused queries | keys | values), Hugging Face's
encoder pieces (BERT, ViT: self-attention, ``dense`` holder, ``encoder.layer``, pooler), a decoder's
stack and head."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "Conv1D",
    "Decoder",
    "Dense",
    "Encoder",
    "Holder",
    "Pair",
    "Pooler",
    "RMSNorm",
    "SelfAttention",
    "WithHead",
    "attend",
    "fused_attention",
    "in_order",
]


class Conv1D(nn.Module):
    """GPT-2's layer: weight ``(in, out)`` (transposed against ``nn.Linear``), ``y = x @ W + b``
    by ``addmm`` on the flattened tokens."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return out.view(*x.shape[:-1], self.weight.shape[1])


class RMSNorm(nn.Module):
    """Root-mean-square norm with a gain and no bias (LLaMA, T5): ``w * x / rms(x)``."""

    def __init__(self, d: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.eps))


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, kv_heads: int, causal: bool
) -> torch.Tensor:
    """Multi-head attention of ``(b, t, heads * hd)`` queries on ``(b, s, kv_heads * hd)`` keys and
    values -> ``(b, t, heads * hd)``. Query head ``i`` reads key/value head ``i // (heads /
    kv_heads)`` (grouped-query attention, each key/value head repeated for its queries)."""
    b, t, _ = q.shape
    s = k.shape[1]
    hd = v.shape[-1] // kv_heads
    q = q.view(b, t, heads, -1).transpose(1, 2)
    k = k.view(b, s, kv_heads, -1).transpose(1, 2)
    v = v.view(b, s, kv_heads, hd).transpose(1, 2)
    if kv_heads != heads:
        rep = heads // kv_heads
        k = k[:, :, None].expand(b, kv_heads, rep, s, k.shape[-1]).reshape(b, heads, s, k.shape[-1])
        v = v[:, :, None].expand(b, kv_heads, rep, s, hd).reshape(b, heads, s, hd)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal).transpose(1, 2).reshape(b, t, heads * hd)


def in_order(layers: Iterable[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """``x`` through ``layers``, one after the other (a stack of blocks)."""
    for layer in layers:
        x = layer(x)
    return x


class SelfAttention(nn.Module):
    """Hugging Face's encoder self-attention (BERT, ViT): ``query``, ``key``, ``value``, read as one
    head (the heads do not change the graph: the value units are ``d`` either way)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return attend(self.query(x), self.key(x), self.value(x), 1, 1, causal=False)


class Holder(nn.Module):
    """Modules under the names given, and no forward: a level of a checkpoint's key names
    (``patch_embeddings.projection``, BERT's ``cls``), its parent runs what it holds."""

    def __init__(self, **modules: nn.Module | None) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)


class Pair(Holder):
    """``second(between(first(x)))``, the two layers under the checkpoint's ``names``: a transformer's
    MLP or a head's two layers (``between`` an activation), or an attention over fused queries |
    keys | values (``between``: `fused_attention`)."""

    def __init__(
        self, names: tuple[str, str], first: nn.Module, second: nn.Module, between: Callable
    ) -> None:
        super().__init__(**dict(zip(names, (first, second), strict=True)))
        self.names, self.between = names, between

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, second = (getattr(self, name) for name in self.names)
        return second(self.between(first(x)))


def fused_attention(causal: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """One head of attention over a layer's fused outputs: queries | keys | values, each all heads
    (not interleaved per head, so the heads do not change the graph: GPT-2's ``c_attn``, timm's ``qkv``)."""
    return lambda qkv: attend(*qkv.split(qkv.shape[-1] // 3, dim=-1), 1, 1, causal=causal)


class Dense(Holder):
    """A holder of one Linear named ``dense`` (Hugging Face's ``intermediate``, ViT's ``output``)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__(dense=nn.Linear(d_in, d_out))


class WithHead(nn.Module):
    """A decoder under ``base_name`` and its head: ``score`` (a sequence classifier, config head
    ``"score"``) or the LM head ``lm_name`` (tied to the token embeddings when not saved), each
    reading the decoder's ``width`` outputs (default ``d_model``)."""

    def __init__(
        self, base_name: str, base: nn.Module, c: Mapping[str, Any], lm_name: str = "lm_head", width: int = 0
    ) -> None:
        super().__init__()
        self.base_name, self.head_name = base_name, "score" if c["head"] == "score" else lm_name
        self.add_module(base_name, base)
        out = c["classes"] if c["head"] == "score" else c["vocab"]
        self.add_module(self.head_name, nn.Linear(width or c["d_model"], out, bias=False))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.head_name)(getattr(self, self.base_name)(ids))


class Encoder(nn.Module):
    """Hugging Face's ``encoder.layer`` list, run in order."""

    def __init__(self, layers: Iterable[nn.Module]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return in_order(self.layer, x)


class Pooler(nn.Module):
    """Hugging Face's pooler: ``tanh(dense(first token))``."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))


class Decoder(nn.Module):
    """Token embeddings, the layers in order, a final norm, registered under ``names`` (the
    checkpoint's names of the three): ``norm(layers(embed(ids)))``."""

    def __init__(
        self, names: tuple[str, str, str], embed: nn.Module, layers: Iterable[nn.Module], norm: nn.Module
    ) -> None:
        super().__init__()
        self.names = names
        for name, module in zip(names, (embed, nn.ModuleList(layers), norm), strict=True):
            self.add_module(name, module)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        embed, layers, norm = (getattr(self, name) for name in self.names)
        return norm(in_order(layers, embed(ids)))
