"""BIMT: geometry, the connection cost, the vectorised swap search and function-preserving swaps."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modscope.errors import ModscopeError
from modscope.training.bimt import (
    BIMT,
    BIMTConfig,
    ConnectionCost,
    layout,
    swap_deltas,
    swap_deltas_bruteforce,
)
from modscope.training.models import MLP, Architecture
from modscope.training.trainer import forward, init_model


def _net(widths, seed=0, dtype=torch.float64, vocab=None, **arch):
    if vocab is not None:
        arch.update(vocab_size=vocab, embed_dim=widths[0] // 2, n_tokens=2)
    net = init_model(Architecture(tuple(widths), activation="silu", **arch),
                     torch.Generator().manual_seed(seed))
    return net.to(dtype)


def _cost(b_or_cost, net, **kw) -> float:
    cost = getattr(b_or_cost, "cost", b_or_cost)
    with torch.no_grad():
        return float(cost(net, **kw))


def _bimt(widths, dtype=torch.float64, input_shape=None, **cfg):
    return BIMT(BIMTConfig(**cfg), widths, input_shape, dtype=dtype)


# -- geometry and cost ------------------------------------------------------------------------
def test_line_layout_and_grid_layout():
    c = layout([4, 3, 2])
    assert torch.allclose(c[0][:, 0], torch.tensor([1 / 8, 3 / 8, 5 / 8, 7 / 8], dtype=c[0].dtype))
    assert torch.allclose(c[2][:, 0], torch.tensor([0.25, 0.75], dtype=c[2].dtype))
    g = layout([6, 5, 3], input_shape=(2, 3))
    assert all(x.shape[1] == 2 for x in g)
    # pixel (row 1, col 2) of a 2 x 3 image sits at x = 5/6, y = 3/4
    assert torch.allclose(g[0][5], torch.tensor([5 / 6, 3 / 4], dtype=g[0].dtype))
    assert g[1].shape == (5, 2) and len(set(map(tuple, g[1].tolist()))) == 5  # 3 x 2 grid cells
    r = layout([2, 4], output_layout="ring")
    assert torch.allclose((r[1] - 0.5).norm(dim=1), torch.full((4,), 0.4, dtype=r[1].dtype))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_cost_matches_the_definition(reduction):
    widths, A, ys = (3, 4, 2), 2.0, 0.3
    net = _net(widths)
    coords = layout(widths)
    cost = ConnectionCost(coords, A, ys, reduction).to("cpu", torch.float64)
    expect = 0.0
    for l, layer in enumerate(net.layers):
        w, b = layer.weight.detach(), layer.bias.detach()
        s = sum(abs(float(w[k, j])) * (A * abs(float(coords[l + 1][k, 0] - coords[l][j, 0])) + ys)
                for k in range(w.shape[0]) for j in range(w.shape[1]))
        sb = ys * float(b.abs().sum())
        if reduction == "mean":
            s, sb = s / w.numel(), sb / b.numel()
        expect += s + sb
    assert _cost(cost, net) == pytest.approx(expect, rel=1e-12)
    biases = [layer.bias.detach() for layer in net.layers]
    no_bias = expect - sum(ys * float(b.abs().sum()) / (b.numel() if reduction == "mean" else 1)
                           for b in biases)
    assert _cost(cost, net, bias=False) == pytest.approx(no_bias, rel=1e-12)


def test_embedding_cost_is_y_star_times_l1():
    net = _net((4, 3, 5), vocab=7)
    cost = ConnectionCost(layout((4, 3, 5)), 1.0, 0.5, "sum").to("cpu", torch.float64)
    without = copy.deepcopy(net)
    without.embedding = None
    diff = _cost(cost, net) - _cost(cost, without)
    assert diff == pytest.approx(0.5 * float(net.embedding.weight.detach().abs().sum()), rel=1e-12)


def test_schedule():
    c = BIMTConfig(lam=1e-3, bias_from=0.75)
    lams = [c.lambda_at(s, 100) for s in (0, 24, 25, 74, 75, 99)]
    assert lams == [1e-3, 1e-3, 1e-2, 1e-2, 1e-3, 1e-3]
    assert [c.bias_on(s, 100) for s in (0, 74, 75)] == [False, False, True]
    assert BIMTConfig(lam=2.0, schedule="constant").lambda_at(50, 100) == 2.0


def test_penalty_grad_equals_autograd():
    widths = (6, 6, 4, 3)
    net = _net(widths, vocab=9, seed=3)
    b = _bimt(widths, reduction="mean", lam=0.1, A=2.0, y_star=0.5, bias_from=0.5)
    for step in (10, 60):  # biases off, then on
        net.zero_grad()
        b.penalty(net, step, 100).backward()
        auto = [torch.zeros_like(p) if p.grad is None else p.grad.clone()
                for p in net.parameters()]
        net.zero_grad()
        b.add_penalty_grad(net, step, 100)
        for p, g in zip(net.parameters(), auto, strict=True):
            got = torch.zeros_like(p) if p.grad is None else p.grad
            assert torch.allclose(got, g, atol=1e-14)


# -- the swap search --------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 7), min_size=2, max_size=4),
    seed=st.integers(0, 10_000),
    reduction=st.sampled_from(["sum", "mean"]),
    A=st.sampled_from([0.0, 1.0, 2.5]),
    ring=st.booleans(),
)
def test_vectorised_deltas_equal_bruteforce(widths, seed, reduction, A, ring):
    net = _net(widths, seed=seed)
    b = _bimt(widths, reduction=reduction, A=A, y_star=0.3,
              output_layout="ring" if ring else "line")
    for l, n in enumerate(widths):
        for j in range(n):
            fast = swap_deltas(b.cost, net, l, j)
            slow = swap_deltas_bruteforce(b.cost, net, l, j)
            assert torch.allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_vectorised_deltas_on_an_image_grid():
    widths, shape = (12, 7, 5), (3, 4)
    net = _net(widths, seed=1)
    b = _bimt(widths, input_shape=shape, A=2.0, y_star=0.5)
    assert b.coords[0].shape == (12, 2)
    for l, n in enumerate(widths):
        for j in range(n):
            assert torch.allclose(swap_deltas(b.cost, net, l, j),
                                  swap_deltas_bruteforce(b.cost, net, l, j), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_swap_pass_never_raises_cost_and_matches_bruteforce(seed):
    widths = (6, 9, 8, 5)
    net = _net(widths, seed=seed)
    fast = _bimt(widths, top_k=4, A=2.0, y_star=0.2)
    slow = _bimt(widths, top_k=4, A=2.0, y_star=0.2)
    net_slow = copy.deepcopy(net)
    before = _cost(fast, net)
    stats = fast.swap_pass(net)
    after = _cost(fast, net)
    assert stats.swaps > 0
    assert after <= before + 1e-12
    assert after - before == pytest.approx(stats.cost_change, rel=1e-9, abs=1e-12)
    slow.swap_pass(net_slow, method="bruteforce")
    for p, q in zip(fast.perms, slow.perms, strict=True):
        assert torch.equal(p, q)
    for p, q in zip(net.parameters(), net_slow.parameters(), strict=True):
        assert torch.equal(p, q)


def test_repeated_passes_descend_to_a_local_optimum():
    widths = (5, 8, 8, 3)
    net = _net(widths, seed=7)
    b = _bimt(widths, top_k=8, A=1.0, y_star=0.1)
    costs = [_cost(b, net)]
    for _ in range(6):
        b.swap_pass(net)
        costs.append(_cost(b, net))
    assert all(c2 <= c1 + 1e-12 for c1, c2 in zip(costs, costs[1:], strict=False))
    assert costs[-1] < costs[0]


# -- swaps keep the function ------------------------------------------------------------------
@pytest.mark.parametrize("vocab", [None, 11])
def test_swaps_keep_the_function_in_every_layer(vocab):
    widths = (6, 10, 9, 7)
    net = _net(widths, seed=2, dtype=torch.float32, vocab=vocab)
    b = _bimt(widths, dtype=torch.float32, top_k=10)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 11, (32, 2), generator=g) if vocab else torch.randn(32, 6, generator=g)
    ref = forward(net, x, b)
    for l, n in enumerate(widths):  # arbitrary permutations, input and output layers included
        b.permute(net, l, torch.randperm(n, generator=g))
    assert not torch.equal(b.perms[0], torch.arange(6))
    assert not torch.equal(b.perms[-1], torch.arange(7))
    assert torch.allclose(forward(net, x, b), ref, atol=1e-5)
    stats = b.swap_pass(net)  # and the swaps the search chooses
    assert stats.swaps > 0
    assert torch.allclose(forward(net, x, b), ref, atol=1e-5)


def test_optimizer_moments_move_with_the_weights():
    """After a swap, training continues exactly as it would have without it."""
    widths = (4, 7, 6, 3)
    net = _net(widths, seed=4, dtype=torch.float64)
    b = _bimt(widths, lam=0.0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 4, generator=g, dtype=torch.float64), torch.randn(20, 3, generator=g,
                                                                             dtype=torch.float64)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.0)

    def step(model, optim, bimt):
        optim.zero_grad()
        ((forward(model, x, bimt) - y) ** 2).mean().backward()
        optim.step()

    for _ in range(5):
        step(net, opt, b)
    net2, b2 = copy.deepcopy(net), copy.deepcopy(b)
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-2, weight_decay=0.0)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    w_before = net2.layers[1].weight.detach().clone()
    m_before = opt2.state[net2.layers[1].weight]["exp_avg_sq"].clone()
    order = torch.randperm(7, generator=g)
    b2.permute(net2, 1, order, opt2)  # hidden layer 1: rows of W_1, b_1, columns of W_2
    b2.permute(net2, 0, torch.randperm(4, generator=g), opt2)
    b2.permute(net2, 3, torch.randperm(3, generator=g), opt2)
    assert torch.equal(net2.layers[1].weight, w_before[:, order])
    assert torch.equal(opt2.state[net2.layers[1].weight]["exp_avg_sq"], m_before[:, order])
    assert torch.equal(opt2.state[net2.layers[0].bias]["exp_avg"],
                       opt.state[net.layers[0].bias]["exp_avg"][order])
    for _ in range(5):
        step(net, opt, b)
        step(net2, opt2, b2)
    assert torch.allclose(forward(net2, x, b2), forward(net, x, b), atol=1e-10)
    # without moving the moments the two runs part ways
    net3, b3 = copy.deepcopy(net), copy.deepcopy(b)
    opt3 = torch.optim.AdamW(net3.parameters(), lr=1e-2, weight_decay=0.0)
    opt3.load_state_dict(copy.deepcopy(opt.state_dict()))
    b3.permute(net3, 1, order)  # optimizer not passed
    for _ in range(3):
        step(net, opt, b)
        step(net3, opt3, b3)
    assert not torch.allclose(forward(net3, x, b3), forward(net, x, b), atol=1e-6)


def test_threshold_and_state():
    widths = (3, 4, 2)
    net = _net(widths, dtype=torch.float32)
    b = _bimt(widths, dtype=torch.float32, threshold=0.3)
    n_small = sum(int(((p.abs() < 0.3) & (p != 0)).sum()) for p in net.parameters())
    assert b.threshold(net) == n_small
    assert all(bool(((p == 0) | (p.abs() >= 0.3)).all()) for p in net.parameters())
    st_ = b.state()
    assert [p.tolist() for p in st_["permutations"]] == [list(range(n)) for n in widths]
    assert st_["threshold"] == 0.3 and len(st_["coordinates"]) == 3


def test_config_validation_and_task_defaults():
    class T:
        defaults = {"bimt_lambda": 0.1, "bimt_top_k": 30, "bimt_reduction": "mean"}

    c = BIMTConfig.from_task(T(), A=2.0, y_star=None)
    assert (c.lam, c.top_k, c.reduction, c.A, c.y_star) == (0.1, 30, "mean", 2.0, 0.1)
    for bad in ({"lam": -1.0}, {"reduction": "max"}, {"top_k": -2}, {"A": math.inf},
                {"bias_from": 2.0}, {"schedule": "cosine"}, {"output_layout": "star"}):
        with pytest.raises(ModscopeError):
            BIMTConfig(**bad)
    with pytest.raises(ModscopeError, match="unknown BIMT option"):
        BIMTConfig.from_task(T(), lamda=1.0)


@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_placement_rows_columns_and_diagonal_are_the_matrix(l):
    from modscope.training.bimt import Placement

    torch.manual_seed(0)
    model = MLP((12, 9, 7, 5))
    cost = ConnectionCost(layout(model.widths), A=2.0, y_star=0.5, reduction="mean").to("cpu")
    C = cost.placement_matrix(model, l)
    P = Placement(cost, model, l)
    n = model.widths[l]
    with torch.no_grad():  # the definition, neuron by neuron: its incident |w| times A * distance
        oracle = torch.zeros(n, n)
        for j in range(n):
            for p in range(n):
                if l > 0:  # incoming: row j of W_l-1, distances from position p to layer l-1
                    w = model.layers[l - 1].weight
                    oracle[j, p] += cost.A * cost.scale(w) * (w[j].abs() * cost.dist[l - 1][p]).sum()
                if l < len(model.layers):  # outgoing: column j of W_l, distances to layer l+1
                    w = model.layers[l].weight
                    oracle[j, p] += cost.A * cost.scale(w) * (w[:, j].abs() * cost.dist[l][:, p]).sum()
    torch.testing.assert_close(C, oracle)
    some = torch.tensor([n - 1, 0, n // 2])
    torch.testing.assert_close(P.rows(some), C[some])
    torch.testing.assert_close(P.diagonal(), C.diagonal())
    for p in range(n):
        torch.testing.assert_close(P.column(p), C[:, p])
