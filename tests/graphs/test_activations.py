import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score
from torch import nn

from modscope.cli import main
from modscope.clustering.spectral import cluster
from modscope.errors import ModscopeError
from modscope.graphs.activations import activation_graph, standardised_ranks, unit_activations
from modscope.nulls import UnitPermutationNull
from modscope.scoring import score
from modscope.workflows.checkpoints import checkpoint_activation_graph
from tests.conftest import random_mlp

WIDTHS = [4, 8, 8, 2]


def _two_halves() -> nn.Sequential:
    """Two disconnected sub-networks: inputs 0,1 -> hidden 0-3 -> output 0; 2,3 -> 4-7 -> 1."""
    net = random_mlp(WIDTHS, seed=1)
    with torch.no_grad():
        for lin in (m for m in net if isinstance(m, nn.Linear)):
            o, i = lin.weight.shape
            same = (np.arange(o) * 2 // o)[:, None] == (np.arange(i) * 2 // i)[None, :]
            lin.weight.mul_(torch.tensor(same, dtype=torch.float32))
    return net


def _inputs(n=300) -> torch.Tensor:
    return torch.rand(n, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _halves_labels() -> np.ndarray:
    return np.concatenate([np.arange(w) * 2 // w for w in WIDTHS])


def test_standardised_ranks_give_spearman():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3))
    a[:, 1] = np.round(a[:, 0] ** 3 + 0.3 * a[:, 1], 1)  # monotone-related, with ties
    b = np.column_stack([np.exp(a[:, 0]), rng.normal(size=50), np.zeros(50)])  # last one constant
    za, zb = standardised_ranks(a), standardised_ranks(b)
    rho = za.T @ zb
    want = spearmanr(np.column_stack([a, b[:, :2]])).statistic[:3, 3:]
    np.testing.assert_allclose(rho[:, :2], want, atol=1e-12)
    assert (zb[:, 2] == 0).all() and (rho[:, 2] == 0).all()
    with pytest.raises(ModscopeError, match="examples >= 3"):
        standardised_ranks(a[:2])


def test_unit_activations_are_each_layers_input_and_the_output():
    net = random_mlp(WIDTHS, seed=0)
    x = _inputs(20)
    acts = unit_activations(net, x, batch_size=7)
    assert [a.shape for a in acts] == [(20, w) for w in WIDTHS]
    with torch.no_grad():
        h1 = torch.relu(net[0](x))
        np.testing.assert_allclose(acts[0], x.numpy())
        # batches of 7 against one batch of 20: float32 matmuls whose kernels (and so their sums'
        # order) depend on the BLAS and the batch size; 1e-6 held on one BLAS only
        np.testing.assert_allclose(acts[1], h1.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(acts[3], net(x).numpy(), rtol=1e-4, atol=1e-6)
    assert net.training  # mode restored


def test_graph_is_squared_correlation_of_consecutive_layers():
    net = random_mlp(WIDTHS, seed=0)
    ag = activation_graph(net, _inputs(60))
    acts = unit_activations(net, _inputs(60))
    assert ag.layer_widths == tuple(WIDTHS) and ag.n_examples == 60
    rho = spearmanr(np.column_stack([acts[1], acts[2]])).statistic[8:, :8]
    np.testing.assert_allclose(ag.weights[1], np.nan_to_num(rho) ** 2, atol=1e-12)


def test_two_independent_halves_form_two_correlation_clusters():
    ag = activation_graph(_two_halves(), _inputs())
    part = cluster(ag, 2, seed=0)
    keep = part.labels >= 0  # dead ReLUs (constant activations) have no edge
    assert keep.sum() >= 16
    assert adjusted_rand_score(_halves_labels()[keep], part.labels[keep]) == 1.0
    result = score(ag, n_clusters=2, n_shuffles=10, seed=0)
    assert result.shuffle_method == "units"
    assert result.null.z < -4 and result.null.p_value == pytest.approx(1 / 11)


def test_units_null_is_not_fooled_by_a_dense_network():
    """A dense random MLP's correlations are not modular: the units null says so, where the
    `layer` shuffle of the correlation matrices calls it modular (documented in the module)."""
    ag = activation_graph(random_mlp([4, 16, 16, 2], seed=2), _inputs())
    units = score(ag, n_clusters=2, n_shuffles=10, seed=0)
    layer = score(ag, n_clusters=2, n_shuffles=10, null="layer", seed=0)
    assert abs(units.null.z) < 2
    assert layer.null.z < -2


def test_unit_permutation_null_keeps_each_units_ranks():
    ag = activation_graph(random_mlp(WIDTHS, seed=0), _inputs(40))
    null = UnitPermutationNull()
    a = null.sample(ag, np.random.SeedSequence(5))
    b = null.sample(ag, np.random.SeedSequence(5))
    for wa, wb in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(wa, wb)
    rng = np.random.default_rng(np.random.SeedSequence(5))
    permuted = [rng.permuted(r, axis=0) for r in ag.ranks]
    for p, r in zip(permuted, ag.ranks, strict=True):
        np.testing.assert_array_equal(np.sort(p, axis=0), np.sort(r, axis=0))
    assert not np.allclose(a.weights[0], ag.weights[0])


@pytest.mark.igraph  # its last run is Louvain on the activation graph
def test_checkpoint_graph_and_cli(tmp_path, capsys):
    ag = checkpoint_activation_graph("data/independence-bimt.pt", max_examples=50)
    assert ag.layer_widths == (4, 20, 20, 2) and ag.n_examples == 50
    out = tmp_path / "a.json"
    rc = main(["score", "data/independence-bimt.pt", "--graph", "activations", "--clusters", "2",
               "--shuffles", "4", "--examples", "50", "--json", str(out), "--no-progress"])
    assert rc == 0
    assert "4 x units" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["shuffle"]["method"] == "units" and d["n_clusters"] == 2
    rc = main(["score", "data/independence-bimt.pt", "--graph", "activations", "--method", "louvain",
               "--shuffles", "3", "--no-progress"])
    assert rc == 0 and "modularity" in capsys.readouterr().out
    assert main(["score", "data/independence-bimt.pt", "--graph", "activations", "--kernel-norm", "l1"]) == 2
    with pytest.raises(ModscopeError, match="split"):
        checkpoint_activation_graph("data/independence-bimt.pt", split="valid")
