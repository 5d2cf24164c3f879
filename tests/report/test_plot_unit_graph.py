"""`plot.network` of any traced unit graph (issue 27): a residual CNN and a transformer drawn in the
layout `modscope explore` uses, every unit drawn, each residual stream once per block boundary,
rows in depth order; one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure

import modscope
from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph
from modscope.report import plot
from modscope.report.layout import edge_list, group_depths, unit_layout
from modscope.training.architectures import DigitTransformer, ResidualCNN
from tests.helpers.graphs import stream_with_three_blocks


@pytest.fixture(scope="module")
def cnn() -> modscope.Network:
    """Stage 1: two blocks on a 4-channel stream; stage 2: a projection block that starts an
    8-channel stream, then one block on it."""
    torch.manual_seed(0)
    model = ResidualCNN(image=(1, 8, 8), widths=(4, 8), blocks=2, classes=3).eval()
    return modscope.network(model, example_input=torch.zeros(1, 1, 8, 8))


@pytest.fixture(scope="module")
def transformer() -> modscope.Network:
    """Two pre-LN layers (attention with 2 heads, then an MLP) on one merged 8-unit stream."""
    torch.manual_seed(0)
    model = DigitTransformer(digits=2, flag=0, groups=1, d=8, heads=2, layers=2, ff=16).eval()
    return modscope.network(model, example_input=torch.zeros(1, 20))


def _lines(fig: Figure) -> LineCollection:
    (lines,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    return lines


def _points(fig: Figure) -> np.ndarray:
    return np.concatenate([c.get_offsets() for c in fig.axes[0].collections if isinstance(c, PathCollection)])


def _row_names(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_yticklabels()]


def _blocks_writing(graph: WeightGraph, stream: int) -> int:
    """Groups that read the stream and write back into it: the blocks on it (the oracle)."""
    reads = {d for s, d in graph.links if s == stream and d != stream}
    return sum(1 for s, d in graph.links if d == stream and s in reads)


def test_a_residual_cnn_draws_every_unit_and_each_stream_once_per_block_boundary(cnn):
    g = cnn.graph
    fig = plot.network(cnn)
    lay = unit_layout(g, unroll_streams=True)
    streams = [i for i, n in enumerate(g.group_names) if "merged" in n]
    assert list(lay.streams) == streams and len(streams) == 2  # one stream per stage
    names = _row_names(fig)
    for s in streams:  # a copy before the stage's first block and one after each block
        copies = [n for n in names if n.startswith(g.group_names[s] + " [")]
        assert len(copies) == 1 + _blocks_writing(g, s)
    assert [len([n for n in names if n.startswith(g.group_names[s])]) for s in streams] == [3, 2]
    # every unit drawn; a stream's units once per copy
    extra = sum((_blocks_writing(g, s)) * g.sizes[s] for s in streams)
    assert len(_points(fig)) == g.n_nodes + extra
    groups = {p.group for p in lay.placements}
    assert groups == set(range(g.n_layers))
    # rows in depth order: the input at the bottom, the head on top, every line goes up a row or more
    assert names[0] == g.group_names[0] and names[-1] == "head"
    segs = np.asarray(_lines(fig).get_segments())
    assert (segs[:, -1, 1] > segs[:, 0, 1]).all()


def test_a_transformer_stream_sits_between_its_attention_and_mlp_rows(transformer):
    g = transformer.graph
    fig = plot.network(transformer, title="tiny transformer")
    stream = g.group_names[0]
    # the trace's order: each layer's attention values (qkv, both heads as one group), then its MLP
    blocks = ["layers.0.qkv", "layers.0.fc1", "layers.1.qkv", "layers.1.fc1"]
    expected = [f"{stream} [0]"]
    for i, b in enumerate(blocks):
        expected += [b, f"{stream} [{i + 1}]"]
    assert _row_names(fig) == [*expected, "head"]
    assert len(_points(fig)) == g.n_nodes + 4 * g.sizes[0]
    edges = edge_list(g)
    assert len(_lines(fig).get_segments()) == int((edges.f >= 0.005).sum())
    assert fig.axes[0].get_title() == "tiny transformer"


def test_line_widths_signs_and_the_quantile_per_edge_set(transformer):
    g = transformer.graph
    edges = edge_list(g)
    lines = _lines(plot.network(g, max_width=2.0))
    drawn = edges.f[edges.f >= 0.005]
    assert sorted(lines.get_linewidths()) == pytest.approx(sorted(2.0 * drawn), rel=1e-6)
    blue = np.asarray(lines.get_colors())[:, 2] > 0.5  # POSITIVE is blue, NEGATIVE red
    assert blue.sum() == int(((edges.w > 0) & (edges.f >= 0.005)).sum())
    q = _lines(plot.network(g, quantile=0.9))
    expect = sum(
        int((f >= max(np.quantile(f, 0.9), 0.005)).sum())
        for f in (edges.f[edges.block == b] for b in range(len(g.weights)))
    )
    assert len(q.get_segments()) == expect


def test_the_strongest_max_edges_are_drawn_and_the_figure_says_so(cnn):
    edges = edge_list(cnn.graph)
    fig = plot.network(cnn.graph, max_edges=50)
    widths = np.asarray(_lines(fig).get_linewidths())
    assert len(widths) == 50
    assert widths.min() / 2.5 >= np.sort(edges.f)[-50] - 1e-6  # the 50 strongest
    assert fig.axes[0].get_xlabel() == f"the strongest 50 of {edges.u.size:,} edges drawn"
    with pytest.raises(ModscopeError, match="max_edges"):
        plot.network(cnn.graph, max_edges=0)


def test_cluster_colours_with_bundles_and_checked_labels(cnn, tmp_path):
    g = cnn.graph
    labels = modscope.cluster(g, 3, seed=0).labels
    fig = plot.network(cnn, labels, bundle=True)
    colours = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]
    assert [c.get_label() for c in colours] == [f"cluster {k}" for k in range(3)]
    assert len(_lines(fig).get_segments()[0]) == 12  # curves through the clusters' centres
    assert plot.save(fig, tmp_path / "cnn.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ModscopeError, match="one entry per graph node"):
        plot.network(cnn, labels[:-1])
    with pytest.raises(ModscopeError, match="quantile"):
        plot.network(cnn, quantile=1.0)


def test_a_module_with_weights_outside_linear_layers_is_refused():
    with pytest.raises(ModscopeError, match=r"outside nn\.Linear.*modscope\.network"):
        plot.network(ResidualCNN(image=(1, 8, 8), widths=(4,), classes=3))


def test_unrolling_a_stream_read_and_written_by_three_blocks():
    g = stream_with_three_blocks()  # the stream, then three blocks that read it and write it back
    lay = unit_layout(g, unroll_streams=True)
    assert [(p.group, p.copy, p.row) for p in lay.placements] == [
        (0, 0, 0),
        (1, 0, 1),
        (0, 1, 2),
        (2, 0, 3),
        (0, 2, 4),
        (3, 0, 5),
        (0, 3, 6),
    ]
    assert lay.ends == ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6))
    once = unit_layout(g)  # the explorer's: one row for the stream, the blocks above it
    assert [p.row for p in once.placements] == group_depths(g).tolist() == [0, 1, 1, 1]


def test_an_acyclic_graph_is_drawn_once_per_group_either_way():
    rng = np.random.default_rng(0)
    w = [rng.random((3, 2)), rng.random((4, 3)), rng.random((4, 2))]  # 0->1->2 and a skip 0->2
    g = WeightGraph(tuple(w), links=((0, 1), (1, 2), (0, 2)), sizes=(2, 3, 4))
    assert unit_layout(g, unroll_streams=True) == unit_layout(g)
    fig = plot.network(g)
    assert len(_points(fig)) == g.n_nodes and _row_names(fig) == ["group0", "group1", "group2"]


def test_a_recurrent_groups_own_weights_are_arcs_above_its_row():
    rng = np.random.default_rng(0)
    w = [rng.random((3, 2)), rng.random((3, 3)), rng.random((2, 3))]  # input, hidden with h -> h, output
    g = WeightGraph(tuple(w), links=((0, 1), (1, 1), (1, 2)), sizes=(2, 3, 2))
    segs = np.asarray(_lines(plot.network(g)).get_segments())
    inside = np.isclose(segs[:, 0, 1], 1.0) & np.isclose(segs[:, -1, 1], 1.0)
    edges = edge_list(g)
    assert inside.sum() == int(((edges.block == 1) & (edges.f >= 0.005)).sum())  # every h -> h line
    apart = inside & ~np.isclose(segs[:, 0, 0], segs[:, -1, 0])  # all but a unit's own (a dot)
    assert apart.sum() >= 4 and (segs[apart, segs.shape[1] // 2, 1] > 1.0).all()  # above the row
