"""Decoder-only language models: GPT-2, GPT-NeoX / Pythia and OPT checkpoints.

- **GPT-2** (bare ``GPT2Model`` keys or under ``transformer.``): ``wte``, ``wpe``, ``h.N.ln_1``,
  ``attn.c_attn`` / ``c_proj``, ``ln_2``, ``mlp.c_fc`` / ``c_proj``, ``ln_f``. The causal-mask
  buffers ``h.N.attn.bias`` / ``masked_bias`` of old checkpoints are dropped. Under
  ``transformer.`` the LM head (``lm_head``, tied to ``wte`` when not saved) or ``score``; bare
  keys are the base model, whose output is the stream. Heads do not change the graph (values are
  the columns ``2d:3d`` of ``c_attn`` whatever the split).
- **GPT-NeoX** (``gpt_neox.``, head ``embed_out`` on disk): ``query_key_value`` interleaves q, k
  and v **per head**, so which rows are values depends on the number of heads: it is read from
  ``config.json`` (``num_attention_heads``) or ``config=``, and refused without it. Parallel
  residual unless ``use_parallel_residual`` is false (both read the same stream: same graph).
- **OPT** (``model.decoder.`` with ``lm_head`` tied, or the bare ``decoder.``): pre-LN; learned
  positions with offset 2; OPT-350m's post-LN layout (no final LayerNorm, ``project_in`` /
  ``project_out``) is read when ``config.json`` says ``do_layer_norm_before: false``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import ModscopeError
from .base import HEADS, WAY_OUT, Family, given_int, read_head, shape_of, stack_sizes, stack_words, weights

__all__ = ["GPT2", "GPTNeoX", "OPT"]


class GPT2(Family):
    name = "gpt2"
    title = "GPT-2"
    model_types = ("gpt2",)
    buffers = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$")
    signature = ("wte.weight", "wpe.weight", "ln_f.weight") + weights(
        "h.0.", "ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"
    )
    prefixes = ("transformer.", "")
    mlp = ("{p}h.{i}.mlp", "{p}h.{i}.mlp.c_fc")
    tied = ("lm_head.weight", "transformer.wte.weight")
    reference = ("gpt", "GPT2Reference", "GPT2Model")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        p = self.prefix(tensors.keys())
        c = stack_sizes(tensors, p, "h", "wte.weight", "h.0.mlp.c_fc.weight", ff_axis=1)
        c.update(
            positions=shape_of(tensors, p + "wpe.weight")[0],
            heads=given_int(given, "n_head", "num_attention_heads"),
        )
        c["head"], c["classes"] = read_head(tensors, not p) or ("tied_lm", None)
        return c


class GPTNeoX(Family):
    name = "gpt_neox"
    title = "GPT-NeoX"
    model_types = ("gpt_neox",)
    buffers = re.compile(r"(^|\.)attention\.(bias|masked_bias|rotary_emb\.inv_freq)$")
    signature = ("embed_in.weight", "final_layer_norm.weight") + weights(
        "layers.0.", "input_layernorm", "post_attention_layernorm", "attention.query_key_value",
        "attention.dense", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h",
    )
    prefixes = ("gpt_neox.", "")
    mlp = ("{p}layers.{i}.mlp", "{p}layers.{i}.mlp.dense_h_to_4h")
    tied = ("embed_out.weight", "gpt_neox.embed_in.weight")
    reference = ("gpt", "NeoXReference", "NeoXModel")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        d = shape_of(tensors, p + "embed_in.weight")[1]
        qkv = p + "layers.0.attention.query_key_value.weight"
        heads = given_int(given, "num_attention_heads")
        if heads is None:
            raise ModscopeError(
                f"{qkv}: GPT-NeoX interleaves queries, keys and values per head, and the weights do "
                "not say how many heads: put the model's config.json beside the weights, or pass "
                "config={'num_attention_heads': ...}"
            )
        if heads <= 0 or d % heads:
            raise ModscopeError(f"config num_attention_heads={heads} does not divide d_model {d}")
        c = stack_sizes(tensors, p, "layers", "embed_in.weight", "layers.0.mlp.dense_h_to_4h.weight")
        c.update(
            heads=heads, parallel_residual=bool(given.get("use_parallel_residual", True)),
            attention_bias=qkv[: -len("weight")] + "bias" in keys,
            mlp_bias=p + "layers.0.mlp.dense_h_to_4h.bias" in keys,
        )
        head = read_head(tensors, not p, ("embed_out.weight", "lm_head.weight"))
        if head is None and given.get("tie_word_embeddings") is False:
            raise ModscopeError(
                f"embed_out.weight: missing (config.json says the LM head is not tied): {WAY_OUT}"
            )
        c["head"], c["classes"] = head or ("tied_lm", None)
        return c

    def describe(self, config: Mapping[str, Any]) -> str:
        residual = "parallel" if config["parallel_residual"] else "sequential"
        return f"{stack_words(config)}, {residual} residual, {HEADS[config['head']]}"

    def aliases(self) -> dict[str, tuple[str, ...]]:
        return {"embed_out.weight": ("lm_head.weight",)}  # transformers 5 names it lm_head in memory


class OPT(Family):
    name = "opt"
    title = "OPT"
    model_types = ("opt",)
    signature = ("embed_tokens.weight", "embed_positions.weight") + weights(
        "layers.0.", "self_attn.v_proj", "self_attn.out_proj", "self_attn_layer_norm", "fc1", "fc2",
        "final_layer_norm",
    )
    prefixes = ("model.decoder.", "decoder.")
    mlp = ("{p}layers.{i}", "{p}layers.{i}.fc1")
    tied = ("lm_head.weight", "model.decoder.embed_tokens.weight")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        final_norm = p + "final_layer_norm.weight" in keys
        pre_ln = given.get("do_layer_norm_before")
        if pre_ln is None:
            if not final_norm:
                raise ModscopeError(
                    f"{p}final_layer_norm.weight: missing, as in OPT-350m's post-LayerNorm layout, which "
                    "the weights alone do not tell from a pre-LayerNorm one: put the model's config.json "
                    "beside the weights, or pass config={'do_layer_norm_before': ...}"
                )
            pre_ln = True
        c = stack_sizes(tensors, p, "layers", "embed_tokens.weight", "layers.0.fc1.weight")
        c.update(
            word_dim=c["d_model"],  # the embeddings' width; the stream's is the layers'
            d_model=shape_of(tensors, p + "layers.0.self_attn.v_proj.weight")[0],
            positions=shape_of(tensors, p + "embed_positions.weight")[0],
            position_offset=2,  # OPT's learned positions start at 2
            pre_ln=bool(pre_ln),
            final_norm=final_norm,
            project=p + "project_in.weight" in keys,
            bias=p + "layers.0.fc1.bias" in keys,
            heads=given_int(given, "num_attention_heads"),
        )
        c["head"], c["classes"] = read_head(tensors, p == "decoder.") or ("tied_lm", None)
        return c

    def module(self, config: Mapping[str, Any]):
        from .reference.gpt import OPTBase, OPTReference

        return OPTBase(config) if config["head"] == "base" else OPTReference(config)

    def describe(self, config: Mapping[str, Any]) -> str:
        ln = "pre-LN" if config["pre_ln"] else "post-LN"
        proj = f", word embeddings {config['word_dim']}" if config["project"] else ""
        return f"{stack_words(config)}, {ln}{proj}, {HEADS[config['head']]}"
