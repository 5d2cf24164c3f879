"""`load_graph` and `load_weights`: the unit graph (or a plain stack's matrices) of any source,
thin wrappers of `modscope.network` (`modscope.graphs.network`), which says how each source is read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ModscopeError
from .network import Source, network
from .stacks import LayoutOption, not_a_plain_stack
from .weight_graph import WeightGraph

__all__ = ["LayoutOption", "Source", "load_graph", "load_weights", "not_a_plain_stack"]


def load_graph(
    source: Source, layers: Sequence[str] | None = None, layout: LayoutOption = "auto",
    trust_pickle: bool = False, *, example_input: Any = None, **options: Any,
) -> WeightGraph:
    """The unit graph ([spec §1][spec-1], [§1b][spec-1b]) of a checkpoint path, state dict,
    `Checkpoint`, ``nn.Module`` or `Network`: ``network(source, example_input, ...).graph``.
    ``options``: `modscope.network`'s (``kernel_norm``, ``flatten``, ``map_shape``, ``bn_eps``,
    ``input_shape``, ``input_axis``, ...). The graph's ``reading`` says how the source was read."""
    return network(
        source, example_input, layers=layers, layout=layout, trust_pickle=trust_pickle, **options
    ).graph


def load_weights(
    source: Source, layers: Sequence[str] | None = None, layout: LayoutOption = "auto",
    trust_pickle: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """``[(name, W)]`` of a plain stack in forward order, each ``W`` an ``(out, in)`` float array.

    Graphs that are not a chain (traced residual networks, transformers) have no such list:
    use `load_graph`.
    """
    graph = load_graph(source, layers, layout, trust_pickle)
    if not graph.is_chain:
        raise ModscopeError("the network is not a plain stack of layers: use load_graph for its unit graph")
    return list(zip(graph.names, graph.weights, strict=True))
