"""Scoring: one engine (`score`) evaluates any measure on a network and on samples of any null,
on any executor, and returns one result type."""

from .blocks import BlockScores, score_blocks
from .engine import null_values, score
from .measures import LayerLocalMeasure, Measure, ModularityMeasure, NcutMeasure, get_measure
from .result import ScoreResult

__all__ = [
    "BlockScores",
    "LayerLocalMeasure",
    "Measure",
    "ModularityMeasure",
    "NcutMeasure",
    "ScoreResult",
    "get_measure",
    "null_values",
    "score",
    "score_blocks",
]
