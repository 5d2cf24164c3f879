"""Training comparison models: the MLPs modscope trains, its checkpoint files, the trainer (plain,
dropout, L1/L2, magnitude pruning), BIMT ([spec §6][spec-6]) and training for clusterability
([spec §7][spec-7])."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint, task_for_checkpoint
from .clusterability import BlockClusterability, SpectralClusterability, spectral_penalty
from .models import MLP, Architecture
from .strategy import Regulariser
from .trainer import TrainConfig, TrainResult, train

__all__ = [
    "MLP",
    "Architecture",
    "BlockClusterability",
    "Checkpoint",
    "Regulariser",
    "SpectralClusterability",
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "save_checkpoint",
    "spectral_penalty",
    "task_for_checkpoint",
    "train",
]
