import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph


def test_node_order_and_edges_follow_spec():
    # 3-2-1 network: W1 is 2x3 (out x in), W2 is 1x2.
    w1 = np.array([[1.0, -2.0, 0.0], [0.0, 3.0, -4.0]])
    w2 = np.array([[5.0, -6.0]])
    g = WeightGraph.from_weights([w1, w2])
    assert g.layer_widths == (3, 2, 1)
    assert g.n_nodes == 6
    assert g.node_layer.tolist() == [0, 0, 0, 1, 1, 2]
    assert g.node_index.tolist() == [0, 1, 2, 0, 1, 0]
    A = g.adjacency.toarray()
    # edge between input j and hidden k is |W1[k, j]|; zeros are no edges; symmetric
    assert A[0, 3] == 1.0 and A[1, 3] == 2.0 and A[2, 3] == 0.0 and A[2, 4] == 4.0
    assert A[3, 5] == 5.0 and A[4, 5] == 6.0
    np.testing.assert_array_equal(A, A.T)
    assert g.n_edges == 6
    np.testing.assert_allclose(g.degree, A.sum(1))


def test_mlp_784_256x4_10_has_1818_nodes():
    ws = [np.ones((256, 784))] + [np.ones((256, 256))] * 3 + [np.ones((10, 256))]
    assert WeightGraph.from_weights(ws).n_nodes == 1818


def test_degree_zero_nodes_are_inactive():
    w1 = np.array([[1.0, 0.0], [0.0, 0.0]])
    w2 = np.array([[2.0, 0.0]])
    g = WeightGraph.from_weights([w1, w2])
    assert g.active.tolist() == [True, False, True, False, True]


def test_to_networkx_matches_adjacency():
    rng = np.random.default_rng(0)
    g = WeightGraph.from_weights([rng.normal(size=(4, 3)), rng.normal(size=(2, 4))])
    G = g.to_networkx()
    assert G.number_of_nodes() == 9 and G.number_of_edges() == g.n_edges
    assert G.nodes[5]["layer"] == 1 and G.nodes[5]["index"] == 2
    np.testing.assert_allclose(nx.to_numpy_array(G, nodelist=range(9)), g.adjacency.toarray())


@pytest.mark.parametrize(
    "weights, message",
    [
        ([np.ones((2, 3)), np.ones((1, 4))], "do not chain"),
        ([np.ones((2, 3)), np.full((1, 2), np.nan)], "NaN"),
        ([np.ones((2, 3)), np.full((1, 2), np.inf)], "NaN or infinite"),
        ([np.ones((0, 3))], "zero-width"),
        ([np.ones((2, 3), dtype=np.int64)], "floating point"),
        ([np.ones(3)], "2-D"),
    ],
)
def test_bad_weights_raise_clear_errors(weights, message):
    with pytest.raises(ModscopeError, match=message):
        WeightGraph.from_weights(weights)


@settings(max_examples=30, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.0, 1.0),
)
def test_adjacency_invariants(widths, seed, density):
    rng = np.random.default_rng(seed)
    ws = [
        rng.normal(size=(b, a)) * (rng.random((b, a)) < density)
        for a, b in zip(widths[:-1], widths[1:], strict=False)
    ]
    g = WeightGraph.from_weights(ws)
    A = g.adjacency.toarray()
    assert (A >= 0).all()
    np.testing.assert_array_equal(A, A.T)
    # only consecutive layers are linked: the graph is layered, hence bipartite
    la = g.node_layer
    i, j = np.nonzero(A)
    assert (np.abs(la[i] - la[j]) == 1).all()
    assert g.n_edges == sum(int((w != 0).sum()) for w in ws)
    np.testing.assert_allclose(A.sum(1), g.degree)


@pytest.mark.parametrize(("kwargs", "says"), [
    ({"names": ["a"]}, "1 names for 2 weight matrices"),
    ({"links": [(0, 1), (1, 2), (2, 2)], "sizes": [3, 4, 2]}, "3 links for 2 weight matrices"),
    ({"links": [(0, 1)], "sizes": [3, 4, 2]}, "1 links for 2 weight matrices"),
])
def test_names_and_links_must_match_the_weights_one_line(kwargs, says):
    weights = [np.ones((4, 3)), np.ones((2, 4))]
    with pytest.raises(ModscopeError, match=says) as err:
        WeightGraph.from_weights(weights, **kwargs)
    assert "\n" not in str(err.value)


def test_with_weights_keeps_everything_but_the_weights():
    """A shuffle's graph is the same architecture: names, links, sizes, reading and the groups'
    layer kinds (which name groups in messages) all kept."""
    from dataclasses import fields

    rng = np.random.default_rng(0)
    g = WeightGraph((rng.normal(size=(3, 2)), rng.normal(size=(2, 3))), ("a", "b"), ((0, 1), (1, 2)),
                    (2, 3, 2), ("x", "h", "y"), "read as a test", ("input", "Linear", "Linear"))
    other = g.with_weights([w * 2 for w in g.weights])
    for f in fields(WeightGraph):
        if f.name != "weights":
            assert getattr(other, f.name) == getattr(g, f.name), f.name
    assert other.group_label(1) == "h (Linear, 3 units)"
    np.testing.assert_array_equal(other.weights[1], 2 * g.weights[1])
