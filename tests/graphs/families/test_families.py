"""Known families read from a checkpoint's key names alone (issue 16), against the real libraries.

Each fixture in ``tests/data/families/<family>/`` is a tiny random model of the real library
(transformers, torchvision, timm) saved as users get it, with the graph tracing that real model
gave (``expected.npz``, written by ``make_fixtures.py`` where those libraries are installed).
modscope must read the file alone into that graph; checkpoints that look like a family but do not
fit it, or need a number no shape holds, are refused in one line and never chained.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from modscope import load_graph
from modscope.cli import main
from modscope.errors import ModscopeError
from modscope.graphs.families import FAMILIES, family_graph, match_family
from modscope.graphs.transformer import mlp_blocks
from tests.helpers import paths

DATA = paths.FIXTURES / "families"
# fixture -> a word its reading must hold
FIXTURES = {
    "resnet": "ResNet",
    "resnet_bottleneck": "ResNet",
    "vgg_bn": "VGG",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3": "MobileNetV3",
    "bert": "BERT",
    "gpt2": "GPT-2",
    "gpt_neox": "GPT-NeoX",
    "opt": "OPT",
    "llama": "LLaMA",
    "t5": "T5",
    "vit": "Hugging Face ViT",
    "timm_vit": "timm ViT",
}


def path(name: str) -> Path:
    return DATA / name / "model.safetensors"


@functools.cache
def graph(name: str):
    return load_graph(path(name))


def tensors(name: str) -> dict[str, np.ndarray]:
    return load_file(str(path(name)))


def refused(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


SLOW_FAMILIES = {"resnet", "mobilenet_v2", "mobilenet_v3"}  # the torchvision CNNs trace longest


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_FAMILIES else n
                                  for n in FIXTURES])
def test_a_checkpoint_alone_reads_as_tracing_the_real_model(name):
    g = graph(name)
    expected = np.load(DATA / name / "expected.npz")
    assert g.sizes == tuple(expected["sizes"])
    assert g.links == tuple(map(tuple, expected["links"]))
    assert len(g.weights) == len(expected["links"])
    for b, w in enumerate(g.weights):
        np.testing.assert_allclose(w, expected[f"w{b}"], rtol=1e-6, atol=0)
    assert FIXTURES[name] in g.reading and "traced from a reference module" in g.reading
    assert g.is_chain == (name == "vgg_bn")  # a VGG is a chain; residual streams and attention are not


def test_families_are_matched_by_key_names_only():
    keys = set(tensors("bert"))
    assert match_family(keys).name == "bert"
    assert match_family({"fc1.weight", "fc2.weight"}) is None
    # GPT-2-like keys without the layer norms are no family's layout: the key-pair MLP path reads them
    assert match_family({"transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.weight"}) is None
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)


def test_grouped_query_attention_without_config_is_refused(tmp_path):
    shutil.copy(path("llama"), tmp_path / "model.safetensors")  # no config.json beside it
    with pytest.raises(ModscopeError) as exc:
        load_graph(tmp_path / "model.safetensors")
    text = refused(exc)
    assert "k_proj.weight" in text and "head_dim" in text and "config.json" in text
    # the head size given by hand reads it as the fixture with its config.json does
    given = family_graph(tensors("llama"), config={"head_dim": 4, "model_type": "llama"}).graph
    for a, b in zip(given.weights, graph("llama").weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_numbers_no_shape_holds_are_asked_for():
    with pytest.raises(ModscopeError) as exc:
        family_graph(tensors("gpt_neox"))
    assert "num_attention_heads" in refused(exc)
    with pytest.raises(ModscopeError) as exc:
        family_graph(tensors("t5"))  # a tied LM head or none: config.json's architectures says
    assert "architectures" in refused(exc)
    with pytest.raises(ModscopeError) as exc:
        family_graph(tensors("llama"), config={"model_type": "gemma", "head_dim": 4})
    assert "gemma" in refused(exc)
    with pytest.raises(ModscopeError) as exc:
        family_graph(tensors("mobilenet_v3"), config={"strides": [1, 2]})
    assert "strides" in refused(exc)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda sd: sd.update({"bert.encoder.layer.1.intermediate.dense.weight": np.ones((25, 16))}),
         ["bert.encoder.layer.1.intermediate.dense.weight", "shape 25x16", "24x16"]),
        (lambda sd: sd.pop("bert.encoder.layer.1.output.dense.weight"),
         ["bert.encoder.layer.1.output.dense.weight", "missing"]),
        (lambda sd: sd.update({"bert.encoder.layer.1.extra.weight": np.ones((4, 4))}),
         ["bert.encoder.layer.1.extra.weight", "not a tensor"]),
    ],
)
def test_a_bert_that_does_not_fit_is_refused_never_chained(tmp_path, change, words):
    sd = tensors("bert")
    change(sd)
    save_file({k: np.asarray(v, dtype=np.float32) for k, v in sd.items()}, str(tmp_path / "m.safetensors"))
    with pytest.raises(ModscopeError) as exc:
        load_graph(tmp_path / "m.safetensors")
    text = refused(exc)
    assert all(w in text for w in words) and ".pt2" in text


def test_data_parallel_prefix_is_stripped():
    sd = {f"module.{k}": v for k, v in tensors("bert").items()}
    g = load_graph(sd)
    assert g.sizes == graph("bert").sizes
    for a, b in zip(g.weights, graph("bert").weights, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "name, n, d, d_ff, first",
    [
        ("bert", 2, 16, 24, "bert.encoder.layer.0"),
        ("llama", 2, 16, 24, "model.layers.0.mlp"),
        ("gpt_neox", 2, 16, 24, "gpt_neox.layers.0.mlp"),
        ("t5", 5, 16, 24, "encoder.block.0.layer.1.DenseReluDense"),
    ],
)
def test_mlp_blocks_come_from_the_family_graph(name, n, d, d_ff, first):
    blocks = mlp_blocks(path(name))
    assert len(blocks) == n and blocks[0].name == first
    assert all(b.w_in.shape == (d_ff, d) and b.w_out.shape == (d, d_ff) for b in blocks)
    sd = {k: v.astype(np.float64) for k, v in tensors(name).items()}
    b = blocks[1]
    if name == "llama":  # SwiGLU: |gate| + |up| per unit pair, the RMSNorm gain on the columns
        p = "model.layers.1."
        w = np.abs(sd[p + "mlp.gate_proj.weight"]) + np.abs(sd[p + "mlp.up_proj.weight"])
        expected = w * np.abs(sd[p + "post_attention_layernorm.weight"])
        np.testing.assert_allclose(b.w_in, expected, rtol=1e-12)
        np.testing.assert_allclose(b.w_out, sd[p + "mlp.down_proj.weight"], rtol=1e-12)
    elif name == "bert":  # post-LN: the attention block's LayerNorm gain on the columns
        p = "bert.encoder.layer.1."
        gain = np.abs(sd[p + "attention.output.LayerNorm.weight"])
        np.testing.assert_allclose(b.w_in, sd[p + "intermediate.dense.weight"] * gain, rtol=1e-12)
    elif name == "gpt_neox":
        p = "gpt_neox.layers.1."
        gain = np.abs(sd[p + "post_attention_layernorm.weight"])
        np.testing.assert_allclose(b.w_in, sd[p + "mlp.dense_h_to_4h.weight"] * gain, rtol=1e-12)
    else:  # T5 v1.1: gated-GELU wi_0 and wi_1 on the same hidden units, the norm's gain folded
        p = "encoder.block.1.layer.1."
        w = np.abs(sd[p + "DenseReluDense.wi_0.weight"]) + np.abs(sd[p + "DenseReluDense.wi_1.weight"])
        np.testing.assert_allclose(b.w_in, w * np.abs(sd[p + "layer_norm.weight"]), rtol=1e-12)
        assert blocks[2].name == "decoder.block.0.layer.2.DenseReluDense"


def test_a_cnn_family_has_no_mlp_blocks():
    with pytest.raises(ModscopeError, match="no transformer MLP blocks"):
        mlp_blocks(tensors("resnet"))


def test_cli_scores_a_bert_and_the_blocks_of_a_llama(capsys):
    assert main(["score", str(path("bert")), "--clusters", "2", "--shuffles", "3", "--no-progress"]) == 0
    assert "BERT" in capsys.readouterr().out
    assert main(["blocks", str(path("llama")), "--clusters", "2", "--shuffles", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 MLP blocks" in out and "model.layers.1.mlp" in out
