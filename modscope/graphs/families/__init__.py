"""Known families read from a state dict's key names alone ([spec §1b][spec-1b]), as tracing the real model
would.

A checkpoint handed over without its code is recognised by its key names (`match_family`); its
sizes are read off the tensors' shapes, the few numbers no shape holds come from the
``config.json`` beside the weights (or ``config=``), and a modscope-owned reference module with
the checkpoint's own parameter names is traced (`family_graph`). A checkpoint that looks like a
family but does not fit it (a key missing or unexpected, a shape off, a number only its config
holds) is refused in one line, never guessed.

Families, by module (the key names that say each are in its docstring):

- `torchvision`: ResNet (basic / bottleneck, grouped), VGG (with or without BatchNorm),
  MobileNetV2, MobileNetV3 (small / large, squeeze-excitation);
- `bert`: Hugging Face BERT and RoBERTa (bare, ``bert.`` / ``roberta.`` with their heads);
- `gpt`: GPT-2 (bare or ``transformer.``), GPT-NeoX / Pythia, OPT (OPT-350m's post-LN too);
- `llama`: LLaMA / Mistral (RMSNorm, SwiGLU, grouped-query attention);
- `t5`: T5 v1.0 and v1.1 (gated-GELU), encoder-decoder or encoder only;
- `vit`: ViT in Hugging Face's and timm's layouts.
"""

from .base import WAY_OUT, Family, FamilyGraph
from .detect import FAMILIES, match_family
from .graph import family_graph, read_config

__all__ = ["FAMILIES", "WAY_OUT", "Family", "FamilyGraph", "family_graph", "match_family", "read_config"]
