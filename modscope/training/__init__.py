"""Training comparison models: the MLPs modscope trains, its checkpoint files, the trainer (plain,
dropout, L1/L2, magnitude pruning) and BIMT (spec §6)."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint, task_for_checkpoint
from .models import MLP, Architecture
from .trainer import TrainConfig, TrainResult, train

__all__ = [
    "MLP",
    "Architecture",
    "Checkpoint",
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "save_checkpoint",
    "task_for_checkpoint",
    "train",
]
