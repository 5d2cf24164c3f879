"""Vision transformers: Hugging Face ViT (classic on-disk names) and timm's ``VisionTransformer``.
Both: patches by a strided conv, a class token in front, learned positions added, pre-LN layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .layers import Dense, Encoder, Holder, Pair, Pooler, SelfAttention, fused_attention, in_order

__all__ = ["HFViTModel", "HFViTReference", "TimmViTReference"]


def patches(
    proj: nn.Conv2d, cls_token: torch.Tensor, positions: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """``(b, c, h, w)`` -> ``(b, 1 + patches, d)``: the class token, then each patch, plus positions."""
    x = proj(x).flatten(2).transpose(1, 2)
    return torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1) + positions


def tokens(c: Mapping[str, Any]) -> tuple[nn.Conv2d, nn.Parameter, nn.Parameter]:
    """The patch conv, the class token ``(1, 1, d)`` and the positions ``(1, tokens, d)``."""
    d = c["d_model"]
    return (
        nn.Conv2d(c["channels"], d, c["patch"], stride=c["patch"]), nn.Parameter(torch.empty(1, 1, d)),
        nn.Parameter(torch.empty(1, c["tokens"], d)),
    )


# -- Hugging Face ------------------------------------------------------------------------------------
class Embeddings(nn.Module):
    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        projection, self.cls_token, self.position_embeddings = tokens(c)
        self.patch_embeddings = Holder(projection=projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return patches(self.patch_embeddings.projection, self.cls_token, self.position_embeddings, x)


class Attention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.attention, self.output = SelfAttention(d), Dense(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output.dense(self.attention(x))


class Layer(nn.Module):
    """Pre-LN: ``x + attn(layernorm_before(x))``, then
    ``x + output(gelu(intermediate(layernorm_after(x))))``."""

    def __init__(self, d: int, d_ff: int) -> None:
        super().__init__()
        self.layernorm_before, self.attention = nn.LayerNorm(d), Attention(d)
        self.layernorm_after = nn.LayerNorm(d)
        self.intermediate, self.output = Dense(d, d_ff), Dense(d_ff, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attention(self.layernorm_before(x)) + x
        return self.output.dense(F.gelu(self.intermediate.dense(self.layernorm_after(x)))) + x


class HFViTModel(nn.Module):
    """``embeddings``, ``encoder.layer``, ``layernorm`` (and ``pooler``): outputs the stream (and the
    pooled class token)."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(Layer(c["d_model"], c["d_ff"]) for _ in range(c["layers"]))
        self.layernorm = nn.LayerNorm(c["d_model"])
        if c["pooler"]:
            self.pooler = Pooler(c["d_model"])

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layernorm(self.encoder(self.embeddings(pixels)))

    def forward(self, pixels: torch.Tensor) -> Any:
        x = self.encode(pixels)
        return (x, self.pooler(x)) if hasattr(self, "pooler") else x


class HFViTReference(nn.Module):
    """``vit`` and the ``classifier`` on the class token."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.vit = HFViTModel(c)
        self.classifier = nn.Linear(c["d_model"], c["classes"])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.vit.encode(pixels)[:, 0])


# -- timm --------------------------------------------------------------------------------------------
class TimmBlock(nn.Module):
    """``attn``: fused ``qkv`` ``(3d, d)``, rows queries | keys | values (each all heads), not
    interleaved, then ``proj``; ``mlp``: ``fc2(gelu(fc1(x)))``."""

    def __init__(self, d: int, d_ff: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = Pair(("qkv", "proj"), nn.Linear(d, 3 * d), nn.Linear(d, d), fused_attention(causal=False))
        self.norm2 = nn.LayerNorm(d)
        self.mlp = Pair(("fc1", "fc2"), nn.Linear(d, d_ff), nn.Linear(d_ff, d), F.gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the sublayer first: the class token's row has no unit before the first add, and the
        # tracer reads a row's unit from the first operand that has one
        x = self.attn(self.norm1(x)) + x
        return self.mlp(self.norm2(x)) + x


class TimmViTReference(nn.Module):
    """``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks``; class-token pooling after
    ``norm``, or mean pooling of the patches then ``fc_norm``; ``head`` when it has classes."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d = c["d_model"]
        proj, self.cls_token, self.pos_embed = tokens(c)
        self.patch_embed = Holder(proj=proj)
        self.blocks = nn.ModuleList(TimmBlock(d, c["d_ff"]) for _ in range(c["layers"]))
        self.pool = c["pool"]
        self.add_module("norm" if self.pool == "token" else "fc_norm", nn.LayerNorm(d))  # the pooling's norm
        if c["classes"]:
            self.head = nn.Linear(d, c["classes"])

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = in_order(self.blocks, patches(self.patch_embed.proj, self.cls_token, self.pos_embed, pixels))
        x = self.norm(x)[:, 0] if self.pool == "token" else self.fc_norm(x[:, 1:].mean(dim=1))
        return self.head(x) if hasattr(self, "head") else x
