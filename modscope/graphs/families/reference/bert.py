"""BERT and RoBERTa (Hugging Face layout): post-LayerNorm encoder layers and their heads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .layers import Dense, Encoder, Holder, Pair, Pooler, SelfAttention

__all__ = ["BertModel", "BertReference"]


class Embeddings(nn.Module):
    """Word + token type + position embeddings, then a LayerNorm: the stream's input units."""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        d = c["d_model"]
        self.word_embeddings = nn.Embedding(c["vocab"], d)
        self.position_embeddings = nn.Embedding(c["positions"], d)
        self.token_type_embeddings = nn.Embedding(c["token_types"], d)
        self.LayerNorm = nn.LayerNorm(d)
        self.offset = c["position_offset"]  # RoBERTa's positions start after its padding index

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(ids) + self.token_type_embeddings(torch.zeros_like(ids))
        positions = torch.arange(self.offset, self.offset + ids.shape[1]).unsqueeze(0)
        return self.LayerNorm(x + self.position_embeddings(positions))


class DenseNorm(nn.Module):
    """``LayerNorm(dense(h) + residual)``: a post-LN sublayer's output."""

    def __init__(self, d_in: int, d: int) -> None:
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(d_in, d), nn.LayerNorm(d)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(h) + residual)


class Attention(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.self, self.output = SelfAttention(d), DenseNorm(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x), x)


class Layer(nn.Module):
    def __init__(self, d: int, d_ff: int) -> None:
        super().__init__()
        self.attention, self.intermediate, self.output = Attention(d), Dense(d, d_ff), DenseNorm(d_ff, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attention(x)
        return self.output(F.gelu(self.intermediate.dense(a)), a)


class BertModel(nn.Module):
    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(Layer(c["d_model"], c["d_ff"]) for _ in range(c["layers"]))
        self.pooler = Pooler(c["d_model"]) if c["pooler"] else None

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The stream after the last layer and the pooled first token (None: no pooler)."""
        x = self.encoder(self.embeddings(ids))
        return x, (None if self.pooler is None else self.pooler(x))

    def forward(self, ids: torch.Tensor) -> Any:
        x, pooled = self.encode(ids)
        return x if pooled is None else (x, pooled)


class BertPredictions(nn.Module):
    """BERT's ``cls.predictions``: ``transform`` (``dense -> gelu -> LayerNorm``), then a decoder to
    the vocabulary with one bias."""

    def __init__(self, d: int, vocab: int) -> None:
        super().__init__()
        self.transform = Pair(("dense", "LayerNorm"), nn.Linear(d, d), nn.LayerNorm(d), F.gelu)
        self.decoder = nn.Linear(d, vocab, bias=False)
        self.bias = nn.Parameter(torch.empty(vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(x)) + self.bias


class RobertaLMHead(nn.Module):
    def __init__(self, d: int, vocab: int) -> None:
        super().__init__()
        self.dense, self.layer_norm = nn.Linear(d, d), nn.LayerNorm(d)
        self.decoder, self.bias = nn.Linear(d, vocab, bias=False), nn.Parameter(torch.empty(vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(F.gelu(self.dense(x)))) + self.bias


class BertReference(nn.Module):
    """The encoder under ``config["prefix"]`` (``bert.`` or ``roberta.``) and the heads the keys
    name; its outputs are the real model's: the heads' logits. (Without a prefix the checkpoint
    is the bare encoder: `BertModel`.)"""

    def __init__(self, c: Mapping[str, Any]) -> None:
        super().__init__()
        self.base_name = c["prefix"].rstrip(".")
        self.add_module(self.base_name, BertModel(c))
        self.head = c["head"]
        d, vocab, classes = c["d_model"], c["vocab"], c["classes"]
        if self.head in ("bert_mlm", "bert_pretraining"):
            # BERT's cls: masked-LM predictions (and the next-sentence classifier)
            next_sentence = nn.Linear(d, 2) if self.head == "bert_pretraining" else None
            self.cls = Holder(predictions=BertPredictions(d, vocab), seq_relationship=next_sentence)
        elif self.head == "roberta_mlm":
            self.lm_head = RobertaLMHead(d, vocab)
        elif self.head == "roberta_classifier":
            # RoBERTa's sequence classifier: dense -> tanh -> out_proj on the first token
            self.classifier = Pair(("dense", "out_proj"), nn.Linear(d, d), nn.Linear(d, classes), torch.tanh)
        elif self.head in ("sequence", "token"):
            self.classifier = nn.Linear(d, classes)
        elif self.head == "qa":
            self.qa_outputs = nn.Linear(d, 2)

    def forward(self, ids: torch.Tensor) -> Any:
        x, pooled = getattr(self, self.base_name).encode(ids)
        if self.head in _OUTPUTS:
            return _OUTPUTS[self.head](self, x, pooled)
        return x if pooled is None else (x, pooled)  # a prefix without a head: the encoder's outputs


# each head's outputs from the stream ``x`` and the pooled first token, as the real model's
_OUTPUTS = {
    "bert_mlm": lambda m, x, pooled: m.cls.predictions(x),
    "bert_pretraining": lambda m, x, pooled: (m.cls.predictions(x), m.cls.seq_relationship(pooled)),
    "roberta_mlm": lambda m, x, pooled: m.lm_head(x),
    "roberta_classifier": lambda m, x, pooled: m.classifier(x[:, 0]),
    "sequence": lambda m, x, pooled: m.classifier(pooled),
    "token": lambda m, x, pooled: m.classifier(x),
    "qa": lambda m, x, pooled: tuple(logits.squeeze(-1) for logits in m.qa_outputs(x).split(1, dim=-1)),
}
