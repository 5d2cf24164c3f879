"""Known families read from key names alone vs the real libraries' models, traced (issue 16).

For every case a small random model of the real library (transformers, torchvision, timm) is
built, its weights saved the way users get them (``save_pretrained`` safetensors for Hugging Face,
whose on-disk names differ from the in-memory ones in transformers 5; ``state_dict()`` for
torchvision and timm), and two graphs are compared: the real model traced with
`modscope.graphs.tracing.trace_graph`, and `modscope.graphs.families.family_graph` of the saved
tensors alone (with the ``config.json`` ``save_pretrained`` wrote, for the families that need it).
Per case: the family's config, nodes, edges, groups, blocks, whether sizes, links and block
weights are equal, and the largest absolute difference of the block weights. Negative controls
(a wrong head count for GPT-NeoX, a wrong head size for LLaMA, wrong strides for MobileNetV3)
show the numbers taken from ``config.json`` change the graph. ``--full`` adds torchvision's
full-size builders (structure only: random weights, no download).

It runs in an environment with the real libraries, not modscope's own (CI has none of them):

    PYTHONPATH=. /work/scratch/venv2/bin/python experiments/families_vs_reference.py \\
        --full --out experiments/families_vs_reference.json

Two things of that environment, said here so a rerun elsewhere knows them:

- torchvision 0.28's compiled extension does not load against torch 2.13 (CPU); the pure-Python
  model builders work once an empty module stands in for ``torchvision._meta_registrations``,
  which this script puts in place before importing torchvision (transformers imports it too).
- modscope's tracer follows the real libraries' attention-mask code (comparisons, ``cumsum``,
  ``__and__`` on tensors that carry no unit give tensors without units), T5's position buckets
  (``aten.min.other``, elementwise) and timm's ViT stream (units compared by their merged root):
  no patch is applied here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))

import torch  # noqa: E402

from modscope.graphs.families import family_graph, read_config  # noqa: E402
from modscope.graphs.tracing import trace_graph  # noqa: E402
from modscope.graphs.weight_graph import WeightGraph  # noqa: E402
from modscope.runtime.receipts import write_receipt  # noqa: E402

# -- the cases ----------------------------------------------------------------------------------------
IDS = torch.tensor([[1, 2, 3, 4]])


def jitter(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights away from their init (norm gains off 1, BatchNorm statistics off 0 / 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 1.5 + 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
    return model.eval()


def hf(cls_name: str, config_name: str, **config: Any) -> Callable[[], Any]:
    def build():
        import transformers

        return getattr(transformers, cls_name)(getattr(transformers, config_name)(**config))

    return build


TEXT = {"vocab_size": 50, "max_position_embeddings": 16}
BERT = dict(TEXT, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=24)
LLAMA = dict(BERT, num_key_value_heads=2)
T5 = {"vocab_size": 50, "d_model": 16, "d_kv": 6, "d_ff": 24, "num_layers": 2, "num_heads": 4}
VIT = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 24}
VIT.update(image_size=8, patch_size=4, num_labels=3)


def tiny_resnet(bottleneck: bool) -> torch.nn.Module:
    """torchvision's ResNet class and blocks at tiny widths (the builders fix 64..512)."""
    from torchvision.models import resnet as R

    block = R.Bottleneck if bottleneck else R.BasicBlock
    m = R.ResNet(block, [1, 1, 1, 1], num_classes=3, groups=2 if bottleneck else 1)
    m.inplanes = 4
    m.conv1 = torch.nn.Conv2d(3, 4, 7, 2, 3, bias=False)
    m.bn1 = torch.nn.BatchNorm2d(4)
    planes = (2, 2, 4, 4) if bottleneck else (4, 8, 8, 16)
    m.layer1 = m._make_layer(block, planes[0], 2)
    for i, p in enumerate(planes[1:], start=2):
        setattr(m, f"layer{i}", m._make_layer(block, p, 1, stride=2))
    m.fc = torch.nn.Linear(planes[-1] * block.expansion, 3)
    return m


def tiny_vgg(bn: bool) -> torch.nn.Module:
    """torchvision's VGG on a small ``make_layers`` config; its 4096-wide head made 10 wide."""
    from torch import nn
    from torchvision.models import vgg as V

    m = V.VGG(V.make_layers([4, "M", 8, "M", 8, 8, "M"], batch_norm=bn), num_classes=3, init_weights=False)
    m.classifier = nn.Sequential(
        nn.Linear(8 * 49, 10),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(10, 10),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(10, 3),
    )
    return m


def tiny_mobilenet_v2() -> torch.nn.Module:
    """torchvision's MobileNetV2 (the standard 17 blocks) at width 0.1 (channels rounded to 2);
    its 1280-wide last conv made 16 wide (torchvision fixes 1280)."""
    from torchvision.models import mobilenetv2 as M2
    from torchvision.ops.misc import Conv2dNormActivation

    m = M2.MobileNetV2(num_classes=3, width_mult=0.1, round_nearest=2)
    c_last = m.features[-1][0].in_channels
    m.features[-1] = Conv2dNormActivation(
        c_last, 16, kernel_size=1, norm_layer=torch.nn.BatchNorm2d, activation_layer=torch.nn.ReLU6
    )
    m.classifier[1] = torch.nn.Linear(16, 3)
    return m


def tiny_mobilenet_v3(arch: str) -> torch.nn.Module:
    from torchvision.models import mobilenetv3 as M3

    setting, _ = M3._mobilenet_v3_conf(arch, width_mult=0.1)
    return M3.MobileNetV3(setting, last_channel=16, num_classes=3)


def timm_vit(**kw: Any) -> Callable[[], Any]:
    def build():
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(
            img_size=8, patch_size=4, embed_dim=16, depth=2, num_heads=4, mlp_ratio=1.5, **kw
        )

    return build


def full(name: str) -> Callable[[], Any]:
    def build():
        import torchvision

        return getattr(torchvision.models, name)()

    return build


IMAGE = torch.zeros(1, 3, 32, 32)
CAUSAL = {"use_cache": False}
# name -> (family, builder, example input, keyword arguments of the real model's forward).
# A Hugging Face model's config.json (from save_pretrained) is always beside its weights.
CASES: dict[str, tuple[str, Callable[[], Any], Any, dict | None]] = {
    "resnet_basic": ("resnet", lambda: tiny_resnet(False), torch.zeros(1, 3, 64, 64), None),
    "resnet_bottleneck_grouped": ("resnet", lambda: tiny_resnet(True), torch.zeros(1, 3, 64, 64), None),
    "vgg": ("vgg", lambda: tiny_vgg(False), IMAGE, None),
    "vgg_bn": ("vgg", lambda: tiny_vgg(True), IMAGE, None),
    "mobilenet_v2": ("mobilenet_v2", tiny_mobilenet_v2, IMAGE, None),
    "mobilenet_v3_small": ("mobilenet_v3", lambda: tiny_mobilenet_v3("mobilenet_v3_small"), IMAGE, None),
    "mobilenet_v3_large": ("mobilenet_v3", lambda: tiny_mobilenet_v3("mobilenet_v3_large"), IMAGE, None),
    "bert_classifier": (
        "bert",
        hf("BertForSequenceClassification", "BertConfig", **BERT),
        IDS,
        {"token_type_ids": torch.zeros_like(IDS)},
    ),
    "bert_base": (
        "bert",
        hf("BertModel", "BertConfig", **BERT),
        IDS,
        {"token_type_ids": torch.zeros_like(IDS)},
    ),
    "bert_masked_lm": (
        "bert",
        hf("BertForMaskedLM", "BertConfig", **BERT),
        IDS,
        {"token_type_ids": torch.zeros_like(IDS)},
    ),
    "bert_pretraining": (
        "bert",
        hf("BertForPreTraining", "BertConfig", **BERT),
        IDS,
        {"token_type_ids": torch.zeros_like(IDS)},
    ),
    "roberta_classifier": (
        "bert",
        hf("RobertaForSequenceClassification", "RobertaConfig", **dict(BERT, max_position_embeddings=18)),
        IDS,
        {"token_type_ids": torch.zeros_like(IDS)},
    ),
    "roberta_masked_lm": (
        "bert",
        hf("RobertaForMaskedLM", "RobertaConfig", **dict(BERT, max_position_embeddings=18)),
        IDS,
        {"token_type_ids": torch.zeros_like(IDS)},
    ),
    "gpt2_lm": (
        "gpt2",
        hf("GPT2LMHeadModel", "GPT2Config", vocab_size=50, n_embd=16, n_layer=2, n_head=4, n_positions=16),
        IDS,
        CAUSAL,
    ),
    "gpt2_base": (
        "gpt2",
        hf("GPT2Model", "GPT2Config", vocab_size=50, n_embd=16, n_layer=2, n_head=4, n_positions=16),
        IDS,
        CAUSAL,
    ),
    "gpt_neox": ("gpt_neox", hf("GPTNeoXForCausalLM", "GPTNeoXConfig", **BERT), IDS, CAUSAL),
    "gpt_neox_sequential": (
        "gpt_neox",
        hf("GPTNeoXForCausalLM", "GPTNeoXConfig", **BERT, use_parallel_residual=False),
        IDS,
        CAUSAL,
    ),
    "opt": (
        "opt",
        hf(
            "OPTForCausalLM",
            "OPTConfig",
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=24,
            max_position_embeddings=16,
            word_embed_proj_dim=16,
        ),
        IDS,
        CAUSAL,
    ),
    "opt_350m_layout": (
        "opt",
        hf(
            "OPTForCausalLM",
            "OPTConfig",
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=24,
            max_position_embeddings=16,
            word_embed_proj_dim=8,
            do_layer_norm_before=False,
        ),
        IDS,
        CAUSAL,
    ),
    "llama_gqa": ("llama", hf("LlamaForCausalLM", "LlamaConfig", **LLAMA), IDS, CAUSAL),
    "llama_gqa_head_dim": (
        "llama",
        hf("LlamaForCausalLM", "LlamaConfig", **LLAMA, head_dim=8, tie_word_embeddings=True),
        IDS,
        CAUSAL,
    ),
    "mistral_one_kv_head": (
        "llama",
        hf("MistralForCausalLM", "MistralConfig", **dict(LLAMA, num_key_value_heads=1)),
        IDS,
        CAUSAL,
    ),
    "qwen2_biases": ("llama", hf("Qwen2ForCausalLM", "Qwen2Config", **LLAMA), IDS, CAUSAL),
    "t5_v1_0": (
        "t5",
        hf("T5ForConditionalGeneration", "T5Config", **dict(T5, d_kv=4)),
        IDS,
        {"decoder_input_ids": IDS[:, :3], "use_cache": False},
    ),
    "t5_v1_1": (
        "t5",
        hf(
            "T5ForConditionalGeneration",
            "T5Config",
            **T5,
            num_decoder_layers=3,
            feed_forward_proj="gated-gelu",
        ),
        IDS,
        {"decoder_input_ids": IDS[:, :3], "use_cache": False},
    ),
    "t5_encoder": ("t5", hf("T5EncoderModel", "T5Config", **T5, feed_forward_proj="gated-gelu"), IDS, {}),
    "vit": ("vit", hf("ViTForImageClassification", "ViTConfig", **VIT), torch.zeros(1, 3, 8, 8), None),
    "vit_base": ("vit", hf("ViTModel", "ViTConfig", **VIT), torch.zeros(1, 3, 8, 8), None),
    "timm_vit": ("timm_vit", timm_vit(num_classes=3), torch.zeros(1, 3, 8, 8), None),
    "timm_vit_avg": ("timm_vit", timm_vit(num_classes=3, global_pool="avg"), torch.zeros(1, 3, 8, 8), None),
}
FULL = {
    f"full_{name}": (family, full(name), torch.zeros(1, 3, 64, 64), None)
    for family, names in (
        ("resnet", ("resnet18", "resnet50", "resnext50_32x4d")),
        ("vgg", ("vgg11", "vgg11_bn")),
        ("mobilenet_v2", ("mobilenet_v2",)),
        ("mobilenet_v3", ("mobilenet_v3_small", "mobilenet_v3_large")),
    )
    for name in names
}
# case -> (what is wrong, the config given instead of config.json): the graph must differ from the real one
CONTROLS = {
    "gpt_neox": ("2 heads instead of 4", {"num_attention_heads": 2}),
    "llama_gqa": ("head size 8 instead of 4", {"head_dim": 8, "model_type": "llama"}),
    "mobilenet_v3_small": ("every stride 1", {"strides": [1] * 11}),
}


def old_gpt2_buffers(tensors: dict[str, Any]) -> dict[str, Any]:
    """Old hub GPT-2 files carry each layer's causal mask and its fill value as buffers."""
    out = dict(tensors)
    for i in range(2):
        out[f"h.{i}.attn.bias"] = np.tril(np.ones((16, 16), dtype=np.float32))[None, None]
        out[f"h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    return out


# variants of a case's saved tensors: the real model and its graph are the case's own
VARIANTS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "gpt2_base_old_buffers": ("gpt2_base", old_gpt2_buffers),
    "resnet_basic_data_parallel": ("resnet_basic", lambda t: {f"module.{k}": v for k, v in t.items()}),
    "llama_gqa_bfloat16": ("llama_gqa", lambda t: t),  # saved in bfloat16, see `saved`
}


def saved(name: str, model: torch.nn.Module, folder: Path) -> tuple[dict[str, Any], dict | None]:
    """The tensors as a user gets them, and the config.json beside them (Hugging Face only)."""
    from modscope.graphs.files.formats import read_safetensors

    if name.endswith("bfloat16"):
        model = model.to(torch.bfloat16)
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(folder)
        tensors, config = read_safetensors(folder / "model.safetensors"), read_config(folder)
    else:
        tensors, config = {k: v.detach().contiguous().numpy() for k, v in model.state_dict().items()}, None
    if name in VARIANTS:
        tensors = VARIANTS[name][1](tensors)
    return tensors, config


def build(name: str, seed: int = 0) -> tuple[torch.nn.Module, Any, dict | None, str]:
    family, builder, example, kwargs = {**CASES, **FULL}[VARIANTS.get(name, (name,))[0]]
    torch.manual_seed(seed)
    model = jitter(builder(), seed)
    if name.endswith("bfloat16"):  # the real model at the precision of the file
        model = model.to(torch.bfloat16).to(torch.float32)
    return model, example, kwargs, family


def compare(a: WeightGraph, b: WeightGraph) -> tuple[bool, float | None]:
    """Equal sizes, links and block weights (rtol 1e-6), and the largest |difference| of the weights."""
    if a.sizes != b.sizes or a.links != b.links:
        return False, None
    pairs = list(zip(a.weights, b.weights, strict=True))
    diffs = [float(np.abs(x - y).max()) if x.shape == y.shape else np.inf for x, y in pairs]
    equal = all(x.shape == y.shape and np.allclose(x, y, rtol=1e-6, atol=0) for x, y in pairs)
    return equal, max(diffs)


def run_case(name: str, tmp: Path) -> dict[str, Any]:
    model, example, kwargs, family = build(name)
    real = trace_graph(model, example, kwargs=kwargs)
    tensors, config = saved(name, model, tmp / name)
    known = family_graph(tensors, config=config)
    equal, diff = compare(known.graph, real)
    row = {
        "case": name,
        "family": known.family,
        "expected_family": family,
        "config": known.config,
        "config_json_used": sorted(
            k
            for k in (
                "num_attention_heads",
                "head_dim",
                "architectures",
                "use_parallel_residual",
                "do_layer_norm_before",
            )
            if k in (config or {})
        ),
        "reading": known.graph.reading,
        "nodes": int(sum(real.sizes)),
        "edges": int(real.n_edges),
        "groups": len(real.sizes),
        "blocks": len(real.weights),
        "mlp_blocks": len(known.mlp_groups),
        "equal": bool(equal and known.family == family),
        "max_abs_difference": diff,
    }
    if name in CONTROLS:
        what, wrong = CONTROLS[name]
        other = family_graph(tensors, config=wrong).graph
        row["control"] = {"wrong": what, "config": wrong, "equal_to_real": compare(other, real)[0]}
    print(f"{name:28s} equal={row['equal']} nodes={row['nodes']} max|diff|={diff}", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="add torchvision's full-size builders")
    p.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    p.add_argument("--out", default="experiments/families_vs_reference.json")
    args = p.parse_args(argv)
    names = [c for c in args.cases.split(",") if c] or [*CASES, *VARIANTS, *(FULL if args.full else {})]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(n, Path(tmp)) for n in names]
    summary = {
        "cases": len(rows),
        "equal": sum(r["equal"] for r in rows),
        "families": sorted({r["family"] for r in rows}),
        "controls_differ": all(not r["control"]["equal_to_real"] for r in rows if "control" in r),
    }
    import timm
    import transformers

    write_receipt(
        args.out,
        {"summary": summary, "cases": rows},
        settings={
            "full": args.full,
            "cases": names,
            "rtol": 1e-6,
            "kernel_norm": "1",
            "transformers": transformers.__version__,
            "timm": timm.__version__,
        },
        note="tiny random models of the real libraries; --full: torchvision builders at full size",
    )
    print(summary)


if __name__ == "__main__":
    main()
