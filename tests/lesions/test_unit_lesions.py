"""Lesions of unit sets of any traced network (issue 17, item 5), against definitions by hand.

Oracle: silencing a unit where it is read equals zeroing, by hand, the columns of every weight
that reads it; mean ablation equals feeding each reader the unit's mean; the batched path (lesions
as copies of the batch) equals one forward per lesion; the model is never changed, also when the
body raises.
"""

import numpy as np
import pytest
import torch
from torch import nn

import modscope
from modscope.data import load_data
from modscope.errors import ModscopeError
from modscope.graphs.tracing import trace_network
from modscope.lesions import knockout
from modscope.lesions.evaluator import UnitEvaluator
from modscope.lesions.lesioner import UnitLesioner, unit_means
from tests.helpers import nets


class ResidualMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.a = nn.Linear(6, 5)
        self.b = nn.Linear(5, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        h = self.inp(x)
        h = h + self.b(torch.relu(self.a(h)))
        return self.out(torch.relu(h))


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_silencing_a_unit_equals_zeroing_the_columns_that_read_it():
    model = ResidualMLP().eval()
    traced = trace_network(model, torch.zeros(1, 4))
    g = traced.graph
    assert g.sizes == (4, 6, 5, 3)  # input, stream (inp + b), a's units, outputs
    x = torch.randn(32, 4)
    lesion = np.zeros(g.n_nodes, dtype=bool)
    stream, hidden = g.offsets[1], g.offsets[2]
    lesion[[stream + 1, stream + 4, hidden + 2]] = True  # two stream channels, one hidden unit
    before = _state(model)
    with torch.no_grad(), UnitLesioner(model, traced).one_lesion(lesion):
        got = model(x)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # nothing written
    by_hand = ResidualMLP().eval()
    by_hand.load_state_dict(before)
    with torch.no_grad():
        for m in (by_hand.a, by_hand.out):  # the stream's readers
            m.weight[:, [1, 4]] = 0
        by_hand.b.weight[:, 2] = 0  # the hidden unit's reader
        want = by_hand(x)
    torch.testing.assert_close(got, want)


def test_batched_lesions_equal_one_forward_each_and_the_model_is_restored_on_error():
    model = nets.TinyResNet(widths=(4, 8)).eval()
    traced = trace_network(model, torch.zeros(1, 3, 8, 8))
    x = torch.randn(6, 3, 8, 8)
    rng = np.random.default_rng(0)
    lesions = rng.random((5, traced.graph.n_nodes)) < 0.3
    lesions[:, : traced.graph.sizes[0]] = False  # the input channels are not lesioned
    lesioner = UnitLesioner(model, traced)
    with torch.no_grad():
        with lesioner.lesioned(lesions) as R:
            batched = model(x.repeat(R, 1, 1, 1)).reshape(R, 6, -1)
        for r in range(5):
            with lesioner.one_lesion(lesions[r]):
                torch.testing.assert_close(batched[r], model(x), rtol=1e-5, atol=1e-6)
    before = _state(model)
    with pytest.raises(RuntimeError, match="boom"), lesioner.one_lesion(lesions[0]):
        raise RuntimeError("boom")
    assert not model.layers[0].conv1._forward_pre_hooks  # hooks gone
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_recurrent_units_are_silenced_inside_the_lstm_too():
    model = nets.LSTMClassifier(n_in=3, hidden=4, layers=1).eval()
    traced = trace_network(model, torch.zeros(1, 5, 3))
    kinds = {(s.module, s.kind, s.parameter) for s in traced.sites}
    assert ("lstm", "parameter", "weight_hh_l0") in kinds
    g = traced.graph
    lesion = np.zeros(g.n_nodes, dtype=bool)
    lesion[g.offsets[1] + 2] = True  # hidden unit 2
    x = torch.randn(7, 5, 3)
    lesioner = UnitLesioner(model, traced)
    assert lesioner.needs_loop(lesion[None])
    original = model.lstm.weight_hh_l0
    with torch.no_grad(), lesioner.one_lesion(lesion):
        got = model(x)
    assert model.lstm.weight_hh_l0 is original
    by_hand = nets.LSTMClassifier(n_in=3, hidden=4, layers=1).eval()
    by_hand.load_state_dict(model.state_dict())
    with torch.no_grad():
        by_hand.lstm.weight_hh_l0[:, 2] = 0
        by_hand.fc.weight[:, 2] = 0
        torch.testing.assert_close(got, by_hand(x))
    with pytest.raises(ModscopeError, match="zero ablation"):
        UnitLesioner(model, traced, "mean", means=[None] * len(traced.sites)).sites_of(lesion)


def test_mean_ablation_feeds_each_reader_the_mean():
    model = ResidualMLP().eval()
    traced = trace_network(model, torch.zeros(1, 4))
    x = torch.randn(50, 4)
    means = unit_means(model, traced, [x[:20], x[20:]])
    hidden = traced.graph.offsets[2] + 3
    site = next(i for i, s in enumerate(traced.sites) if s.module == "b")
    with torch.no_grad():
        acts = torch.relu(model.a(model.inp(x)))
    # float32 activations of batches of 20 and 30 against one of 50: the matrix products round
    # differently on another BLAS (a few ulps), so not 1e-6
    np.testing.assert_allclose(means[site], acts.double().mean(0).numpy(), rtol=1e-5, atol=1e-7)
    lesion = np.zeros(traced.graph.n_nodes, dtype=bool)
    lesion[hidden] = True
    with torch.no_grad(), UnitLesioner(model, traced, "mean", means).one_lesion(lesion):
        got = model(x)
    with torch.no_grad():
        h = model.inp(x)
        a = torch.relu(model.a(h))
        a[:, 3] = float(means[site][3])
        want = model.out(torch.relu(h + model.b(a)))
    torch.testing.assert_close(got, want)


@pytest.mark.slow  # a whole knockout, batch by batch
def test_knockout_on_a_traced_network_streams_the_users_data():
    model = nets.TinyResNet(widths=(4, 8)).eval()
    x, y = torch.randn(48, 3, 8, 8), torch.randint(0, 3, (48,))
    example = torch.zeros(1, 3, 8, 8)
    part = modscope.cluster(modscope.load_graph(model, example_input=example), 3, seed=0)
    kw = dict(example_input=example, n_random=20, seed=0, batch_size=16)
    batched = knockout(model, (x, y), part, **kw)
    loop = knockout(model, (x, y), part, method="loop", **kw)
    assert batched.intact_accuracy == pytest.approx(float((model(x).argmax(1) == y).double().mean()))
    frame = batched.to_frame()
    assert set(frame["group"]) <= set(modscope.load_graph(model, example_input=example).group_names)
    assert "input:x" not in set(frame["group"])  # the network's input channels are not lesioned
    np.testing.assert_allclose(frame["accuracy"], loop.to_frame()["accuracy"])
    d = batched.to_dict()
    assert d["groups"][0].startswith("input:x") and len(d["submodules"]) == len(frame)
    data = load_data((x, y))
    ev = UnitEvaluator(model, trace_network(model, example), data, batch_size=10)
    assert ev.intact().metric[0] == pytest.approx(batched.intact_accuracy)
    # without example_input the network is traced on the data's first example: the same run
    plain = {k: v for k, v in kw.items() if k != "example_input"}
    assert knockout(model, (x, y), part, **plain).to_dict() == d
    with pytest.raises(ModscopeError, match="one cluster label per node"):
        knockout(model, (x, y), part.labels[:-1], **kw)


class _Drifting(nn.Module):
    """Changes its own weights in forward (a running update written by hand)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(5, 3)

    def forward(self, x):
        if x.shape[0] > 1:  # not on the batch-1 example it is traced with
            with torch.no_grad():
                self.b.weight.mul_(1.0)  # an in-place write, as a buggy running update would do
        return self.b(torch.relu(self.a(x)))


def test_bad_user_input_is_refused_in_one_line_and_the_model_untouched():
    model = ResidualMLP().eval()
    example = torch.zeros(1, 4)
    part = modscope.cluster(modscope.load_graph(model, example_input=example), 2, seed=0)
    before = _state(model)
    cases = [
        ((torch.randn(10, 7), torch.randint(0, 3, (10,))), "rejects the data"),  # wrong feature count
        ((torch.randn(10, 4), torch.full((10,), 5)), "up to class 5"),  # labels beyond the outputs
    ]
    for data, words in cases:
        with pytest.raises(ModscopeError, match=words) as info:
            knockout(model, data, part, example_input=example, n_random=20)
        assert "\n" not in str(info.value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    drifting = _Drifting()
    part = modscope.cluster(modscope.load_graph(drifting, example_input=example), 2, seed=0)
    with pytest.raises(ModscopeError, match="changes its own weights"):
        knockout(
            drifting,
            (torch.randn(10, 4), torch.randint(0, 3, (10,))),
            part,
            example_input=example,
            n_random=20,
        )
