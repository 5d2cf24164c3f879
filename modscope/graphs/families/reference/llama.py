"""LLaMA / Mistral (Hugging Face layout): pre-RMSNorm, grouped-query attention, SwiGLU MLP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .layers import Decoder, RMSNorm, WithHead, attend

__all__ = ["LlamaModel", "LlamaReference"]


class LlamaAttention(nn.Module):
    """``q_proj`` ``(heads * hd, d)``, ``k_proj`` / ``v_proj`` ``(kv_heads * hd, d)``, ``o_proj``."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d, hd = c["d_model"], c["head_dim"]
        self.heads, self.kv_heads = c["heads"], c["kv_heads"]
        self.q_proj = nn.Linear(d, self.heads * hd, c["qkv_bias"])
        self.k_proj, self.v_proj = (nn.Linear(d, self.kv_heads * hd, c["qkv_bias"]) for _ in range(2))
        self.o_proj = nn.Linear(self.heads * hd, d, c["o_bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o_proj(
            attend(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, self.kv_heads, causal=True)
        )


class LlamaMLP(nn.Module):
    """SwiGLU: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, d: int, d_ff: int, bias: bool) -> None:
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(d, d_ff, bias), nn.Linear(d, d_ff, bias)
        self.down_proj = nn.Linear(d_ff, d, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d = c["d_model"]
        self.input_layernorm, self.self_attn = RMSNorm(d), LlamaAttention(c)
        self.post_attention_layernorm, self.mlp = RMSNorm(d), LlamaMLP(d, c["d_ff"], c["mlp_bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(Decoder):
    def __init__(self, c: Mapping[str, Any]) -> None:
        d, layers = c["d_model"], (LlamaLayer(c) for _ in range(c["layers"]))
        super().__init__(("embed_tokens", "layers", "norm"), nn.Embedding(c["vocab"], d), layers, RMSNorm(d))


class LlamaReference(WithHead):
    """``model`` and its head: ``lm_head`` (tied to ``embed_tokens`` when not saved) or ``score``."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__("model", LlamaModel(c), c)
