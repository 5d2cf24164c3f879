"""Small weight graphs that several test files draw, lay out or explore."""

from __future__ import annotations

import numpy as np

from modscope.graphs.weight_graph import WeightGraph


def stream_with_three_blocks() -> WeightGraph:
    """A residual stream of 4 units (group 0) and three blocks of 3, 5 and 3 units (groups 1-3), each
    reading the stream and writing back to it: the shape of a merged transformer stream."""
    rng = np.random.default_rng(0)
    sizes = (4, 3, 5, 3)
    w, links = [], []
    for b in (1, 2, 3):
        w += [rng.random((sizes[b], 4)), rng.random((4, sizes[b]))]
        links += [(0, b), (b, 0)]
    return WeightGraph(tuple(w), links=tuple(links), sizes=sizes)
