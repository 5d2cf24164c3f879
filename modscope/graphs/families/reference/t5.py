"""T5 (Hugging Face layout): pre-RMSNorm encoder and decoder stacks; the decoder's cross-attention
reads its keys and values from the encoder's output (after the encoder's final norm)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .layers import RMSNorm, attend

__all__ = ["T5Reference"]


class T5Attention(nn.Module):
    """``q``, ``k``, ``v`` ``(inner, d)`` and ``o``; block 0 holds the relative position bias, a
    table of per-head offsets added to the scores (it carries no unit: left out of the forward)."""

    def __init__(self, d: int, inner: int, buckets: int, heads: int) -> None:
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(d, inner, False) for _ in range(3))
        self.o = nn.Linear(inner, d, False)
        if buckets:
            self.relative_attention_bias = nn.Embedding(buckets, heads)

    def forward(
        self, x: torch.Tensor, source: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        src = x if source is None else source
        return self.o(attend(self.q(x), self.k(src), self.v(src), 1, 1, causal=causal))


class PreNorm(nn.Module):
    """``x + sublayer(layer_norm(x), ...)``: T5's ``layer.N``, its sublayer under the checkpoint's name
    (``SelfAttention``, ``EncDecAttention``, ``DenseReluDense``)."""

    def __init__(self, name: str, sublayer: nn.Module, d: int) -> None:
        super().__init__()
        self.sublayer_name = name
        self.add_module(name, sublayer)
        self.layer_norm = RMSNorm(d)

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x + getattr(self, self.sublayer_name)(self.layer_norm(x), *args, **kwargs)


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """The tanh GELU written out as T5 v1.1's code computes it (elementwise ops, not one GELU op):
    the tracer follows these ops, so the reference computes them the same way."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class DenseReluDense(nn.Module):
    """v1.0: ``wo(relu(wi(x)))``; v1.1 (gated-GELU): ``wo(gelu_new(wi_0(x)) * wi_1(x))``."""

    def __init__(self, d: int, d_ff: int, gated: bool) -> None:
        super().__init__()
        self.gated = gated
        if gated:
            self.wi_0, self.wi_1 = nn.Linear(d, d_ff, False), nn.Linear(d, d_ff, False)
        else:
            self.wi = nn.Linear(d, d_ff, False)
        self.wo = nn.Linear(d_ff, d, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(gelu_new(self.wi_0(x)) * self.wi_1(x) if self.gated else F.relu(self.wi(x)))


class Block(nn.Module):
    def __init__(self, c: Mapping[str, Any], first: bool, decoder: bool) -> None:
        super().__init__()
        d, inner = c["d_model"], c["inner"]
        buckets = c["buckets"] if first else 0
        layers = [PreNorm("SelfAttention", T5Attention(d, inner, buckets, c["heads"]), d)]
        if decoder:
            layers.append(PreNorm("EncDecAttention", T5Attention(d, inner, 0, 0), d))
        layers.append(PreNorm("DenseReluDense", DenseReluDense(d, c["d_ff"], c["gated"]), d))
        self.decoder = decoder
        self.layer = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, encoded: torch.Tensor | None = None) -> torch.Tensor:
        x = self.layer[0](x, causal=self.decoder)
        if self.decoder:
            x = self.layer[1](x, encoded)
        return self.layer[-1](x)


class Stack(nn.Module):
    def __init__(self, c: Mapping[str, Any], n: int, decoder: bool) -> None:
        super().__init__()
        self.block = nn.ModuleList(Block(c, i == 0, decoder) for i in range(n))
        self.final_layer_norm = RMSNorm(c["d_model"])

    def forward(self, x: torch.Tensor, encoded: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.block:
            x = block(x, encoded)
        return self.final_layer_norm(x)


class T5Reference(nn.Module):
    """``shared`` embeddings, ``encoder``, and (unless encoder-only) ``decoder`` with the LM head
    (``lm_head``, tied to ``shared`` when not saved) or none (T5Model). Outputs as the real
    model's: the logits (or the decoder's stream) and the encoder's stream."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.head = c["head"]
        self.shared = nn.Embedding(c["vocab"], c["d_model"])
        self.encoder = Stack(c, c["encoder_layers"], decoder=False)
        if c["decoder_layers"]:
            self.decoder = Stack(c, c["decoder_layers"], decoder=True)
        if self.head in ("lm", "tied_lm"):
            self.lm_head = nn.Linear(c["d_model"], c["vocab"], False)
        self.scale = c["d_model"] ** -0.5 if self.head == "tied_lm" else 1.0

    def forward(self, ids: torch.Tensor, decoder_ids: torch.Tensor) -> Any:
        encoded = self.encoder(self.shared(ids))
        if not hasattr(self, "decoder"):
            return encoded
        x = self.decoder(self.shared(decoder_ids), encoded)
        if hasattr(self, "lm_head"):
            x = self.lm_head(x * self.scale)  # a tied head reads the stream scaled by d ** -0.5
        return x, encoded
