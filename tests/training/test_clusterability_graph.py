"""Golechha et al.'s block loss on the unit graph of any traced network: on modscope's MLP it is
`BlockClusterability` (value and gradient), on a residual CNN it trains, touches nothing but the
penalised weights, and bad options are one line."""

from __future__ import annotations

import pytest
import torch

from modscope.data.dataset import load_data
from modscope.errors import ModscopeError
from modscope.training.clusterability import BlockClusterability
from modscope.training.clusterability_graph import block_strategy, edge_sets, edge_values
from modscope.training.fit import fit_model
from modscope.training.models import Architecture
from modscope.training.trainer import init_model
from tests.helpers.permutable_nets import cases


def _grads(net) -> list[torch.Tensor]:
    return [
        torch.zeros_like(l.weight) if l.weight.grad is None else l.weight.grad.clone() for l in net.layers
    ]


@pytest.mark.parametrize("layers", ["hidden", "all"])
def test_on_the_mlp_it_is_the_matrix_loss_value_and_gradient(layers):
    net = init_model(Architecture((8, 9, 10, 8, 4), activation="relu"), torch.Generator().manual_seed(2))
    net = net.double()
    mine = block_strategy(net, torch.zeros(1, 8, dtype=torch.float64), 3.0, 4, layers)
    assert len(mine.sets) == (2 if layers == "hidden" else 4)
    a = mine.penalty(net, 0)
    a.backward()
    g_mine = _grads(net)
    net.zero_grad()
    b = BlockClusterability(3.0, 4, layers).penalty(net, 0)
    b.backward()
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-12)
    for x, y in zip(g_mine, _grads(net), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def test_a_block_diagonal_kernel_scores_one_and_a_uniform_one_a_quarter():
    # a 1x1 conv between two 8-channel groups: C counts whole kernel slices by their channels' blocks
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 8, 1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 2, 1),
    ).double()
    s = block_strategy(net, torch.zeros(1, 2, 3, 3, dtype=torch.float64), 1.0, 4)
    with torch.no_grad():
        net[2].weight.fill_(1.0)
        assert float(s.clusterability(net)) == pytest.approx(0.25)
        net[2].weight.copy_(torch.block_diag(*[torch.ones(2, 2)] * 4)[:, :, None, None])
        assert float(s.clusterability(net)) == pytest.approx(1.0)


def _cnn_data():
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(48, 64, generator=gen)
    ys = torch.randint(0, 3, (48,), generator=gen)
    return xs, load_data({"x_train": xs[:32], "y_train": ys[:32], "x_test": xs[32:], "y_test": ys[32:]})


def test_it_trains_a_cnn_and_the_clusterability_rises():
    model = cases()["cnn"][0].float()
    xs, data = _cnn_data()
    strategy = block_strategy(model, xs[:1], lam=5.0, clusters=2)
    start = strategy.finish(model)["clusterability"]
    result = fit_model(model, data, steps=15, batch_size=16, lr=1e-2, strategy=strategy)
    assert all(torch.isfinite(torch.tensor(h[1])) for h in result.history)
    assert result.strategy["clusterability"] > start + 0.05
    assert result.settings["strategy"] == {
        "name": "golechha-graph",
        "lam": 5.0,
        "clusters": 2,
        "layers": "hidden",
    }


def test_the_penalty_reaches_only_the_penalised_weights():
    model = cases()["cnn"][0]
    x = torch.randn(2, 64, dtype=torch.float64)
    strategy = block_strategy(model, x[:1], lam=1.0, clusters=2)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    strategy.penalty(model, 0).backward()
    penalised = {e.parameter for e in strategy.sets}
    for name, p in model.named_parameters():
        moved = p.grad is not None and bool(p.grad.abs().sum() > 0)
        assert moved == (name in penalised), name
    assert not any(n.endswith("bias") for n in penalised)
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k])


def test_with_lambda_zero_training_is_plain_training():
    xs, data = _cnn_data()
    plain, regularised = cases()["cnn"][0].float(), cases()["cnn"][0].float()
    fit_model(plain, data, steps=5, batch_size=16, lr=1e-2)
    fit_model(
        regularised,
        data,
        steps=5,
        batch_size=16,
        lr=1e-2,
        strategy=block_strategy(regularised, xs[:1], lam=0.0, clusters=2),
    )
    for (k, a), b in zip(plain.state_dict().items(), regularised.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_the_edge_sets_are_the_adjacency_of_the_spectral_loss():
    from modscope.graphs.tracing.export import trace_network
    from modscope.training.clusterability_graph import unit_adjacency

    model, x, _ = cases()["lstm"]
    pmap = trace_network(model, x[:1]).parameters
    sets = edge_sets(pmap)
    total = sum(float(v.detach().sum()) for v in edge_values(model, sets))
    assert float(unit_adjacency(model, pmap).detach().sum()) == pytest.approx(2 * total, rel=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(lam=1.0, clusters=3, layers="all"), "into 3 clusters"),
        (dict(lam=-1.0), "lambda"),
        (dict(lam=1.0, clusters=1), "clusters"),
        (dict(lam=1.0, layers="some"), "'hidden' or 'all'"),
    ],
)
def test_bad_options_are_one_line(options, message):
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    with pytest.raises(ModscopeError, match=message) as e:
        block_strategy(net, torch.zeros(1, 4), **options)
    assert "\n" not in str(e.value)


def test_a_network_without_hidden_to_hidden_weights_is_refused():
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    with pytest.raises(ModscopeError, match="layers 'all'"):
        block_strategy(net, torch.zeros(1, 4), lam=1.0, clusters=2)
