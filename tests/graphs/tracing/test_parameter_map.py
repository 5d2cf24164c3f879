"""One masks-to-units map (issue 23): where each parameter's entries write and read units, recorded by
the tracer (`trace_network(...).parameters`), read from a `WeightGraph`'s edge sets, or from a plain
stack's shapes. The three readings agree, and each agrees with counts made by hand from the
definition (a kept weight counts for the unit it writes into and the unit it reads from)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from modscope.errors import ModscopeError
from modscope.graphs.load import load_graph
from modscope.graphs.tracing import trace_network
from modscope.graphs.tracing.incidence import chain_parameter_map, graph_parameter_map
from modscope.masks.alignment import incident_counts
from modscope.training.models import MLP


class ConvBN(nn.Module):
    """conv -> BatchNorm -> ReLU -> conv -> global pooling -> Linear: a chain of three layers."""

    def __init__(self, groups: int = 1) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1, groups=groups)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.c2(torch.relu(self.bn(self.c1(x)))).mean((2, 3)))


class Residual(nn.Module):
    """stem writes a stream; a block (a, b) reads it and adds back into it; a Linear head."""

    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, c, 1)
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)
        self.fc = nn.Linear(c, 3)

    def forward(self, x):
        h = self.stem(x)
        h = h + self.b(torch.relu(self.a(h)))
        return self.fc(h.mean((2, 3)))


def _random_masks(net: nn.Module, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=g) > 0.5 for n, p in net.named_parameters() if p.ndim >= 2}


def _by_hand(graph, masks: dict[str, torch.Tensor], edges: dict[str, tuple[int, int]]) -> np.ndarray:
    """Counts from the definition: parameter ``n`` joins group ``edges[n][0]`` (its columns) to group
    ``edges[n][1]`` (its rows); every kept entry counts once for its row's unit and once for its
    column's."""
    counts = np.zeros(graph.n_nodes, dtype=np.int64)
    for n, (gs, gd) in edges.items():
        m = masks[n].reshape(masks[n].shape[0], masks[n].shape[1], -1).sum(2).numpy()
        counts[graph.group_nodes(gd)] += m.sum(1)
        counts[graph.group_nodes(gs)] += m.sum(0)
    return counts


@pytest.mark.parametrize(
    "make, x, edges",
    [
        (lambda: MLP([4, 6, 5, 2]), torch.zeros(1, 4),
         {"layers.0.weight": (0, 1), "layers.1.weight": (1, 2), "layers.2.weight": (2, 3)}),
        (ConvBN, torch.zeros(1, 2, 5, 5), {"c1.weight": (0, 1), "c2.weight": (1, 2), "fc.weight": (2, 3)}),
        # the stream (group 1) is written by stem and b and read by a and fc
        (Residual, torch.zeros(1, 2, 5, 5),
         {"stem.weight": (0, 1), "a.weight": (1, 2), "b.weight": (2, 1), "fc.weight": (1, 3)}),
    ],
    ids=["mlp", "conv-batchnorm", "residual"],
)
def test_traced_and_weights_only_maps_count_the_same_per_node(make, x, edges):
    torch.manual_seed(0)
    net = make().eval()
    masks = _random_masks(net)
    traced = trace_network(net, x)
    graph = load_graph(net, example_input=x)
    by_trace = traced.parameters.node_counts(masks)
    shapes = {n: tuple(m.shape) for n, m in masks.items()}
    by_graph = graph_parameter_map(graph, shapes).node_counts(masks)
    oracle = _by_hand(graph, masks, edges)
    np.testing.assert_array_equal(by_trace, oracle)
    np.testing.assert_array_equal(by_graph, oracle)
    assert traced.parameters.graph.n_nodes == graph.n_nodes and traced.parameters.unmapped == ()
    if len(set(edges.values())) == len(edges) and all(gd == gs + 1 for gs, gd in edges.values()):
        # a plain stack: its shapes alone say the same (the old feed-forward incident counts)
        counts, widths = incident_counts([[masks[n] for n in edges]])
        assert widths == list(graph.sizes)
        np.testing.assert_array_equal(counts[0], oracle)


def test_every_entry_of_a_map_names_its_two_units_without_materialising_them():
    net = MLP([3, 5, 2]).eval()
    units = trace_network(net, torch.zeros(1, 3)).parameters
    inc = {i.parameter: i for i in units.incidences}["layers.0.weight"]
    assert inc.rows.size + inc.cols.size == 5 + 3  # one node per row and per column, broadcast
    assert inc.dst.reshape(5, 3)[:, 0].tolist() == [3, 4, 5, 6, 7]  # hidden units after 3 inputs
    assert inc.src.reshape(5, 3)[0].tolist() == [0, 1, 2]


def test_grouped_convolutions_join_each_output_to_its_groups_inputs_only():
    net = ConvBN(groups=2).eval()
    units = trace_network(net, torch.zeros(1, 2, 5, 5)).parameters
    inc = {i.parameter: i for i in units.incidences}["c2.weight"]
    dst, src = inc.dst.reshape(6, 2, 9)[..., 0], inc.src.reshape(6, 2, 9)[..., 0]
    first_in, first_out = 2, 6  # 2 input nodes, then c1's 4 channels, then c2's 6
    assert (src[:3] - first_in).tolist() == [[0, 1]] * 3 and (src[3:] - first_in).tolist() == [[2, 3]] * 3
    assert (dst[:, 0] - first_out).tolist() == list(range(6))
    graph = load_graph(net, example_input=torch.zeros(1, 2, 5, 5))
    with pytest.raises(ModscopeError, match="trace_network"):  # (6, 2) rows x columns: not its 6 x 4 block
        graph_parameter_map(graph, {n: tuple(m.shape) for n, m in _random_masks(net).items()})


def test_a_chain_refuses_shapes_that_do_not_chain():
    with pytest.raises(ModscopeError, match="not a plain feed-forward stack"):
        chain_parameter_map([(6, 4), (3, 5)])
    with pytest.raises(ModscopeError, match="out, in"):
        chain_parameter_map([(6,)])
    units = chain_parameter_map([(6, 4, 3, 3), (2, 6)])
    assert list(units.graph.sizes) == [4, 6, 2] and units.hidden_groups().tolist() == [False, True, False]
