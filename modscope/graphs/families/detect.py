"""Which known family a state dict is, from its key names alone (no torch, no shapes).

Every family's `Family.matches` looks for its layout's characteristic keys (layer 0 complete,
with its norms, and the embedding or stem): a state dict that has them says what it is, and
`modscope.graphs.families.graph.family_graph` then checks every other key and shape before
reading it so. A ``module.`` prefix (``nn.DataParallel``) is looked through.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .base import Family
from .bert import Bert
from .gpt import GPT2, OPT, GPTNeoX
from .llama import Llama
from .t5 import T5
from .torchvision import VGG, MobileNetV2, MobileNetV3, ResNet
from .vit import HFViT, TimmViT

__all__ = ["DATA_PARALLEL", "FAMILIES", "match_family", "unwrap_keys"]

FAMILIES: tuple[Family, ...] = (
    ResNet(), VGG(), MobileNetV2(), MobileNetV3(), Bert(), GPT2(), GPTNeoX(), OPT(), Llama(), T5(), HFViT(),
    TimmViT(),
)

DATA_PARALLEL = "module."  # nn.DataParallel / DistributedDataParallel save every key under it


def unwrap_keys(tensors: Mapping[str, Any] | Collection[str]) -> list[str]:
    """The key names, without a ``module.`` prefix that every one of them has."""
    keys = list(tensors.keys() if isinstance(tensors, Mapping) else tensors)
    if keys and all(k.startswith(DATA_PARALLEL) for k in keys):
        keys = [k[len(DATA_PARALLEL) :] for k in keys]
    return keys


def match_family(tensors: Mapping[str, Any] | Collection[str]) -> Family | None:
    """The known family whose layout the key names are (a state dict or its keys), or None.

    Names only: a match says what the checkpoint claims to be; `family_graph` checks every
    shape before reading it so.
    """
    keys = set(unwrap_keys(tensors))
    return next((f for f in FAMILIES if f.matches(keys)), None)
