"""Write the known-family fixtures: each family's tiny random checkpoint as users get it, and the
graph tracing the *real* library model gives (`tests/graphs/families/test_families.py` checks
modscope's reading of the checkpoint alone against it, without transformers / torchvision / timm).

Per family a folder ``<family>/`` with ``model.safetensors`` (float32; Hugging Face's on-disk
names from ``save_pretrained``, torchvision's / timm's ``state_dict()``), ``config.json`` where the
family needs a number no shape holds (GPT-NeoX's heads, LLaMA's grouped-query head size, a tied
T5 head), and ``expected.npz`` (``sizes``, ``links``, ``w0`` ... the block weights in float32, and
the real trace's group and block names for reference). The models come from
``experiments/families_vs_reference.py`` (same builders, same seeds). It needs the real
libraries, so it runs in the scratch environment, from the repository root:

    PYTHONPATH=. /work/scratch/venv2/bin/python tests/data/families/make_fixtures.py
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]

# fixture -> (case of the experiment, whether its config.json is kept)
FIXTURES = {
    "resnet": ("resnet_basic", False),
    "resnet_bottleneck": ("resnet_bottleneck_grouped", False),
    "vgg_bn": ("vgg_bn", False),
    "mobilenet_v2": ("mobilenet_v2", False),
    "mobilenet_v3": ("mobilenet_v3_small", False),
    "bert": ("bert_classifier", False),
    "gpt2": ("gpt2_lm", False),
    "gpt_neox": ("gpt_neox", True),
    "opt": ("opt", False),
    "llama": ("llama_gqa", True),
    "t5": ("t5_v1_1", True),
    "vit": ("vit", False),
    "timm_vit": ("timm_vit", False),
}


def experiment():
    path = ROOT / "experiments" / "families_vs_reference.py"
    spec = importlib.util.spec_from_file_location("families_vs_reference", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    from safetensors.torch import save_file

    from modscope.graphs.families import family_graph, read_config
    from modscope.graphs.tracing import trace_graph

    exp = experiment()
    for name, (case, keep_config) in FIXTURES.items():
        model, example, kwargs, family = exp.build(case)
        real = trace_graph(model, example, kwargs=kwargs)
        out = HERE / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        with tempfile.TemporaryDirectory() as tmp:
            if hasattr(model, "save_pretrained"):
                model.save_pretrained(tmp)
                shutil.copy(Path(tmp) / "model.safetensors", out / "model.safetensors")
                if keep_config:
                    config = json.loads((Path(tmp) / "config.json").read_text())
                    (out / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
            else:
                state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
                save_file(state, str(out / "model.safetensors"))
        arrays = {f"w{i}": w.astype(np.float32) for i, w in enumerate(real.weights)}  # rtol 1e-6 holds
        np.savez_compressed(
            out / "expected.npz",
            sizes=np.asarray(real.sizes, dtype=np.int64),
            links=np.asarray(real.links, dtype=np.int64),
            group_names=np.asarray(real.group_names),
            names=np.asarray(real.names),
            **arrays,
        )
        # the fixture must read back as the real graph (here, with the real libraries at hand)
        from modscope.graphs.files.formats import read_safetensors

        known = family_graph(read_safetensors(out / "model.safetensors"), config=read_config(out))
        assert known.family == family and known.graph.sizes == real.sizes, name
        size = sum(f.stat().st_size for f in out.iterdir())
        print(f"{name:18s} {case:28s} {size / 1024:6.1f} KiB  {known.graph.reading}")
    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
