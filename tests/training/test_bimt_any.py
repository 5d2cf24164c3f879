"""BIMT on any architecture: node positions, the connection cost on the unit graph, the vectorised
swap deltas against a brute-force recomputation (CNN with BatchNorm and residuals, transformer with
heads, LSTM with recurrent edges inside its group), the MLP as one case of it, swaps that keep the
function, and a few training steps that lower the cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modscope.data.dataset import load_data
from modscope.errors import ModscopeError
from modscope.training.bimt import BIMT, BIMTConfig, BIMTStrategy, swap_deltas
from modscope.training.bimt_graph import GraphBIMT, bimt_strategy, unit_positions
from modscope.training.fit import fit_model
from modscope.training.models import Architecture
from modscope.training.permutation import permutable_groups
from modscope.training.trainer import init_model
from tests.helpers.permutable_nets import cases


def _cost(b, model) -> float:
    with torch.no_grad():
        return float(b.cost(model))


@pytest.mark.parametrize("case", ["cnn", "transformer", "lstm"])
@pytest.mark.parametrize(("metric", "reduction", "A"), [("l1", "sum", 2.0), ("l2", "mean", 1.0)])
def test_vectorised_deltas_equal_bruteforce(case, metric, reduction, A):
    model, x, _ = cases()[case]
    b = GraphBIMT(BIMTConfig(A=A, y_star=0.3, reduction=reduction), model, x[:1], metric=metric)
    for g, grp in enumerate(b.groups):
        for j in {0, grp.size // 2, grp.size - 1}:
            fast, slow = b.swap_deltas(model, g, j), b.swap_deltas_bruteforce(model, g, j)
            torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)


def test_the_mlp_is_one_case_of_the_unit_graph_cost():
    widths = (4, 7, 5, 3)
    net = init_model(Architecture(widths, activation="silu"), torch.Generator().manual_seed(0)).double()
    cfg = BIMTConfig(A=2.0, y_star=0.3)
    old = BIMT(cfg, widths, dtype=torch.float64)
    new = GraphBIMT(cfg, net, torch.randn(1, 4, dtype=torch.float64))
    assert [g.size for g in new.groups] == [7, 5]  # hidden layers; inputs and outputs stay
    assert _cost(old, net) == pytest.approx(_cost(new, net), rel=1e-12)
    for layer, g in ((1, 0), (2, 1)):
        for j in range(widths[layer]):
            torch.testing.assert_close(swap_deltas(old.cost, net, layer, j), new.swap_deltas(net, g, j))


def test_positions_grid_for_conv_channels_and_line_elsewhere():
    model, x, _ = cases()["cnn"]
    units = permutable_groups(model, x[:1])
    c = unit_positions(units)
    assert c.shape == (units.graph.n_nodes, 2)
    kinds = units.graph.group_kinds
    for g, kind in enumerate(kinds):
        block = c[units.graph.offsets[g] : units.graph.offsets[g + 1]]
        if kind.startswith("Conv") and block.shape[0] > 1:
            assert len(set(block[:, 1].tolist())) > 1  # rows of a grid
        else:
            assert torch.all(block[:, 1] == 0.5)


@pytest.mark.parametrize("case", ["cnn", "transformer"])
def test_swap_pass_lowers_the_cost_and_keeps_the_function(case):
    model, x, _ = cases()[case]
    model.eval()
    b = GraphBIMT(BIMTConfig(top_k=4), model, x[:1])
    with torch.no_grad():
        base = model(x)
    before = _cost(b, model)
    stats = b.swap_pass(model)
    after = _cost(b, model)
    assert stats.swaps > 0
    assert after == pytest.approx(before + stats.cost_change, abs=1e-9)
    assert after < before
    with torch.no_grad():
        torch.testing.assert_close(model(x), base, rtol=0, atol=1e-6)


def test_penalty_grad_equals_autograd():
    model, x, _ = cases()["transformer"]
    b = GraphBIMT(BIMTConfig(lam=0.01, bias_from=0.0), model, x[:1])
    model.zero_grad()
    b.penalty(model, 0, 10).backward()
    auto = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    b.add_penalty_grad(model, 0, 10)
    mine = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert auto.keys() == mine.keys() and auto
    for n in auto:
        torch.testing.assert_close(mine[n], auto[n])


@pytest.mark.parametrize("case", ["cnn", "transformer"])
def test_a_few_bimt_steps_lower_the_connection_cost(case):
    model, x, _ = cases()[case]
    torch.manual_seed(0)
    y = torch.randint(0, 3 if case == "cnn" else 10, (x.shape[0],))
    cfg = BIMTConfig(lam=0.05, schedule="constant", top_k=3, swap_every=5, threshold=0.0)
    strategy = BIMTStrategy(GraphBIMT(cfg, model, x[:1]))
    start = _cost(strategy.bimt, model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    steps = 20
    strategy.start(model, steps)
    model.train()
    for step in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        strategy.add_grad(model, step)
        opt.step()
        strategy.after_step(model, step, opt)
    metrics = strategy.finish(model)
    assert metrics["connection_cost"] < 0.9 * start
    assert metrics["swaps"] > 0


def test_an_unknown_metric_is_refused():
    model, x, _ = cases()["mlp"]
    with pytest.raises(ModscopeError, match="metric"):
        GraphBIMT(BIMTConfig(), model, x[:1], metric="cosine")


def test_state_records_each_groups_permutation():
    model, x, _ = cases()["transformer"]
    b = GraphBIMT(BIMTConfig(top_k=2), model, x[:1])
    b.swap_pass(model)
    st = b.state()
    assert len(st["permutations"]) == len(st["groups"]) == len(b.groups)
    for p, g in zip(st["permutations"], b.groups, strict=True):
        assert sorted(np.asarray(p).tolist()) == list(range(g.size))


def test_fit_model_trains_any_module_with_bimt():
    model, x, _ = cases()["cnn"]
    model = model.float()
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(48, 64, generator=gen)
    ys = torch.randint(0, 3, (48,), generator=gen)
    data = load_data({"x_train": xs[:32], "y_train": ys[:32], "x_test": xs[32:], "y_test": ys[32:]})
    strategy = bimt_strategy(model, xs[:1], lam=0.05, schedule="constant", swap_every=4, top_k=2)
    start = float(strategy.bimt.cost(model).detach())
    result = fit_model(model, data, steps=12, batch_size=16, lr=1e-2, strategy=strategy)
    assert result.strategy["connection_cost"] < start
    assert result.settings["strategy"]["name"] == "bimt"
    assert result.settings["strategy"]["metric"] == "l1"
    assert "strategy" in result.to_dict()
    with pytest.raises(ModscopeError, match="not both"):
        bimt_strategy(model, xs[:1], BIMTConfig(), lam=0.1)


# -- the spectral clusterability regulariser on the unit graph ------------------------------------
def test_unit_graph_spectral_penalty_equals_the_mlp_one():
    from modscope.graphs.tracing.export import trace_network
    from modscope.training.clusterability import spectral_penalty
    from modscope.training.clusterability_graph import unit_adjacency, unit_spectral_penalty

    widths = (5, 7, 6, 3)
    net = init_model(Architecture(widths, activation="relu"), torch.Generator().manual_seed(2)).double()
    pmap = trace_network(net, torch.randn(1, 5, dtype=torch.float64)).parameters
    mine = unit_spectral_penalty(unit_adjacency(net, pmap), 2)
    ref = spectral_penalty([layer.weight for layer in net.layers], 2)
    assert float(mine.detach()) == pytest.approx(float(ref.detach()), rel=1e-9, abs=1e-12)
    mine.backward()
    g_mine = [layer.weight.grad.clone() for layer in net.layers]
    net.zero_grad()
    spectral_penalty([layer.weight for layer in net.layers], 2).backward()
    for a, b in zip(g_mine, [layer.weight.grad for layer in net.layers], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)


def test_fit_model_lowers_the_unit_graph_penalty_of_a_cnn():
    from modscope.training.clusterability_graph import clusterability_strategy

    model, _, _ = cases()["cnn"]
    model = model.float()
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(48, 64, generator=gen)
    ys = torch.randint(0, 3, (48,), generator=gen)
    data = load_data({"x_train": xs[:32], "y_train": ys[:32], "x_test": xs[32:], "y_test": ys[32:]})
    strategy = clusterability_strategy(model, xs[:1], lam=5.0, eigs=2)
    with torch.no_grad():
        start = strategy.finish(model)["cluster_penalty"]
    result = fit_model(model, data, steps=15, batch_size=16, lr=1e-2, strategy=strategy)
    assert result.strategy["cluster_penalty"] < start
    with pytest.raises(ModscopeError, match="lambda"):
        clusterability_strategy(model, xs[:1], lam=-1.0)


def test_an_image_input_sits_on_its_pixel_grid():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(12, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)).double()
    b = GraphBIMT(BIMTConfig(), net, torch.randn(1, 12, dtype=torch.float64), input_shape=(3, 4))
    first = b.coords[:12]
    # pixel (row 1, col 2) of a 3 x 4 image sits at x = 5/8, y = 1/2
    torch.testing.assert_close(first[6], torch.tensor([5 / 8, 1 / 2], dtype=first.dtype))
    assert len(set(map(tuple, first.tolist()))) == 12


def test_a_network_too_large_for_the_dense_search_is_refused(monkeypatch):
    import modscope.training.bimt_graph as bg

    monkeypatch.setattr(bg, "MAX_NODES", 10)
    model, x, _ = cases()["mlp"]
    with pytest.raises(ModscopeError, match="at most 10 units"):
        GraphBIMT(BIMTConfig(), model, x[:1])


@pytest.mark.parametrize(("lam", "eigs", "says"), [
    ("abc", 3, "cluster-reg lambda must be a number, got 'abc'"),
    (float("nan"), 3, "cluster-reg lambda must be a finite number >= 0"),
    (-1.0, 3, "cluster-reg lambda must be a finite number >= 0, got -1.0"),
    (0.1, float("nan"), "cluster eigs must be an integer >= 1"),
    (0.1, True, "cluster eigs must be an integer >= 1"),
    (0.1, 1.5, "cluster eigs must be an integer >= 1, got 1.5"),
])
def test_the_unit_graph_regulariser_refuses_bad_settings_in_one_line(lam, eigs, says):
    from modscope.training.clusterability_graph import clusterability_strategy

    model, x, _ = cases()["mlp"]
    with pytest.raises(ModscopeError, match=says.replace("(", r"\(").replace(".", r"\.")) as err:
        clusterability_strategy(model, x[:1], lam, eigs)
    assert "\n" not in str(err.value)
