import json

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import adjusted_rand_score

from modscope.cli import main
from modscope.clustering import SpectralClusterer, layer_local, leiden, louvain, modularity
from modscope.errors import ModscopeError
from modscope.graphs.weight_graph import WeightGraph
from modscope.runtime.seeds import child_seed
from modscope.scoring import LayerLocalMeasure, ModularityMeasure, NcutMeasure, get_measure, score
from modscope.stats import compare_to_null
from tests.conftest import planted_weights

WIDTHS = [16, 12, 12, 6]


@pytest.fixture
def planted():
    ws, labels = planted_weights(WIDTHS, 3, np.random.default_rng(0))
    return WeightGraph.from_weights(ws), labels


def _nx_modularity(graph, labels, resolution=1.0):
    g = graph.to_networkx()
    comms = [set(np.flatnonzero(labels == c).tolist()) for c in range(labels.max() + 1)]
    return nx.community.modularity(g, [c for c in comms if c], weight="weight", resolution=resolution)


@pytest.mark.parametrize("resolution", [1.0, 0.5])
def test_modularity_matches_networkx(planted, resolution):
    graph, true = planted
    rng = np.random.default_rng(3)
    for labels in (true, rng.integers(0, 4, graph.n_nodes), np.zeros(graph.n_nodes, dtype=int)):
        want = _nx_modularity(graph, labels, resolution)
        assert modularity(graph, labels, resolution) == pytest.approx(want)
    # the planted partition is far more modular than a random one; one community gives Q = 0
    assert modularity(graph, true) > 0.5 > modularity(graph, rng.integers(0, 3, graph.n_nodes)) + 0.3
    assert modularity(graph, np.zeros(graph.n_nodes, dtype=int)) == pytest.approx(0.0, abs=1e-12)


def test_modularity_of_sparse_matrix_and_removed_nodes(planted):
    graph, true = planted
    ws = list(graph.weights)
    ws[0] = ws[0].copy()
    ws[0][:, 0] = 0.0  # input neuron 0 now has degree 0
    g = WeightGraph.from_weights(ws)
    labels = true.copy()
    labels[0] = -1
    q = modularity(g, labels)
    assert q == pytest.approx(modularity(sp.csr_matrix(g.adjacency), labels))
    keep = np.flatnonzero(labels >= 0)
    sub = g.to_networkx().subgraph(keep.tolist())
    comms = [set(keep[labels[keep] == c].tolist()) for c in range(3)]
    assert q == pytest.approx(nx.community.modularity(sub, comms, weight="weight"))
    with pytest.raises(ModscopeError, match="one label per node"):
        modularity(g, labels[:-1])


@pytest.mark.igraph
@pytest.mark.parametrize("find", [leiden, louvain])
def test_communities_recover_planted_modules(planted, find):
    graph, true = planted
    comms = find(graph, seed=0)
    assert comms.n_clusters == 3
    assert adjusted_rand_score(true, comms.labels) == 1.0
    assert comms.modularity == pytest.approx(modularity(graph, true))
    assert comms.sizes(graph).sum() == graph.n_nodes
    again = find(graph, seed=0)
    np.testing.assert_array_equal(comms.labels, again.labels)
    # labels are numbered by decreasing community size
    sizes = np.bincount(comms.labels)
    assert (np.diff(sizes) <= 0).all()


def _sbm(sizes, p_in, p_out, seed):
    """A weighted stochastic block model as a two-layer graph: both layers split into the same
    blocks, an edge with probability p_in inside a block and p_out across, |w| ~ U(0.5, 1.5)."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(len(sizes)), sizes)
    prob = np.where(block[:, None] == block[None, :], p_in, p_out)
    w = (rng.random(prob.shape) < prob) * rng.uniform(0.5, 1.5, prob.shape)
    return WeightGraph.from_weights([w]), np.concatenate([block, block])


@pytest.mark.igraph
@pytest.mark.parametrize("method", ["leiden", "louvain"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_community_q_is_networkx_q_and_sbm_blocks_are_found(method, seed):
    graph, blocks = _sbm([30, 30, 40], 0.4, 0.02, seed)
    comms = (leiden if method == "leiden" else louvain)(graph, seed=seed)
    assert adjusted_rand_score(blocks, comms.labels) > 0.9
    g = graph.to_networkx()
    parts = [set(np.flatnonzero(comms.labels == c).tolist()) for c in range(comms.n_clusters)]
    assert comms.modularity == pytest.approx(nx.community.modularity(g, parts, weight="weight"), abs=1e-12)
    # never worse than networkx's own Louvain on the same graph
    ref = nx.community.louvain_communities(g, weight="weight", seed=seed)
    assert comms.modularity >= nx.community.modularity(g, ref, weight="weight") - 1e-3
    assert comms.clustering["method"] == method


def test_community_detection_without_igraph_is_a_clear_error(monkeypatch, planted):
    import sys

    monkeypatch.setitem(sys.modules, "igraph", None)  # `import igraph` now raises ImportError
    with pytest.raises(ModscopeError, match=r"modscope\[community\]"):
        leiden(planted[0])


@pytest.mark.igraph
def test_louvain_score_against_shuffles(planted):
    graph, _ = planted
    result = score(graph, measure=ModularityMeasure(), n_shuffles=8, null="layer", seed=1)
    assert result.higher_is_modular and result.measure == "modularity"
    assert result.null.z > 5  # Q far above the shuffles
    assert result.null.p_value == pytest.approx(1 / 9)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["shuffle"]["method"] == "layer" and len(d["shuffle"]["values"]) == 8
    assert d["partition"]["n_clusters"] == 3


def test_layer_local_recovers_planted_hidden_layers(planted):
    graph, true = planted
    part = layer_local(graph, n_clusters=3, seed=0)
    assert part.layers == [1, 2]
    for layer, lab in zip(part.layers, part.labels, strict=True):
        planted_layer = true[graph.offsets[layer] : graph.offsets[layer + 1]]
        assert adjusted_rand_score(planted_layer, lab) == 1.0
    node = part.node_labels(graph)
    assert (node[: WIDTHS[0]] == -1).all() and (node[-WIDTHS[-1] :] == -1).all()
    assert (node[WIDTHS[0] : -WIDTHS[-1]] >= 0).all()
    # each local n-cut is the n-cut of the 3-layer graph's own spectral partition
    local = WeightGraph((graph.weights[0], graph.weights[1]))
    assert part.ncuts[0] == SpectralClusterer(3).partition(local, child_seed(0, 1)).ncut
    assert part.ncut == pytest.approx(part.ncuts.mean())
    df = part.to_frame()
    assert list(df["layer"]) == [1, 2] and df[["c0", "c1", "c2"]].sum(axis=1).tolist() == [12, 12]
    result = score(graph, measure=LayerLocalMeasure(3), n_shuffles=8, seed=0)
    assert result.null.z < -5 and result.null.p_value == pytest.approx(1 / 9)


def test_layer_local_needs_a_hidden_layer():
    g = WeightGraph.from_weights([np.ones((3, 4))])
    with pytest.raises(ModscopeError, match="hidden layer"):
        layer_local(g, 2)
    g = WeightGraph.from_weights([np.ones((3, 4)), np.ones((2, 3))])
    with pytest.raises(ModscopeError, match="cannot split"):
        layer_local(g, 9)


def test_every_way_to_name_the_ncut_measure_gives_the_same_result(planted):
    graph, _ = planted
    a = score(graph, n_clusters=3, n_shuffles=5, seed=4)
    b = score(graph, measure=NcutMeasure(SpectralClusterer(3)), n_shuffles=5, seed=4)
    c = score(graph, measure=SpectralClusterer(3), n_shuffles=5, seed=4)
    d = score(graph, measure="spectral", n_clusters=3, n_shuffles=5, seed=4)
    assert a.to_dict() == b.to_dict() == c.to_dict() == d.to_dict()
    np.testing.assert_array_equal(a.null.samples, b.null.samples)


def test_compare_to_null_counts_the_modular_side():
    high = compare_to_null(0.5, [0.1, 0.2, 0.6], higher_is_modular=True)
    low = compare_to_null(0.5, [0.1, 0.2, 0.6], higher_is_modular=False)
    assert high.p_value == pytest.approx(2 / 4) and low.p_value == pytest.approx(3 / 4)
    assert high.z == low.z


def test_get_measure_rejects_unknown_and_conflicting_settings():
    with pytest.raises(ModscopeError, match="unknown measure"):
        get_measure("infomap")
    # every name builds the measure it says
    assert isinstance(get_measure("modularity"), ModularityMeasure)
    assert get_measure("modularity").method == "leiden"
    assert get_measure("louvain").method == "louvain" and get_measure("leiden").name == "modularity"
    assert isinstance(get_measure("local", 3), LayerLocalMeasure) and get_measure("local", 3).n_clusters == 3
    assert isinstance(get_measure("spectral", 3), NcutMeasure)
    with pytest.raises(ModscopeError, match="n_clusters goes with a measure's name"):
        get_measure(SpectralClusterer(3), n_clusters=4)  # no silent winner
    with pytest.raises(ModscopeError, match="finds the number of communities itself"):
        get_measure("modularity", n_clusters=4)


@pytest.fixture
def planted_ckpt(tmp_path):
    ws, _ = planted_weights(WIDTHS, 3, np.random.default_rng(0))
    path = tmp_path / "planted.pt"
    torch.save({f"fc{i}.weight": torch.tensor(w, dtype=torch.float32) for i, w in enumerate(ws)}, path)
    return path


@pytest.mark.parametrize(
    "method, key",
    [pytest.param("leiden", "modularity", marks=pytest.mark.igraph),
     pytest.param("louvain", "modularity", marks=pytest.mark.igraph), ("local", "local_ncut")],
)
def test_cli_score_method(planted_ckpt, tmp_path, capsys, method, key):
    out = tmp_path / "r.json"
    rc = main(["score", str(planted_ckpt), "--method", method, "--clusters", "3", "--shuffles", "4",
               "--json", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert f"measure   {key}" in text and "z " in text
    d = json.loads(out.read_text())
    assert d["measure"] == key and d["shuffle"]["n"] == 4


def test_cli_units_null_needs_activations(planted_ckpt, capsys):
    assert main(["score", str(planted_ckpt), "--shuffle-method", "units", "--no-progress"]) == 2
    assert "activations" in capsys.readouterr().err
