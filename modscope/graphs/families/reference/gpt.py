"""Decoder-only language models: GPT-2 (Conv1D, fused q | k | v columns), GPT-NeoX / Pythia (q, k,
v interleaved per head, parallel residual), OPT (pre- or post-LN, learned positions offset by 2)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .layers import Conv1D, Decoder, Pair, WithHead, attend, fused_attention, in_order

__all__ = ["GPT2Model", "GPT2Reference", "NeoXModel", "NeoXReference", "OPTBase", "OPTReference"]


# -- GPT-2 -------------------------------------------------------------------------------------------
class GPT2Block(nn.Module):
    """Pre-LN: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))`` (a tanh GELU)."""

    def __init__(self, d: int, d_ff: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = Pair(("c_attn", "c_proj"), Conv1D(d, 3 * d), Conv1D(d, d), fused_attention(causal=True))
        self.ln_2 = nn.LayerNorm(d)
        tanh_gelu = partial(F.gelu, approximate="tanh")
        self.mlp = Pair(("c_fc", "c_proj"), Conv1D(d, d_ff), Conv1D(d_ff, d), tanh_gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d = c["d_model"]
        self.wte, self.wpe = nn.Embedding(c["vocab"], d), nn.Embedding(c["positions"], d)
        self.h = nn.ModuleList(GPT2Block(d, c["d_ff"]) for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]).unsqueeze(0))
        return self.ln_f(in_order(self.h, x))


class GPT2Reference(WithHead):
    """``transformer`` and its head: ``lm_head`` (tied to ``wte`` when not saved) or ``score``."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__("transformer", GPT2Model(c), c)


# -- GPT-NeoX ----------------------------------------------------------------------------------------
class NeoXAttention(nn.Module):
    """Fused ``query_key_value`` rows: for head ``i``, ``[i*3hd, i*3hd+hd)`` queries, the next
    ``hd`` keys, the next ``hd`` values."""

    def __init__(self, d: int, heads: int, bias: bool) -> None:
        super().__init__()
        self.heads = heads
        self.query_key_value, self.dense = nn.Linear(d, 3 * d, bias), nn.Linear(d, d, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.query_key_value(x).view(b, t, self.heads, 3 * (d // self.heads))
        q, k, v = (z.reshape(b, t, d) for z in qkv.chunk(3, dim=-1))
        return self.dense(attend(q, k, v, self.heads, self.heads, causal=True))


class NeoXLayer(nn.Module):
    """Parallel: ``x + attn(ln1(x)) + mlp(ln2(x))``; sequential: ``a = x + attn(ln1(x))``,
    ``a + mlp(ln2(a))``."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d, d_ff, bias = c["d_model"], c["d_ff"], c["mlp_bias"]
        self.parallel = c["parallel_residual"]
        self.input_layernorm, self.post_attention_layernorm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = NeoXAttention(d, c["heads"], c["attention_bias"])
        self.mlp = Pair(
            ("dense_h_to_4h", "dense_4h_to_h"), nn.Linear(d, d_ff, bias), nn.Linear(d_ff, d, bias), F.gelu
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(self.input_layernorm(x))
        if self.parallel:
            return self.mlp(self.post_attention_layernorm(x)) + a + x
        a = a + x
        return self.mlp(self.post_attention_layernorm(a)) + a


class NeoXModel(Decoder):
    def __init__(self, c: Mapping[str, Any]) -> None:
        d, layers = c["d_model"], (NeoXLayer(c) for _ in range(c["layers"]))
        super().__init__(
            ("embed_in", "layers", "final_layer_norm"), nn.Embedding(c["vocab"], d), layers, nn.LayerNorm(d)
        )


class NeoXReference(WithHead):
    """``gpt_neox`` and its head: ``embed_out`` (the on-disk name of the LM head) or ``score``."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__("gpt_neox", NeoXModel(c), c, lm_name="embed_out")


# -- OPT ---------------------------------------------------------------------------------------------
class OPTAttention(nn.Module):
    def __init__(self, d: int, bias: bool) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d, bias) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(attend(self.q_proj(x), self.k_proj(x), self.v_proj(x), 1, 1, causal=True))


class OPTLayer(nn.Module):
    """Pre-LN (``x + attn(ln(x))``) or, as OPT-350m, post-LN (``ln(x + attn(x))``)."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d, bias = c["d_model"], c["bias"]
        self.pre = c["pre_ln"]
        self.self_attn, self.self_attn_layer_norm = OPTAttention(d, bias), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, c["d_ff"], bias), nn.Linear(c["d_ff"], d, bias)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.self_attn(self.self_attn_layer_norm(x) if self.pre else x) + x
        if not self.pre:
            h = self.self_attn_layer_norm(h)
        y = self.fc2(F.relu(self.fc1(self.final_layer_norm(h) if self.pre else h))) + h
        return y if self.pre else self.final_layer_norm(y)


class OPTDecoder(nn.Module):
    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d, word = c["d_model"], c["word_dim"]
        self.embed_tokens = nn.Embedding(c["vocab"], word)
        self.embed_positions = nn.Embedding(c["positions"], d)
        if c["project"]:
            self.project_in, self.project_out = nn.Linear(word, d, False), nn.Linear(d, word, False)
        self.layers = nn.ModuleList(OPTLayer(c) for _ in range(c["layers"]))
        if c["final_norm"]:
            self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        positions = self.embed_positions(torch.arange(2, 2 + ids.shape[1]).unsqueeze(0))  # offset 2
        if hasattr(self, "project_in"):
            x = self.project_in(x)
        x = in_order(self.layers, x + positions)
        if hasattr(self, "final_layer_norm"):
            x = self.final_layer_norm(x)
        return self.project_out(x) if hasattr(self, "project_out") else x


class OPTBase(nn.Module):
    """The bare ``decoder`` (OPTModel)."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.decoder = OPTDecoder(c)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(ids)


class OPTReference(WithHead):
    """``model.decoder`` with ``lm_head`` (tied to the token embeddings when not saved) or
    ``score``."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__("model", OPTBase(c), c, width=c["word_dim"])
