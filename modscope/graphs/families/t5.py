"""T5 checkpoints (Hugging Face layout): v1.0 (ReLU ``wi``) and v1.1 / mT5 (gated-GELU ``wi_0`` /
``wi_1``), encoder-decoder or encoder only.

Recognised by layer 0 of ``encoder.block.0`` (``SelfAttention.{q,k,v,o}``, both ``layer_norm``
weights, ``DenseReluDense.wo``) and ``encoder.final_layer_norm``. Sizes come from shapes:
``d_model``, the attention's inner size (``heads x d_kv``, which is all the graph needs),
``d_ff``, encoder and decoder layers, the vocabulary; the number of heads from block 0's
``relative_attention_bias`` (buckets x heads). The cross-attention's keys and values read the
encoder's output, so ``encoder.final_layer_norm`` folds into them. A missing ``lm_head`` is a tied
head (T5 v1.0) or no head (``T5Model``): the keys do not tell which, ``config.json``'s
``architectures`` does (or ``config=``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import ModscopeError
from .base import HEADS, Family, count_indices, example_tokens, shape_of, weights

__all__ = ["T5"]

_SIGNATURE = (
    ("encoder.final_layer_norm.weight",)
    + weights("encoder.block.0.layer.0.", "SelfAttention.q", "SelfAttention.k", "SelfAttention.v")
    + weights("encoder.block.0.layer.0.", "SelfAttention.o", "layer_norm")
    + weights("encoder.block.0.layer.1.", "layer_norm", "DenseReluDense.wo")
)


class T5(Family):
    name = "t5"
    title = "T5"
    model_types = ("t5", "mt5")
    signature = _SIGNATURE
    tied = ("lm_head.weight", "shared.weight")
    reference = ("t5", "T5Reference", "T5Reference")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        inner, d = shape_of(tensors, "encoder.block.0.layer.0.SelfAttention.q.weight")
        gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in keys
        buckets, heads = shape_of(
            tensors, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        )
        c: dict[str, Any] = {
            "d_model": d,
            "inner": inner,
            "d_ff": shape_of(
                tensors, f"encoder.block.0.layer.1.DenseReluDense.{'wi_0' if gated else 'wi'}.weight"
            )[0],
            "vocab": shape_of(tensors, "shared.weight")[0],
            "heads": heads,
            "buckets": buckets,
            "gated": gated,
            "encoder_layers": count_indices(keys, r"^encoder\.block\.(\d+)\."),
            "decoder_layers": count_indices(keys, r"^decoder\.block\.(\d+)\."),
        }
        architectures = " ".join(given.get("architectures") or [])
        if not c["decoder_layers"]:
            c["head"] = "encoder"
        elif "lm_head.weight" in keys:
            c["head"] = "lm"
        elif "ForConditionalGeneration" in architectures and given.get("tie_word_embeddings") is not False:
            c["head"] = "tied_lm"
        elif re.search(r"\bT5Model\b|\bMT5Model\b", architectures):
            c["head"] = "none"
        else:
            raise ModscopeError(
                "lm_head.weight: missing, as in a tied T5 v1.0 LM head or a T5Model without a head, "
                "which the keys do not tell apart: put the model's config.json beside the weights, or pass "
                "config={'architectures': ['T5ForConditionalGeneration']} (or ['T5Model'])"
            )
        return c

    def example_input(self, config: Mapping[str, Any]):
        ids = example_tokens(config["vocab"])
        return ids, ids[:, :3]

    def label(self, config: Mapping[str, Any]) -> str:
        return "T5 v1.1 (gated-GELU)" if config["gated"] else "T5"

    def describe(self, config: Mapping[str, Any]) -> str:
        layers = f"{config['encoder_layers']} encoder"
        if config["decoder_layers"]:
            layers += f" + {config['decoder_layers']} decoder"
        head = {**HEADS, "encoder": "encoder only", "none": "no head"}
        return (
            f"{layers} layers, d {config['d_model']}, d_ff {config['d_ff']}, {config['heads']} heads "
            f"(inner {config['inner']}), {head[config['head']]}"
        )

    def aliases(self) -> dict[str, tuple[str, ...]]:
        return {"shared.weight": ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}

    def mlp_inputs(self, config: Mapping[str, Any]) -> list[tuple[str, str]]:
        wi = "wi_0" if config["gated"] else "wi"
        stacks = (("encoder", config["encoder_layers"], 1), ("decoder", config["decoder_layers"], 2))
        blocks = [f"{stack}.block.{i}.layer.{ff}.DenseReluDense" for stack, n, ff in stacks for i in range(n)]
        return [(block, f"{block}.{wi}") for block in blocks]
