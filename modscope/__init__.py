"""modscope: is this trained network modular, how much more than chance, and which parts do which job?

The public API is the names below; ``import modscope`` loads none of them (nor numpy, torch or
scikit-learn) until one is used, so the command line starts at once. Everything else is
reachable under its package (``modscope.graphs``, ``modscope.clustering``, ``modscope.nulls``,
``modscope.scoring``, ``modscope.training``, ``modscope.lesions``, ``modscope.masks``,
``modscope.report``, ``modscope.workflows``) and documented in ARCHITECTURE.md as internal.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ModscopeError

# public name -> the module that defines it
_API = {
    "ActivationGraph": "modscope.graphs.activations",
    "Data": "modscope.data.dataset",
    "Partition": "modscope.clustering.spectral",
    "ScoreResult": "modscope.scoring.result",
    "SpectralClusterer": "modscope.clustering.spectral",
    "WeightGraph": "modscope.graphs.weight_graph",
    "KnockoutConfig": "modscope.lesions.knockout",
    "MaskConfig": "modscope.masks.fit",
    "Network": "modscope.graphs.network",
    "TrainConfig": "modscope.training.trainer",
    "activation_graph": "modscope.graphs.activations",
    "alignment": "modscope.masks.alignment",
    "cluster": "modscope.clustering.spectral",
    "explore": "modscope.report.explore",
    "fit_model": "modscope.training.fit",
    "get_task": "modscope.tasks.registry",
    "knockout": "modscope.lesions.knockout",
    "load_checkpoint": "modscope.training.checkpoint",
    "load_data": "modscope.data.dataset",
    "load_graph": "modscope.graphs.load",
    "load_weights": "modscope.graphs.load",
    "ncut": "modscope.clustering.ncut",
    "network": "modscope.graphs.network",
    "score": "modscope.scoring.engine",
    "score_blocks": "modscope.scoring.blocks",
    "train": "modscope.training.trainer",
    "train_masks": "modscope.masks.fit",
}

__all__ = [
    "ActivationGraph",
    "Data",
    "KnockoutConfig",
    "MaskConfig",
    "ModscopeError",
    "Network",
    "Partition",
    "ScoreResult",
    "SpectralClusterer",
    "TrainConfig",
    "WeightGraph",
    "__version__",
    "activation_graph",
    "alignment",
    "cluster",
    "explore",
    "fit_model",
    "get_task",
    "knockout",
    "load_checkpoint",
    "load_data",
    "load_graph",
    "load_weights",
    "ncut",
    "network",
    "score",
    "score_blocks",
    "train",
    "train_masks",
]

if TYPE_CHECKING:
    from .clustering.ncut import ncut
    from .clustering.spectral import Partition, SpectralClusterer, cluster
    from .data.dataset import Data, load_data
    from .graphs.activations import ActivationGraph, activation_graph
    from .graphs.load import load_graph, load_weights
    from .graphs.network import Network, network
    from .graphs.weight_graph import WeightGraph
    from .lesions.knockout import KnockoutConfig, knockout
    from .masks.alignment import alignment
    from .masks.fit import MaskConfig, train_masks
    from .report.explore import explore
    from .scoring.blocks import score_blocks
    from .scoring.engine import score
    from .scoring.result import ScoreResult
    from .tasks.registry import get_task
    from .training.checkpoint import load_checkpoint
    from .training.fit import fit_model
    from .training.trainer import TrainConfig, train


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'modscope' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
