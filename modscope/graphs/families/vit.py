"""Vision transformer checkpoints: Hugging Face ViT (classic on-disk names, bare ``ViTModel`` or under
``vit.`` with a ``classifier``) and timm's ``VisionTransformer`` (``blocks.N.attn.qkv``).

Sizes come from shapes: ``d_model``, ``d_ff``, layers, the patch size and input channels (the
patch conv's kernel), the tokens (the position table: ``1 + grid x grid``, a square grid), the
classes. timm's fused ``qkv`` rows are queries | keys | values (not interleaved per head), so the
number of heads does not change the graph. timm's pooling: the class token after ``norm``, or the
mean of the patches then ``fc_norm`` (a checkpoint with ``fc_norm``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ...errors import ModscopeError
from .base import Family, count_indices, given_int, shape_of, stack_words, weights

__all__ = ["HFViT", "TimmViT"]


def _grid(tensors: Mapping[str, Any], key: str, patch_key: str) -> dict[str, Any]:
    _, tokens, d = shape_of(tensors, key)
    side = math.isqrt(tokens - 1)
    if tokens < 2 or side * side != tokens - 1:
        raise ModscopeError(f"{key}: {tokens} positions are not 1 class token + a square grid of patches")
    d_out, channels, patch, patch_w = shape_of(tensors, patch_key)
    if patch != patch_w:
        raise ModscopeError(f"{patch_key}: a {patch}x{patch_w} patch is not square")
    return {"d_model": d, "tokens": tokens, "grid": side, "patch": patch, "channels": channels}


class _ViT(Family):
    """A vision transformer: its example input an image of the patch grid, its sizes in words."""

    def example_input(self, config: Mapping[str, Any]) -> Any:
        import torch

        side = config["grid"] * config["patch"]
        return torch.zeros(1, config["channels"], side, side)

    def describe(self, config: Mapping[str, Any]) -> str:
        side = config["grid"] * config["patch"]
        head = f"{config['classes']} classes" if config.get("classes") else "no head"
        return f"{stack_words(config)}, patch {config['patch']} on {side}x{side}, {head}"


class HFViT(_ViT):
    name = "vit"
    title = "Hugging Face ViT"
    model_types = ("vit",)
    signature = (
        "embeddings.cls_token", "embeddings.position_embeddings",
        "embeddings.patch_embeddings.projection.weight", "layernorm.weight",
    ) + weights(
        "encoder.layer.0.", "layernorm_before", "attention.attention.value", "attention.output.dense",
        "layernorm_after", "intermediate.dense", "output.dense",
    )
    prefixes = ("vit.", "")
    mlp = ("{p}encoder.layer.{i}", "{p}encoder.layer.{i}.intermediate.dense")
    reference = ("vit", "HFViTReference", "HFViTModel")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        c = _grid(
            tensors, p + "embeddings.position_embeddings", p + "embeddings.patch_embeddings.projection.weight"
        )
        c.update(
            prefix=p, layers=count_indices(keys, rf"^{re.escape(p)}encoder\.layer\.(\d+)\."),
            d_ff=shape_of(tensors, p + "encoder.layer.0.intermediate.dense.weight")[0],
            pooler=p + "pooler.dense.weight" in keys,
            classes=shape_of(tensors, "classifier.weight")[0] if p else None,
            heads=given_int(given, "num_attention_heads"),
        )
        return c


class TimmViT(_ViT):
    name = "timm_vit"
    title = "timm ViT"
    signature = ("cls_token", "pos_embed", "patch_embed.proj.weight") + weights(
        "blocks.0.", "norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"
    )
    mlp = ("blocks.{i}.mlp", "blocks.{i}.mlp.fc1")
    reference = ("vit", "TimmViTReference", "TimmViTReference")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        c = _grid(tensors, "pos_embed", "patch_embed.proj.weight")
        c.update(
            layers=count_indices(keys, r"^blocks\.(\d+)\."),
            d_ff=shape_of(tensors, "blocks.0.mlp.fc1.weight")[0],
            pool="avg" if "fc_norm.weight" in keys and "norm.weight" not in keys else "token",
            classes=shape_of(tensors, "head.weight")[0] if "head.weight" in keys else None,
            heads=given_int(given, "num_heads", "num_attention_heads"),
        )
        return c

    def describe(self, config: Mapping[str, Any]) -> str:
        return super().describe(config) + (", mean-pooled" if config["pool"] == "avg" else "")
