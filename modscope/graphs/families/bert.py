"""BERT and RoBERTa checkpoints (Hugging Face layout, bare or under ``bert.`` / ``roberta.``).

Recognised by ``embeddings.word_embeddings``, ``embeddings.LayerNorm`` and layer 0's
``attention.self.value``, ``attention.output.LayerNorm``, ``intermediate.dense``, ``output.dense``
and ``output.LayerNorm``. Sizes come from shapes: layers (``encoder.layer.N``), ``d_model``,
``d_ff``, vocabulary, positions, token types, classes. Heads, named by their keys: sequence
classification (``classifier`` on the pooler), token classification (``classifier`` without a
pooler), question answering (``qa_outputs``), masked LM (``cls.predictions``, ``lm_head``, the
decoder tied to the word embeddings when not saved), pre-training (``cls.seq_relationship``),
RoBERTa's classifier (``classifier.dense`` / ``out_proj``). The number of heads does not change
the graph (the value units are ``d_model`` either way) and is never asked for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import ModscopeError
from .base import WAY_OUT, Family, given_int, shape_of, stack_sizes, stack_words, weights

__all__ = ["Bert"]

_SIGNATURE = ("embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight") + weights(
    "encoder.layer.0.", "attention.self.value", "attention.output.LayerNorm", "intermediate.dense",
    "output.dense", "output.LayerNorm",
)
_PREFIXES = ("bert.", "roberta.", "")
_ROBERTA = ("roberta", "xlm-roberta", "camembert")
_HEADS = {
    "bert_mlm": "masked-LM head", "bert_pretraining": "masked-LM and next-sentence heads",
    "roberta_mlm": "masked-LM head", "roberta_classifier": "sequence classifier",
    "sequence": "sequence classifier", "token": "token classifier", "qa": "question-answering head",
    "none": "no head", "base": "no head",
}


class Bert(Family):
    name = "bert"
    title = "Hugging Face BERT"
    signature = _SIGNATURE
    prefixes = _PREFIXES
    model_types = ("bert", *_ROBERTA)
    buffers = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")
    mlp = ("{p}encoder.layer.{i}", "{p}encoder.layer.{i}.intermediate.dense")
    reference = ("bert", "BertReference", "BertModel")

    def config(self, tensors: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        keys = tensors.keys()
        p = self.prefix(keys)
        roberta = p == "roberta." or given.get("model_type") in _ROBERTA
        c = stack_sizes(
            tensors, p, r"encoder\.layer", "embeddings.word_embeddings.weight",
            "encoder.layer.0.intermediate.dense.weight",
        )
        c.update(
            roberta=roberta, positions=shape_of(tensors, p + "embeddings.position_embeddings.weight")[0],
            token_types=shape_of(tensors, p + "embeddings.token_type_embeddings.weight")[0],
            pooler=p + "pooler.dense.weight" in keys, heads=given_int(given, "num_attention_heads"),
        )
        c["position_offset"] = 2 if roberta and c["positions"] > 2 else 0
        c["head"], c["classes"] = _head(tensors, p, c["pooler"])
        c["tied_decoder"] = c["head"] in ("bert_mlm", "bert_pretraining", "roberta_mlm") and (
            _decoder(c["head"]) not in keys
        )
        return c

    def label(self, config: Mapping[str, Any]) -> str:
        return "Hugging Face RoBERTa" if config["roberta"] else self.title

    def describe(self, config: Mapping[str, Any]) -> str:
        return f"{stack_words(config)}, {_HEADS[config['head']]}"

    def aliases(self) -> dict[str, tuple[str, ...]]:
        return {
            "cls.predictions.bias": ("cls.predictions.decoder.bias",),
            "lm_head.bias": ("lm_head.decoder.bias",),
        }

    def ties(self, config: Mapping[str, Any]) -> dict[str, str]:
        tied = {_decoder(config["head"]): config["prefix"] + "embeddings.word_embeddings.weight"}
        return tied if config["tied_decoder"] else {}


def _decoder(head: str) -> str:
    return "lm_head.decoder.weight" if head == "roberta_mlm" else "cls.predictions.decoder.weight"


def _head(tensors: Mapping[str, Any], prefix: str, pooler: bool) -> tuple[str, int | None]:
    """The head the keys name, and its classes."""
    keys = tensors.keys()
    if not prefix:
        return "base", None
    if "cls.predictions.transform.dense.weight" in keys:
        return ("bert_pretraining" if "cls.seq_relationship.weight" in keys else "bert_mlm"), None
    if "lm_head.dense.weight" in keys:
        return "roberta_mlm", None
    if "classifier.out_proj.weight" in keys:
        return "roberta_classifier", shape_of(tensors, "classifier.out_proj.weight")[0]
    if "classifier.weight" in keys:
        return ("sequence" if pooler else "token"), shape_of(tensors, "classifier.weight")[0]
    if "qa_outputs.weight" in keys:
        return "qa", None
    other = sorted(k for k in keys if not k.startswith(prefix))
    if other:
        raise ModscopeError(f"{other[0]}: a head Hugging Face BERT / RoBERTa is not known to have: {WAY_OUT}")
    return "none", None
