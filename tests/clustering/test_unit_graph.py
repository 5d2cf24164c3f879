"""Graphs that are not chains (spec §1b): groups of units joined by blocks of weights.

The fast bipartite path is detected by 2-colouring and must agree with the plain definition (the
eigenvectors of the normalised adjacency) on residual-style graphs: a stream joined to many groups,
two blocks between the same pair of groups, isolated units. Graphs that are not bipartite (a block
inside a group, an odd cycle of groups) take the plain path.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from modscope import WeightGraph, cluster, score
from modscope.clustering.embedding import components, gram_side, spectral_embedding
from modscope.clustering.ncut import ncut, ncut_batch
from modscope.errors import ModscopeError
from modscope.nulls import shuffle_graph


def residual_graph(seed=0, d=10, hidden=(14, 12, 8), zero_unit=True) -> WeightGraph:
    """A merged-stream graph: input -> stream (embedding), blocks reading the stream into hidden
    groups and writing back (two blocks per hidden group, as an MLP's in and out), an output."""
    rng = np.random.default_rng(seed)
    sizes = [5, d, *hidden, 3]  # input, stream, hidden..., output
    ws, links, names = [rng.random((d, 5)) + 0.1], [(0, 1)], ["embed"]
    for i, h in enumerate(hidden):
        g = 2 + i
        ws += [rng.random((h, d)), rng.random((d, h))]
        links += [(1, g), (g, 1)]
        names += [f"block{i}.in", f"block{i}.out"]
    ws.append(rng.random((3, d)))
    links.append((1, len(sizes) - 1))
    names.append("head")
    if zero_unit:  # hidden unit 3 of block 0 reads and writes nothing: isolated
        ws[1][3, :] = 0.0
        ws[2][:, 3] = 0.0
    groups = ["input", "stream", *(f"h{i}" for i in range(len(hidden))), "out"]
    return WeightGraph.from_weights(ws, names, links=links, sizes=sizes, group_names=groups)


def dense_adjacency(g: WeightGraph) -> np.ndarray:
    return g.adjacency.toarray()


def brute_ncut(A: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for c in np.unique(labels[labels >= 0]):
        inside = labels == c
        vol = A[inside].sum()
        total += A[np.ix_(inside, ~inside & (labels >= 0))].sum() / vol
    return total


def test_structure_and_bipartiteness():
    g = residual_graph()
    assert not g.is_chain and g.n_layers == 6 and g.n_nodes == 5 + 10 + 14 + 12 + 8 + 3
    assert g.colours.tolist() == [0, 1, 0, 0, 0, 0]  # the stream against everything else
    assert gram_side(g).tolist() == [1]
    A = dense_adjacency(g)
    np.testing.assert_allclose(A, A.T)
    # the two blocks of a hidden group add up on the same pairs of units
    ws = g.abs_weights
    np.testing.assert_allclose(A[15:29, 5:15], ws[1] + ws[2].T)
    d = g.summary()
    assert [x["units"] for x in d["groups"]] == list(g.sizes)
    assert d["blocks"][1] == {"name": "block0.in", "from": 1, "to": 2}


@pytest.mark.parametrize("solver", ["bipartite", "iterative"])
def test_bipartite_paths_equal_the_definition_on_a_residual_graph(solver):
    g = residual_graph()
    fast, ev_fast, nodes = spectral_embedding(g, 4, solver, seed=0)
    plain, ev_plain, nodes2 = spectral_embedding(g, 4, "dense")
    np.testing.assert_array_equal(nodes, nodes2)
    assert 15 + 3 not in nodes  # the isolated hidden unit is left out
    np.testing.assert_allclose(ev_fast, ev_plain, atol=1e-10)
    np.testing.assert_allclose(np.abs(fast), np.abs(plain), atol=1e-7)


def test_stream_side_larger_than_the_rest():
    # the Gram side is the smaller colour class, whichever it is
    g = residual_graph(d=60, hidden=(6, 5))
    assert gram_side(g).tolist() == [0, 2, 3, 4]
    fast, ev_fast, _ = spectral_embedding(g, 3, "bipartite")
    _, ev_plain, _ = spectral_embedding(g, 3, "dense")
    np.testing.assert_allclose(ev_fast, ev_plain, atol=1e-10)


def test_graphs_that_are_not_bipartite_take_the_plain_path():
    rng = np.random.default_rng(1)
    # a recurrent block (within one group) makes the graph not bipartite; its diagonal is dropped
    rec = WeightGraph.from_weights([rng.random((6, 4)), rng.random((6, 6)), rng.random((2, 6))],
                                   links=[(0, 1), (1, 1), (1, 2)], sizes=[4, 6, 2])
    assert rec.colours is None and gram_side(rec) is None
    assert np.all(np.diag(rec.weights[1]) == 0)
    # an odd cycle of groups: a projection shortcut from stream 0 to stream 2 beside 0 -> 1 -> 2
    odd = WeightGraph.from_weights([rng.random((5, 4)), rng.random((3, 5)), rng.random((3, 4))],
                                   links=[(0, 1), (1, 2), (0, 2)], sizes=[4, 5, 3])
    assert odd.colours is None
    for g in (rec, odd):
        emb, ev, nodes = spectral_embedding(g, 2)
        _, ev_plain, _ = spectral_embedding(g, 2, "dense")
        np.testing.assert_allclose(ev, ev_plain)
        with pytest.raises(ModscopeError, match="bipartite"):
            spectral_embedding(g, 2, "bipartite")
        part = cluster(g, 2, seed=0)
        assert part.ncut == pytest.approx(brute_ncut(dense_adjacency(g), part.labels))


def test_ncut_batch_equals_the_definition_on_blocks():
    g = residual_graph()
    A = dense_adjacency(g)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=(5, g.n_nodes))
    labels[:, ~g.active] = -1
    cuts, _ = ncut_batch(g, labels)
    for r in range(5):
        assert cuts[r] == pytest.approx(brute_ncut(A, labels[r]))
        assert cuts[r] == pytest.approx(ncut(sp.csr_matrix(A), labels[r]))


def test_components_follow_blocks():
    g = residual_graph(zero_unit=False)
    n, lab = components(g)
    assert n == 1 and (lab >= 0).all()
    ws = list(g.weights)
    ws[-1] = np.zeros_like(ws[-1])  # the head disconnected: its output units are isolated
    cut = g.with_weights(ws)
    n, lab = components(cut)
    assert n == 1 and (lab[-3:] == -1).all()


def test_planted_groups_are_recovered_and_score_below_their_shuffles():
    """Two hidden groups read disjoint halves of the stream and write back into them: clusters
    are the halves, and the network is far more modular than its block-wise shuffles."""
    rng = np.random.default_rng(0)
    d, h = 16, 12
    half = np.arange(d) < d // 2
    def masked(rows, cols, on_rows, on_cols):
        w = rng.uniform(0.5, 1.5, (rows, cols))
        return w * np.outer(on_rows, on_cols) + 0.01 * w
    ws = [masked(h, d, np.ones(h), half), masked(d, h, half, np.ones(h)),
          masked(h, d, np.ones(h), ~half), masked(d, h, ~half, np.ones(h))]
    g = WeightGraph.from_weights(ws, links=[(0, 1), (1, 0), (0, 2), (2, 0)], sizes=[d, h, h])
    r = score(g, n_clusters=2, n_shuffles=10, seed=0)
    lab = r.partition.labels
    stream = lab[:d]
    assert len(set(stream[half])) == 1 and len(set(stream[~half])) == 1 and stream[0] != stream[-1]
    assert set(lab[d : d + h]) == {stream[0]} and set(lab[d + h :]) == {stream[-1]}
    assert r.null.z < -5 and r.null.p_value == pytest.approx(1 / 11)
    assert r.to_dict()["groups"][0]["units"] == d


def test_shuffles_act_per_block_and_keep_self_loops_out():
    rng = np.random.default_rng(2)
    g = WeightGraph.from_weights([rng.normal(size=(6, 4)), rng.normal(size=(6, 6)), rng.normal(size=(2, 6))],
                                 links=[(0, 1), (1, 1), (1, 2)], sizes=[4, 6, 2])
    s = shuffle_graph(g, "layer", np.random.SeedSequence(0))
    assert s.links == g.links and s.sizes == g.sizes
    for a, b in zip(g.weights, s.weights, strict=True):
        assert a.shape == b.shape
    assert np.all(np.diag(s.weights[1]) == 0)  # a weight shuffled onto the diagonal is dropped
    np.testing.assert_allclose(np.sort(s.weights[0].ravel()), np.sort(g.weights[0].ravel()))
    assert score(g, n_clusters=2, n_shuffles=3, seed=0).null.n == 3
