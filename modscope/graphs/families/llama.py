"""LLaMA / Mistral checkpoints (Hugging Face layout, bare ``LlamaModel`` keys or under ``model.``).

Recognised by ``embed_tokens``, layer 0's ``self_attn.{q,k,v,o}_proj``, ``mlp.{gate,up,down}_proj``,
``input_layernorm``, ``post_attention_layernorm`` and the final ``norm``. Sizes come from shapes.
With grouped-query attention (``k_proj`` with fewer rows than ``q_proj``) which value head each
query head reads depends on the head size, which no shape holds: it comes from ``config.json``
(``head_dim``, else ``hidden_size / num_attention_heads``) or ``config=``, and a checkpoint without
it is refused. Without grouped queries the heads do not change the graph and are never asked for.
A missing ``lm_head`` is a tied head (Llama 3.2) only when ``config.json`` says the model is a
LLaMA, Mistral or Qwen2 (other families reuse these key names with other norms).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import ModscopeError
from .base import HEADS, WAY_OUT, Family, given_int, read_head, shape_of, stack_sizes, stack_words, weights

__all__ = ["Llama"]

_SIGNATURE = ("embed_tokens.weight", "norm.weight") + weights(
    "layers.0.", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm",
)


class Llama(Family):
    name = "llama"
    title = "LLaMA"
    signature = _SIGNATURE
    prefixes = ("model.", "")
    model_types = ("llama", "mistral", "qwen2")
    buffers = re.compile(r"(^|\.)rotary_emb\.inv_freq$")
    mlp = ("{p}layers.{i}.mlp", "{p}layers.{i}.mlp.gate_proj")
    tied = ("lm_head.weight", "model.embed_tokens.weight")
    reference = ("llama", "LlamaReference", "LlamaModel")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        c = stack_sizes(tensors, p, "layers", "embed_tokens.weight", "layers.0.mlp.gate_proj.weight")
        a = p + "layers.0.self_attn."
        q_rows, k_rows = shape_of(tensors, a + "q_proj.weight")[0], shape_of(tensors, a + "k_proj.weight")[0]
        heads, kv_heads, head_dim = _heads(given, c["d_model"], q_rows, k_rows, a)
        c.update(
            model_type=given.get("model_type"), heads=heads, kv_heads=kv_heads, head_dim=head_dim,
            heads_known=given_int(given, "num_attention_heads") is not None or q_rows != k_rows,
            qkv_bias=a + "q_proj.bias" in keys, o_bias=a + "o_proj.bias" in keys,
            mlp_bias=p + "layers.0.mlp.gate_proj.bias" in keys,
        )
        head = read_head(tensors, not p)
        if head is None:
            if given.get("model_type") not in self.model_types or given.get("tie_word_embeddings") is False:
                raise ModscopeError(
                    "lm_head.weight: missing: a tied LM head (as Llama 3.2's) or another family with LLaMA's "
                    "key names (Gemma's norms scale by 1 + w): put the model's config.json beside the "
                    f"weights, or pass config={{'model_type': 'llama'}} if it is a tied LLaMA; else {WAY_OUT}"
                )
            head = ("tied_lm", None)
        c["head"], c["classes"] = head
        return c

    def label(self, config: Mapping[str, Any]) -> str:
        return {"mistral": "Mistral", "qwen2": "Qwen2 (LLaMA layout)"}.get(config["model_type"], self.title)

    def describe(self, config: Mapping[str, Any]) -> str:
        text = stack_words(config, heads=False)
        if config["kv_heads"] != config["heads"]:
            kv = f"{config['kv_heads']} key/value head{'s' if config['kv_heads'] > 1 else ''}"
            text += f", {config['heads']} heads, {kv} of {config['head_dim']}"
        elif config["heads_known"]:
            text += f", {config['heads']} heads"
        return f"{text}, {HEADS[config['head']]}"


def _heads(given: Mapping[str, Any], d: int, q_rows: int, k_rows: int, where: str) -> tuple[int, int, int]:
    """(heads, key/value heads, head size): from config.json where they change the graph."""
    n_heads = given_int(given, "num_attention_heads")
    head_dim = given_int(given, "head_dim")
    if head_dim is None and n_heads:
        head_dim = d // n_heads
    if q_rows == k_rows and head_dim is None:
        return 1, 1, q_rows  # no grouped queries: every split gives the same graph
    if head_dim is None:
        raise ModscopeError(
            f"{where}k_proj.weight: {k_rows} rows against q_proj's {q_rows} (grouped-query attention), and "
            "which value head each query head reads depends on the head size, which the weights do not "
            "hold: put the model's config.json beside the weights, or pass config={'head_dim': ...} "
            "(or {'num_attention_heads': ...})"
        )
    if head_dim <= 0 or q_rows % head_dim or k_rows % head_dim or (q_rows // head_dim) % (k_rows // head_dim):
        raise ModscopeError(
            f"{where}q_proj.weight: {q_rows} query and {k_rows} key rows do not split into heads of "
            f"{head_dim} with whole query heads per key/value head (config head_dim / num_attention_heads)"
        )
    heads, kv_heads = q_rows // head_dim, k_rows // head_dim
    for name, want in (("num_attention_heads", heads), ("num_key_value_heads", kv_heads)):
        said = given_int(given, name)
        if said is not None and said != want:
            raise ModscopeError(
                f"config {name}={said}, but {where}q_proj / k_proj hold {want} heads of {head_dim}"
            )
    return heads, kv_heads, head_dim
