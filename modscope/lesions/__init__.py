"""Knockout (lesion) experiments ([spec §4][spec-4]): silence the units of each cluster, compare with random
same-size lesions, and remove functions' weight masks; every change to the model is undone."""

from .functions import FunctionKnockoutResult, function_knockout
from .inplace import lesion, masked, remove_weights, weight_masks
from .knockout import KnockoutConfig, knockout
from .results import KnockoutResult, PairResult, SubmoduleResult
from .submodules import Submodule, hidden_layer_labels, submodules

__all__ = [
    "FunctionKnockoutResult",
    "KnockoutConfig",
    "KnockoutResult",
    "PairResult",
    "Submodule",
    "SubmoduleResult",
    "function_knockout",
    "hidden_layer_labels",
    "knockout",
    "lesion",
    "masked",
    "remove_weights",
    "submodules",
    "weight_masks",
]
