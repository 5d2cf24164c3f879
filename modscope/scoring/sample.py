"""One null sample's value: the unit every executor runs (`modscope.scoring.engine`)."""

from __future__ import annotations

import numpy as np

from ..graphs.weight_graph import WeightGraph
from ..nulls import Null
from ..runtime.seeds import child_seed
from ..runtime.threads import single_thread
from .measures import Measure

__all__ = ["null_value"]


def null_value(graph: WeightGraph, null: Null, measure: Measure, ss: np.random.SeedSequence) -> float:
    """The measure on one null sample, on one thread: the same bits whatever runs it."""
    measure = measure.single_threaded()
    with single_thread():
        return float(measure.evaluate(null.sample(graph, child_seed(ss, 0)), child_seed(ss, 1))[0])
