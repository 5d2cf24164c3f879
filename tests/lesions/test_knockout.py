"""Knockout experiments: planted modules, the p-value convention, batched == loop, restoration."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from modscope.data.functions import Function
from modscope.errors import ModscopeError
from modscope.graphs.tracing import trace_network
from modscope.lesions import (
    function_knockout,
    hidden_layer_labels,
    knockout,
    lesion,
    remove_weights,
    submodules,
)
from modscope.lesions.evaluator import UnitEvaluator
from modscope.lesions.knockout import categorize
from modscope.report.text import format_knockout
from modscope.stats import lesion_p_value
from modscope.tasks.base import Task
from modscope.training.models import MLP


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: thread start-up dominates and the CI machine is shared
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def _random_net(widths, seed: int, activation: str = "relu", dtype=torch.float32) -> MLP:
    gen = torch.Generator().manual_seed(seed)
    net = MLP(widths, activation=activation)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(max(p.shape[-1], 1)))
    return net.to(dtype).eval()


def _teacher_task(net: MLP, n: int, seed: int, kind: str = "mse", functions=None) -> Task:
    """A task whose targets are ``net``'s own outputs (so the intact net is perfect)."""
    gen = torch.Generator().manual_seed(seed)
    w = net.widths
    dtype = net.layers[0].weight.dtype
    x = torch.rand((n, w[0]), generator=gen, dtype=dtype) * 2 - 1
    with torch.no_grad():
        out = net(x)
    if kind == "mse":
        y, groups = out, (1,) * w[-1]
    else:  # two-way groups: argmax per consecutive pair of logits
        y, groups = out.view(n, -1, 2).argmax(-1), (2,) * (w[-1] // 2)
    return Task("teacher", x, y, x, y, kind, w[0], w[-1], groups, functions=functions or {})


# -- a planted two-module network --------------------------------------------------------------
def _two_module_net(kind: str = "mse") -> tuple[MLP, Task, list[np.ndarray]]:
    """4-8-8-2: inputs 0,1 -> hidden 0..3 -> hidden 0..3 -> output 0;
    inputs 2,3 -> hidden 4..7 -> hidden 4..7 -> output 1."""
    net = _random_net([4, 8, 8, 2], seed=1)
    block = torch.zeros(8, 8)
    block[:4, :4] = 1
    block[4:, 4:] = 1
    with torch.no_grad():
        net.layers[0].weight.mul_(torch.kron(torch.eye(2), torch.ones(4, 2)))
        net.layers[1].weight.mul_(block)
        net.layers[2].weight.mul_(torch.kron(torch.eye(2), torch.ones(1, 4)))
        net.layers[0].bias.fill_(0.1)
    fns = {"y1": Function("y1", groups=(0,)), "y2": Function("y2", groups=(1,))}
    if kind == "ce":  # outputs 4 logits: two 2-way groups, one per module
        big = _random_net([4, 8, 8, 4], seed=1)
        big.layers[0].load_state_dict(net.layers[0].state_dict())
        big.layers[1].load_state_dict(net.layers[1].state_dict())
        with torch.no_grad():
            big.layers[2].weight.mul_(torch.kron(torch.eye(2), torch.ones(2, 4)))
            big.layers[2].bias.zero_()
            # balance the classes: each group's logit gap has median 0 on the data
            gap = big(_teacher_task(big, 300, seed=2).x_test).view(300, 2, 2).diff(dim=-1)
            big.layers[2].bias[1::2] -= gap.squeeze(-1).median(0).values
        net = big
    task = _teacher_task(net, 300, seed=2, kind=kind, functions=fns)
    labels = [np.array([0, 0, 0, 0, 1, 1, 1, 1])] * 2
    return net, task, labels


@pytest.mark.parametrize("kind", ["mse", "ce"])
def test_lesioning_one_module_destroys_its_output_only(kind):
    net, task, labels = _two_module_net(kind)
    res = knockout(net, task, labels, n_random=20, seed=0)
    by = {(s.layer, s.cluster): s for s in res.submodules}
    assert set(by) == {(1, 0), (1, 1), (2, 0), (2, 1)}
    for layer in (1, 2):
        a, b = by[layer, 0], by[layer, 1]
        if kind == "mse":
            # intact net is its own teacher (MSE 0); a lesioned module leaves its output a
            # constant, so that output's MSE is at least the target's variance
            var = task.y_test.double().var(0, unbiased=False).numpy()
            assert res.intact_per_function == {"y1": 0.0, "y2": 0.0}
            assert a.per_function["y1"] >= var[0] * (1 - 1e-6) and a.per_function["y2"] < 1e-12
            assert b.per_function["y2"] >= var[1] * (1 - 1e-6) and b.per_function["y1"] < 1e-12
        else:
            assert res.intact_per_function == {"y1": 1.0, "y2": 1.0}
            assert a.per_function["y1"] < 0.8 and a.per_function["y2"] == 1.0
            assert b.per_function["y2"] < 0.8 and b.per_function["y1"] == 1.0


def test_lesion_context_manager_on_planted_net():
    net, task, _ = _two_module_net("mse")
    saved = _state(net)
    with torch.no_grad():
        intact = net(task.x_test)
        with lesion(net, {1: [0, 1, 2, 3]}):
            out = net(task.x_test)
    assert torch.equal(out[:, 1], intact[:, 1])  # module B untouched
    assert not torch.allclose(out[:, 0], intact[:, 0])
    assert _same(net, saved)


# -- significance on a planted "signal" cluster -------------------------------------------------
def _signal_net() -> tuple[MLP, Task, list[np.ndarray]]:
    """2-32-2 ReLU, class = x0 < x1. Cluster 0 (neurons 0..7) carries the signal: 0..3 compute
    relu(x0 - x1) -> logit 0, 4..7 relu(x1 - x0) -> logit 1. Clusters 1..3 have random input
    weights but no outgoing weights (dead ends)."""
    net = _random_net([2, 32, 2], seed=3)
    with torch.no_grad():
        net.layers[0].weight[:4] = torch.tensor([1.0, -1.0])
        net.layers[0].weight[4:8] = torch.tensor([-1.0, 1.0])
        net.layers[0].bias[:8] = 0
        net.layers[1].weight.zero_()
        net.layers[1].weight[0, :4] = 1
        net.layers[1].weight[1, 4:8] = 1
        net.layers[1].bias.zero_()
    gen = torch.Generator().manual_seed(4)
    x = torch.rand((400, 2), generator=gen)
    y = (x[:, 0] < x[:, 1]).long()[:, None]
    task = Task("signal", x, y, x, y, "ce", 2, 2, (2,))
    labels = [np.repeat(np.arange(4), 8)]
    return net, task, labels


def test_signal_cluster_is_important_and_dead_clusters_prunable():
    net, task, labels = _signal_net()
    res = knockout(net, task, labels, n_random=50, seed=0)
    assert res.intact_accuracy == 1.0
    cats = {s.cluster: s.category for s in res.submodules}
    assert cats == {0: "important", 1: "prunable", 2: "prunable", 3: "prunable"}
    sig = res.submodules[0]
    assert sig.p_value == pytest.approx(1 / 51)
    assert sig.delta == pytest.approx(-0.5, abs=0.1)
    # per class: ties at logit 0 go to class 0, so class 1 is lost and class 0 kept
    assert sig.per_class[0] == 1.0 and sig.per_class[1] == 0.0
    assert all(s.p_value == 1.0 and s.delta == 0.0 for s in res.submodules[1:])
    assert 0 < res.fisher_p < 1


def test_p_value_convention_and_categories():
    # (#{random damage >= true damage} + 1) / (N + 1): ties count against significance
    assert lesion_p_value(0.5, np.zeros(19)) == pytest.approx(1 / 20)
    assert lesion_p_value(0.0, np.zeros(19)) == 1.0
    assert lesion_p_value(0.2, np.array([0.1, 0.2, 0.3])) == pytest.approx(3 / 4)
    assert categorize(0.01, 0.02, 0.05, 0.01) == "important"
    assert categorize(0.01, 0.005, 0.05, 0.01) == "sig-but-small"
    assert categorize(1.0, 0.0, 0.05, 0.01) == "prunable"
    assert categorize(1.0, 0.05, 0.05, 0.01) == "not-significant"
    assert categorize(0.5, 0.0, 0.05, 0.01) == "not-significant"


def test_p_values_of_random_labels_are_uniform():
    """Random labels on random nets: the true lesion is exchangeable with the random ones, so
    p * (N + 1) is uniform on {1 .. N + 1}. Jittered down by U/(N+1) it is exactly U(0, 1);
    the count/N convention (no +1) or a wrong tail on ties would fail this."""
    n_random, n_draws = 9, 240
    rng = np.random.default_rng(5)
    ps = []
    for d in range(n_draws):
        net = _random_net([3, 12, 2], seed=100 + d)
        task = _teacher_task(_random_net([3, 12, 2], seed=10_000 + d), 40, seed=d)
        labels = [rng.integers(0, 3, 12)]
        res = knockout(net, task, labels, n_random=n_random, seed=d, alpha=0.5)
        ps.append(res.submodules[0].p_value)
    ps = np.array(ps)
    ranks = np.round(ps * (n_random + 1)).astype(int)
    assert np.allclose(ps * (n_random + 1), ranks) and ranks.min() >= 1
    jittered = ps - rng.random(n_draws) / (n_random + 1)
    assert stats.kstest(jittered, "uniform").pvalue > 1e-3
    chi = stats.chisquare(np.bincount(ranks - 1, minlength=n_random + 1))
    assert chi.pvalue > 1e-3


# -- batched evaluation == the loop oracle ------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "silu"])
def test_batched_equals_loop(activation):
    net = _random_net([5, 10, 9, 8, 6], seed=6, activation=activation, dtype=torch.float64)
    task = _teacher_task(_random_net([5, 10, 9, 8, 6], seed=7, dtype=torch.float64), 80, 0, "ce")
    task.functions = {"a": Function("a", test_index=torch.arange(40), groups=(0,)),
                      "b": Function("b", groups=(1, 2))}
    labels = [np.random.default_rng(8).integers(-1, 3, w) for w in (10, 9, 8)]
    kw = dict(n_random=20, pairs=True, seed=3)
    b = knockout(net, task, labels, method="batched", **kw)
    lo = knockout(net, task, labels, method="loop", **kw)
    assert json.dumps(b.to_dict()) == json.dumps(lo.to_dict())
    for x, y in zip(b.submodules + b.pairs, lo.submodules + lo.pairs, strict=True):
        np.testing.assert_array_equal(x.random_metric, y.random_metric)


def _evaluator(net, task, **kw) -> UnitEvaluator:
    data = task.to_data()
    traced = trace_network(net, task.x_test[:1])
    return UnitEvaluator(net, traced, data, functions=list(data.functions.values()), **kw)


def test_batched_equals_loop_mse_with_chunking():
    net = _random_net([4, 16, 16, 3], seed=9, activation="silu", dtype=torch.float64)
    task = _teacher_task(_random_net([4, 16, 16, 3], seed=10, dtype=torch.float64), 50, 1)
    keep = {1: torch.rand(13, 16, generator=torch.Generator().manual_seed(0)) > 0.3,
            2: torch.rand(13, 16, generator=torch.Generator().manual_seed(1)) > 0.5}
    tiny = _evaluator(net, task, max_elements=4 * 3, batch_size=7)  # 3 lesions per forward, 8 batches
    big = _evaluator(net, task)
    loop = _evaluator(net, task, max_elements=1, low_rank=False)
    a, b, c = tiny.evaluate(keep), big.evaluate(keep), loop.evaluate(keep)
    np.testing.assert_allclose(a.metric, c.metric, rtol=1e-12)
    np.testing.assert_allclose(b.metric, c.metric, rtol=1e-12)
    np.testing.assert_allclose(big.intact().metric, loop.intact().metric, rtol=1e-12)


def test_per_class_and_per_function_match_task_metric():
    net = _random_net([6, 12, 4], seed=11)
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(200, 6, generator=gen)
    y = torch.randint(0, 4, (200, 1), generator=gen)
    fn = {"low": Function("low", test_index=torch.nonzero(y[:, 0] < 2).flatten())}
    task = Task("cls", x, y, x, y, "ce", 6, 4, (4,), functions=fn)
    keep = {1: torch.rand(5, 12, generator=gen) > 0.5}
    s = _evaluator(net, task).evaluate(keep)
    for r in range(5):
        with torch.no_grad(), lesion(net, {1: torch.nonzero(~keep[1][r]).flatten()}):
            out = net(x)
            assert s.metric[r] == pytest.approx(task.metric(out, y))
            for c in range(4):
                sel = y[:, 0] == c
                assert s.per_class[r, c] == pytest.approx(task.metric(out[sel], y[sel]))
            idx = fn["low"].test_index
            assert s.per_function[r, 0] == pytest.approx(task.metric(out[idx], y[idx]))


# -- pairs -------------------------------------------------------------------------------------
def test_pairs_interaction_definition_and_joint_lesion():
    net, task, labels = _two_module_net("mse")
    res = knockout(net, task, labels, n_random=20, pairs=True, seed=1)
    assert len(res.pairs) == 6  # C(4, 2): same layer and across layers
    singles = {(s.layer, s.cluster): s for s in res.submodules}
    for p in res.pairs:
        a, b = singles[p.layer_a, p.cluster_a], singles[p.layer_b, p.cluster_b]
        assert p.interaction == pytest.approx(p.damage - (a.damage + b.damage))
        assert p.size == a.size + b.size
    # both modules of layer 1 silenced: both outputs reduced to their constant bias
    both = next(p for p in res.pairs if (p.layer_a, p.layer_b) == (1, 1))
    with torch.no_grad(), lesion(net, {1: range(8)}):
        assert both.accuracy == pytest.approx(task.metric(net(task.x_test), task.y_test))


# -- the model and the checkpoint are never changed --------------------------------------------
def test_model_unchanged_after_knockout_and_after_errors():
    net, task, labels = _two_module_net("ce")
    net.train()  # the knockout evaluates in eval mode and gives the flag back
    saved = _state(net)
    for method in ("batched", "loop"):
        knockout(net, task, labels, n_random=20, pairs=True, method=method)
        assert _same(net, saved) and net.training
    with pytest.raises(RuntimeError, match="boom"), lesion(net, {1: [0, 5], 2: [3]}):
        assert float(net.layers[0].weight[0].detach().abs().sum()) == 0.0
        raise RuntimeError("boom")
    assert _same(net, saved)
    mask = [torch.ones_like(lin.weight, dtype=torch.bool) for lin in net.layers]
    with pytest.raises(RuntimeError, match="boom"), remove_weights(net, mask):
        assert float(net.layers[1].weight.detach().abs().sum()) == 0.0
        raise RuntimeError("boom")
    assert _same(net, saved)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from([1, 2, 3]), st.lists(st.integers(0, 6), max_size=7),
                       max_size=3),
       st.sampled_from(["relu", "sigmoid"]))
def test_lesion_restores_exactly(neurons, activation):
    net = _random_net([3, 7, 7, 7, 2], seed=13, activation=activation)
    saved = _state(net)
    x = torch.randn(9, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), lesion(net, neurons):
        out = net(x)
        # every silenced neuron contributes nothing downstream: hidden outputs are zero
        h = x
        for k, lin in enumerate(net.layers[:-1]):
            h = net.act(lin(h))
            for j in neurons.get(k + 1, []):
                next_w = net.layers[k + 1].weight[:, j]
                assert float((h[:, j:j + 1] * next_w).abs().max()) == 0.0
    assert out.shape == (9, 2)
    assert _same(net, saved)


def test_checkpoint_on_disk_unchanged(tmp_path):
    from modscope.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    net, task, labels = _two_module_net("mse")
    path = save_checkpoint(tmp_path / "net.pt", Checkpoint(net.arch, net.state_dict()))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_checkpoint(path).model()
    res = knockout(model, task, labels, n_random=20, pairs=True)
    assert res.submodules
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


# -- function masks ----------------------------------------------------------------------------
def test_function_knockout_removes_only_its_function():
    net, task, _ = _two_module_net("ce")
    saved = _state(net)
    block_a = [torch.zeros_like(lin.weight, dtype=torch.bool) for lin in net.layers]
    block_a[0][:4, :2] = True  # module A: inputs 0,1 -> hidden 0..3 -> hidden 0..3 -> logits 0,1
    block_a[1][:4, :4] = True
    block_a[2][:2, :4] = True
    masks = {"y1": block_a, "y2": {"layers.1.weight": ~block_a[1]}}
    res = function_knockout(net, task, masks)
    assert res.intact == {"y1": 1.0, "y2": 1.0}
    assert res.removed["y1"]["y1"] < 0.8 and res.removed["y1"]["y2"] == 1.0
    assert res.mask_sizes["y1"] == sum(int(m.sum()) for m in block_a)
    assert list(res.to_frame().index) == ["none", "y1", "y2"]
    assert _same(net, saved)
    full = knockout(net, task, [np.array([0, 0, 0, 0, 1, 1, 1, 1])] * 2, n_random=20, masks=masks)
    assert full.to_dict()["functions"]["removed"]["y1"]["y2"] == 1.0


def test_function_knockout_with_saved_mask_format():
    from modscope.masks import load_masks  # noqa: F401  (the format it reads: {fn: {name: bool}})

    net, task, _ = _two_module_net("mse")
    masks = {"y2": {n: torch.zeros_like(p, dtype=torch.bool) for n, p in net.named_parameters()}}
    res = function_knockout(net, task, masks)
    assert res.removed["y2"] == res.intact  # an empty mask removes nothing
    with pytest.raises(ModscopeError, match="unknown functions"):
        function_knockout(net, task, {"nope": masks["y2"]})
    # what `modscope masks --save` writes also holds the all-data `control` mask
    res = function_knockout(net, task, {"control": masks["y2"], "y1": masks["y2"]})
    assert set(res.removed) == {"control", "y1"}
    with pytest.raises(ModscopeError, match="shape"):
        function_knockout(net, task, {"y1": {"layers.0.weight": torch.ones(2, 2, dtype=bool)}})


# -- labels, results, errors -------------------------------------------------------------------
def test_label_layouts_agree():
    widths = (3, 4, 5, 2)
    hidden = [np.array([0, 1, 1, -1]), np.array([2, 2, 0, 1, 1])]
    flat = np.concatenate([[7, 7, 7], *hidden, [9, 9]])

    class Partition:
        labels = flat

    for layout in (hidden, [np.zeros(3, int), *hidden, np.zeros(2, int)], flat, Partition()):
        got = hidden_layer_labels(layout, widths)
        assert all(np.array_equal(a, b) for a, b in zip(got, hidden, strict=True))
    subs = submodules(hidden, widths)
    assert [(s.layer, s.cluster, s.neurons) for s in subs] == [
        (1, 0, (0,)), (1, 1, (1, 2)), (2, 0, (2,)), (2, 1, (3, 4)), (2, 2, (0, 1))]


def test_result_json_frame_and_text():
    net, task, labels = _two_module_net("ce")
    res = knockout(net, task, labels, n_random=20, pairs=True, seed=4)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert {"intact_accuracy", "submodules", "fisher_p", "pairs"} <= set(d)
    assert set(d["submodules"][0]) >= {"layer", "cluster", "size", "accuracy", "per_class",
                                       "delta", "p_value", "z", "category"}
    assert len(res.to_frame()) == 4 and len(res.pairs_frame()) == 6
    text = format_knockout(res)
    assert "Fisher" in text and text.count("\n") > 10
    again = knockout(net, task, labels, n_random=20, pairs=True, seed=4)
    assert again.to_dict() == d  # seeded: reproducible
    other = knockout(net, task, labels, n_random=20, pairs=True, seed=5)
    assert not np.array_equal(other.submodules[0].random_metric, res.submodules[0].random_metric)
    assert "pairs" not in knockout(net, task, labels, n_random=20).to_dict()


def test_bad_input_raises_modscope_error():
    net, task, labels = _two_module_net("mse")
    with pytest.raises(ModscopeError, match="smallest p-value"):
        knockout(net, task, labels, n_random=10, alpha=0.05)
    with pytest.raises(ModscopeError, match="one cluster label per node"):
        knockout(net, task, np.zeros(5, int))
    with pytest.raises(ModscopeError, match="integers"):
        knockout(net, task, [np.full(8, 0.5)] * 2)
    with pytest.raises(ModscopeError, match="no sub-modules"):
        knockout(net, task, [np.full(8, -1)] * 2)
    with pytest.raises(ModscopeError, match="does not run on the example input"):
        knockout(torch.nn.Linear(3, 3), task, labels)  # traced on the data's first example
    with pytest.raises(ModscopeError, match="modscope MLP"), lesion(torch.nn.Linear(3, 3), {1: [0]}):
        pass
    with pytest.raises(ModscopeError, match="hidden layer"), lesion(net, {3: [0]}):
        pass


# -- the command line --------------------------------------------------------------------------
@pytest.mark.slow  # trains a network first
def test_cli_knockout_on_a_trained_checkpoint(tmp_path, capsys):
    from modscope.cli import main
    from modscope.tasks import get_task
    from modscope.training.trainer import train

    ckpt = tmp_path / "net.pt"
    train(get_task("formula-independence"), hidden=[8, 8], steps=30, progress=False).save(ckpt)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    out = tmp_path / "ko.json"
    argv = ["knockout", str(ckpt), "--clusters", "3", "--random", "20", "--pairs",
            "--json", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "Fisher" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["metric"] == "mse" and d["submodules"] and "pairs" in d
    assert set(d["intact_per_function"]) == {"y1", "y2"}
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest
    assert main(argv[:2] + ["--task", "digits", "--no-progress"]) == 2
    assert main(argv[:2] + ["--random", "5", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("modscope: error:") == 2 and "Traceback" not in err


def test_an_mlp_is_read_from_its_layers_as_the_tracer_reads_it(monkeypatch):
    """modscope's MLP needs no torch.export for a knockout (seconds on a 2-core CPU): its layers give
    the tracer's unit groups, names and sites; the knockout is the traced one's."""
    import modscope.graphs.tracing as tracing
    from modscope.graphs.stacks import mlp_trace

    torch.manual_seed(0)
    model = MLP((6, 5, 4, 3)).eval()
    traced, read = trace_network(model, torch.randn(1, 6)), mlp_trace(model)
    assert read.graph.sizes == traced.graph.sizes and read.graph.links == traced.graph.links
    assert [read.graph.group_label(g) for g in range(4)] == [traced.graph.group_label(g) for g in range(4)]
    assert [(s.module, s.kind, s.arg, s.axis, s.batch_axis, s.module_type) for s in read.sites] == [
        (s.module, s.kind, s.arg, s.axis, s.batch_axis, s.module_type) for s in traced.sites
    ]
    assert all(np.array_equal(a.nodes, b.nodes) for a, b in zip(read.sites, traced.sites, strict=True))
    assert mlp_trace(MLP((6, 5, 3), vocab_size=4, embed_dim=2, n_tokens=3)) is None  # tokens: traced
    assert mlp_trace(torch.nn.Sequential(torch.nn.Linear(6, 3))) is None

    x = torch.randn(64, 6)
    y = torch.randint(0, 3, (64, 1))
    labels = [np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 0])]
    fast = knockout(model, (x, y), labels, n_random=20, seed=0)

    def no_export(*args, **kwargs):
        raise AssertionError("traced")

    monkeypatch.setattr(tracing, "trace_network", no_export)
    assert knockout(model, (x, y), labels, n_random=20, seed=0).to_dict() == fast.to_dict()
