"""Functional modularity (Csordás et al. 2021, [spec §5][spec-5]): learned binary weight masks that find the
subnetwork each function needs, what their overlaps say, and how they line up with clusters.
Masks act on any architecture (Linear, convolution, recurrent and attention layers) and train on a
built-in task or on the user's data, streamed in batches."""

from .alignment import Alignment, alignment
from .fit import MaskConfig, fit_logits, train_masks
from .frozen import FrozenNet, maskable_names
from .measures import evaluate_streamed, overlap_measures
from .result import MaskResult, load_masks

__all__ = [
    "Alignment",
    "FrozenNet",
    "MaskConfig",
    "MaskResult",
    "alignment",
    "evaluate_streamed",
    "fit_logits",
    "load_masks",
    "maskable_names",
    "overlap_measures",
    "train_masks",
]
