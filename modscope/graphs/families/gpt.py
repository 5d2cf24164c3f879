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
from .base import WAY_OUT, Family, count_indices, example_tokens, given_int, shape_of

__all__ = ["GPT2", "GPTNeoX", "OPT"]


def _heads(c: Mapping[str, Any]) -> str:
    return f", {c['heads']} heads" if c.get("heads") else ""


class GPT2(Family):
    name = "gpt2"
    title = "GPT-2"
    model_types = ("gpt2",)
    buffers = re.compile(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$")
    signature = (
        "wte.weight",
        "wpe.weight",
        "h.0.ln_1.weight",
        "h.0.attn.c_attn.weight",
        "h.0.attn.c_proj.weight",
        "h.0.ln_2.weight",
        "h.0.mlp.c_fc.weight",
        "h.0.mlp.c_proj.weight",
        "ln_f.weight",
    )
    prefixes = ("transformer.", "")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        vocab, d = shape_of(tensors, p + "wte.weight")
        c: dict[str, Any] = {
            "prefix": p,
            "layers": count_indices(keys, rf"^{re.escape(p)}h\.(\d+)\."),
            "d_model": d,
            "d_ff": shape_of(tensors, p + "h.0.mlp.c_fc.weight")[1],
            "vocab": vocab,
            "positions": shape_of(tensors, p + "wpe.weight")[0],
            "heads": given_int(given, "n_head", "num_attention_heads"),
            "classes": None,
        }
        if not p:
            c["head"] = "base"
        elif "score.weight" in keys:
            c["head"], c["classes"] = "score", shape_of(tensors, "score.weight")[0]
        else:
            c["head"] = "lm" if "lm_head.weight" in keys else "tied_lm"
        return c

    def module(self, config: Mapping[str, Any]):
        from .reference.gpt import GPT2Model, GPT2Reference

        return GPT2Reference(config) if config["prefix"] else GPT2Model(config)

    def example_input(self, config: Mapping[str, Any]):
        return example_tokens(config["vocab"], config["positions"])

    def describe(self, config: Mapping[str, Any]) -> str:
        head = {"base": "no head", "score": "sequence classifier", "lm": "LM head", "tied_lm": "tied LM head"}
        return (
            f"{config['layers']} layers, d {config['d_model']}, d_ff {config['d_ff']}{_heads(config)}, "
            f"{head[config['head']]}"
        )

    def ties(self, config: Mapping[str, Any]) -> dict[str, str]:
        return {"lm_head.weight": "transformer.wte.weight"} if config["head"] == "tied_lm" else {}

    def mlp_inputs(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        p = config["prefix"]
        return [(f"{p}h.{i}.mlp", f"{p}h.{i}.mlp.c_fc") for i in range(config["layers"])]


class GPTNeoX(Family):
    name = "gpt_neox"
    title = "GPT-NeoX"
    model_types = ("gpt_neox",)
    buffers = re.compile(r"(^|\.)attention\.(bias|masked_bias|rotary_emb\.inv_freq)$")
    signature = (
        "embed_in.weight",
        "layers.0.input_layernorm.weight",
        "layers.0.post_attention_layernorm.weight",
        "layers.0.attention.query_key_value.weight",
        "layers.0.attention.dense.weight",
        "layers.0.mlp.dense_h_to_4h.weight",
        "layers.0.mlp.dense_4h_to_h.weight",
        "final_layer_norm.weight",
    )
    prefixes = ("gpt_neox.", "")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        vocab, d = shape_of(tensors, p + "embed_in.weight")
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
        c: dict[str, Any] = {
            "prefix": p,
            "layers": count_indices(keys, rf"^{re.escape(p)}layers\.(\d+)\."),
            "d_model": d,
            "d_ff": shape_of(tensors, p + "layers.0.mlp.dense_h_to_4h.weight")[0],
            "vocab": vocab,
            "heads": heads,
            "parallel_residual": bool(given.get("use_parallel_residual", True)),
            "attention_bias": qkv[: -len("weight")] + "bias" in keys,
            "mlp_bias": p + "layers.0.mlp.dense_h_to_4h.bias" in keys,
            "classes": None,
        }
        if not p:
            c["head"] = "base"
        elif "score.weight" in keys:
            c["head"], c["classes"] = "score", shape_of(tensors, "score.weight")[0]
        elif "embed_out.weight" in keys or "lm_head.weight" in keys:
            c["head"] = "lm"
        elif given.get("tie_word_embeddings") is False:
            raise ModscopeError(
                f"embed_out.weight: missing (config.json says the LM head is not tied): {WAY_OUT}"
            )
        else:
            c["head"] = "tied_lm"
        return c

    def module(self, config: Mapping[str, Any]):
        from .reference.gpt import NeoXModel, NeoXReference

        return NeoXReference(config) if config["prefix"] else NeoXModel(config)

    def example_input(self, config: Mapping[str, Any]):
        return example_tokens(config["vocab"])

    def describe(self, config: Mapping[str, Any]) -> str:
        residual = "parallel" if config["parallel_residual"] else "sequential"
        head = {"base": "no head", "score": "sequence classifier", "lm": "LM head", "tied_lm": "tied LM head"}
        return (
            f"{config['layers']} layers, d {config['d_model']}, d_ff {config['d_ff']}, "
            f"{config['heads']} heads, {residual} residual, {head[config['head']]}"
        )

    def aliases(self) -> dict[str, tuple[str, ...]]:
        return {"embed_out.weight": ("lm_head.weight",)}  # transformers 5 names it lm_head in memory

    def ties(self, config: Mapping[str, Any]) -> dict[str, str]:
        return {"embed_out.weight": "gpt_neox.embed_in.weight"} if config["head"] == "tied_lm" else {}

    def mlp_inputs(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        p = config["prefix"]
        return [(f"{p}layers.{i}.mlp", f"{p}layers.{i}.mlp.dense_h_to_4h") for i in range(config["layers"])]


class OPT(Family):
    name = "opt"
    title = "OPT"
    model_types = ("opt",)
    signature = (
        "embed_tokens.weight",
        "embed_positions.weight",
        "layers.0.self_attn.v_proj.weight",
        "layers.0.self_attn.out_proj.weight",
        "layers.0.self_attn_layer_norm.weight",
        "layers.0.fc1.weight",
        "layers.0.fc2.weight",
        "layers.0.final_layer_norm.weight",
    )
    prefixes = ("model.decoder.", "decoder.")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        vocab, word = shape_of(tensors, p + "embed_tokens.weight")
        d = shape_of(tensors, p + "layers.0.self_attn.v_proj.weight")[0]
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
        c: dict[str, Any] = {
            "prefix": p,
            "layers": count_indices(keys, rf"^{re.escape(p)}layers\.(\d+)\."),
            "d_model": d,
            "word_dim": word,
            "d_ff": shape_of(tensors, p + "layers.0.fc1.weight")[0],
            "vocab": vocab,
            "positions": shape_of(tensors, p + "embed_positions.weight")[0],
            "pre_ln": bool(pre_ln),
            "final_norm": final_norm,
            "project": p + "project_in.weight" in keys,
            "bias": p + "layers.0.fc1.bias" in keys,
            "heads": given_int(given, "num_attention_heads"),
            "classes": None,
        }
        if p == "decoder.":
            c["head"] = "base"
        elif "score.weight" in keys:
            c["head"], c["classes"] = "score", shape_of(tensors, "score.weight")[0]
        else:
            c["head"] = "lm" if "lm_head.weight" in keys else "tied_lm"
        return c

    def module(self, config: Mapping[str, Any]):
        from .reference.gpt import OPTReference

        return OPTReference(config)

    def example_input(self, config: Mapping[str, Any]):
        return example_tokens(config["vocab"], config["positions"], offset=2)

    def describe(self, config: Mapping[str, Any]) -> str:
        head = {"base": "no head", "score": "sequence classifier", "lm": "LM head", "tied_lm": "tied LM head"}
        ln = "pre-LN" if config["pre_ln"] else "post-LN"
        proj = f", word embeddings {config['word_dim']}" if config["project"] else ""
        return (
            f"{config['layers']} layers, d {config['d_model']}, d_ff {config['d_ff']}{_heads(config)}, "
            f"{ln}{proj}, {head[config['head']]}"
        )

    def ties(self, config: Mapping[str, Any]) -> dict[str, str]:
        return {"lm_head.weight": "model.decoder.embed_tokens.weight"} if config["head"] == "tied_lm" else {}

    def mlp_inputs(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        p = config["prefix"]
        return [(f"{p}layers.{i}", f"{p}layers.{i}.fc1") for i in range(config["layers"])]
