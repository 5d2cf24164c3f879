"""The one lesion path on an MLP: the low-rank update at a Linear input site equals the plain forward.

A lesion of hidden layer ``g`` of an MLP is first read by ``layers[g]``: the batched evaluator
computes that layer's output as the intact one minus the silenced units' contribution (zero
ablation) or plus their shift to the mean (mean ablation). Oracles: one plain forward per lesion
through the same evaluator with the low-rank update off, and the definitions (0.3.0's `lesion()`,
which zeroes the units' incoming weights, and a hand-written forward with the units set to their
means), per cluster metric, per function and per class, to 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modscope.data.dataset import Data, load_data
from modscope.data.functions import Function
from modscope.data.splits import ArraySplit
from modscope.errors import ModscopeError
from modscope.graphs.tracing import trace_network
from modscope.lesions import knockout, lesion
from modscope.lesions.evaluator import UnitEvaluator
from modscope.lesions.lesioner import UnitLesioner, unit_means
from modscope.lesions.prefix import repeated
from modscope.training.models import MLP

WIDTHS = (5, 12, 10, 8, 4)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _net(seed: int = 0) -> MLP:
    gen = torch.Generator().manual_seed(seed)
    net = MLP(WIDTHS)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(max(p.shape[-1], 1)))
    return net.eval()


def _data(kind: str, n: int = 90) -> Data:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, WIDTHS[0], generator=gen)
    if kind == "regression":
        y = torch.randn(n, WIDTHS[-1], generator=gen)
    else:
        y = torch.randint(0, WIDTHS[-1], (n, 1), generator=gen)
    fns = {"half": Function("half", test_index=torch.arange(n // 2), train_index=torch.arange(n // 2))}
    split = ArraySplit(x, y, kind == "regression")
    return Data(split, split, kind=kind, functions=fns, name="toy")


def _lesions(group: int, size: int, n: int = 7, seed: int = 2) -> dict[int, torch.Tensor]:
    """``n`` keep-masks of ``size`` silenced units each in hidden layer ``group``."""
    rng = np.random.default_rng(seed)
    keep = np.ones((n, WIDTHS[group]), dtype=bool)
    for r in range(n):
        keep[r, rng.choice(WIDTHS[group], size, replace=False)] = False
    return {group: torch.from_numpy(keep)}


def _evaluators(net, data, ablation):
    traced = trace_network(net, data.test.x[:1])
    means = None
    if ablation == "mean":
        means = unit_means(net, traced, [data.test.x])
    kw = dict(functions=list(data.functions.values()), batch_size=32)
    fast = UnitEvaluator(net, traced, data, lesioner=UnitLesioner(net, traced, ablation, means), **kw)
    plain = UnitEvaluator(net, traced, data, lesioner=UnitLesioner(net, traced, ablation, means),
                          max_elements=1, low_rank=False, **kw)
    return fast, plain


def _close(a, b):
    np.testing.assert_allclose(a.metric, b.metric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a.per_function, b.per_function, rtol=1e-6, atol=1e-9)
    if a.per_class is not None or b.per_class is not None:
        np.testing.assert_allclose(a.per_class, b.per_class, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kind", ["regression", "classification"])
@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_low_rank_linear_reads_equal_one_plain_forward_per_lesion(kind, ablation):
    net, data = _net(), _data(kind)
    fast, plain = _evaluators(net, data, ablation)
    for group in (1, 2, 3):
        keep = _lesions(group, 3)
        _close(fast.evaluate(keep), plain.evaluate(keep))
    assert fast.low_ranked > 0 and plain.low_ranked == 0
    # pairs across layers: the first read low-rank, the later one by its hook
    both = {**_lesions(1, 2), **_lesions(3, 3, seed=5)}
    _close(fast.evaluate(both), plain.evaluate(both))


def test_zero_ablation_equals_zeroing_the_units_incoming_weights():
    """0.3.0's MLP path: a lesioned ReLU unit outputs 0 when its incoming weights and bias are 0."""
    net, data = _net(3), _data("regression")
    fast, _ = _evaluators(net, data, "zero")
    x, y = data.test.x, data.test.y
    for group in (1, 2, 3):
        keep = _lesions(group, 4, seed=group)
        got = fast.evaluate(keep)
        for r in range(keep[group].shape[0]):
            with torch.no_grad(), lesion(net, {group: torch.nonzero(~keep[group][r]).flatten()}):
                want = float(((net(x) - y) ** 2).mean())
            assert got.metric[r] == pytest.approx(want, rel=1e-6)


def test_mean_ablation_equals_the_units_set_to_their_means():
    net, data = _net(4), _data("regression")
    fast, _ = _evaluators(net, data, "mean")
    x, y = data.test.x, data.test.y
    with torch.no_grad():
        acts, h = [], x
        for lin in net.layers[:-1]:
            h = net.act(lin(h))
            acts.append(h)
    for group in (1, 2, 3):
        keep = _lesions(group, 3, seed=10 + group)
        got = fast.evaluate(keep)
        mean = acts[group - 1].mean(0)
        for r in range(keep[group].shape[0]):
            silenced = ~keep[group][r]
            with torch.no_grad():
                h = x
                for k, lin in enumerate(net.layers):
                    h = lin(h)
                    if k + 1 < len(net.layers):
                        h = net.act(h)
                        if k + 1 == group:
                            h = torch.where(silenced, mean, h)
                want = float(((h - y) ** 2).mean())
            assert got.metric[r] == pytest.approx(want, rel=1e-6)


def test_lesions_over_half_a_layer_or_of_unequal_size_run_the_layer_whole():
    net, data = _net(5), _data("classification")
    fast, plain = _evaluators(net, data, "zero")
    big = _lesions(1, 8)  # 8 of 12 units: more than half
    _close(fast.evaluate(big), plain.evaluate(big))
    mixed = _lesions(2, 2)
    mixed[2][0, :5] = False  # the first lesion larger than the others
    _close(fast.evaluate(mixed), plain.evaluate(mixed))
    assert fast.low_ranked == 0


def test_kept_intact_outputs_are_reused_across_calls_of_one_group():
    net, data = _net(6), _data("regression")
    fast, _ = _evaluators(net, data, "zero")
    first, second = _lesions(2, 3, seed=20), _lesions(2, 3, seed=21)
    fast.evaluate(first)
    kept = next(iter(fast._kept.values()))  # noqa: SLF001 (the per-batch store of the group)
    again = fast.evaluate(second)
    assert len(fast._kept) == 1 and next(iter(fast._kept.values())) is kept  # noqa: SLF001
    assert len(kept) == 3  # 90 examples in batches of 32
    fresh, _ = _evaluators(net, data, "zero")
    _close(again, fresh.evaluate(second))


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_knockout_batched_equals_loop_on_an_mlp(ablation):
    net = _net(7)
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(120, WIDTHS[0], generator=gen)
    data = load_data((x, net(x).argmax(1).detach()))  # the net's own labels
    labels = [np.arange(w) % 2 for w in WIDTHS[1:-1]]
    kw = dict(n_random=20, pairs=True, seed=1, ablation=ablation)
    a = knockout(net, data, labels, **kw)
    b = knockout(net, data, labels, method="loop", **kw)
    assert a.intact_accuracy == 1.0
    for s, t in zip(a.submodules + a.pairs, b.submodules + b.pairs, strict=True):
        np.testing.assert_allclose(s.random_metric, t.random_metric, rtol=1e-6, atol=1e-9)
        assert s.accuracy == pytest.approx(t.accuracy, rel=1e-6) and s.p_value == t.p_value


def test_a_repeat_is_made_only_when_read_and_never_handed_out_after_a_write():
    base = torch.arange(6.0).reshape(3, 2)
    memo: dict = {}
    lazy = repeated(base, 4, memo, "k")
    assert lazy.shape == (12, 2) and lazy.made is None  # nothing copied yet
    torch.testing.assert_close(lazy * 1, base.repeat(4, 1))
    assert repeated(base, 4, memo, "k") is lazy  # unchanged: handed out again
    lazy.add_(1)  # a later op wrote it in place
    fresh = repeated(base, 4, memo, "k")
    assert fresh is not lazy
    torch.testing.assert_close(fresh + 0, base.repeat(4, 1))


def test_in_place_activations_and_identities_replay_right():
    """ReLU(inplace=True) writes the Linear's output it receives; Identity hands its input on: the kept
    copies and the repeats made for the lesions must see neither write."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(5, 12), torch.nn.ReLU(inplace=True), torch.nn.Identity(),
        torch.nn.Linear(12, 10), torch.nn.ReLU(inplace=True), torch.nn.Linear(10, 4),
    ).eval()
    data = _data("regression")
    fast, plain = _evaluators(net, data, "zero")
    for group in (1, 2):
        keep = {group: _lesions(1, 3)[1][:, : (12 if group == 1 else 10)]}
        _close(fast.evaluate(keep), plain.evaluate(keep))
        _close(fast.evaluate(keep), plain.evaluate(keep))  # again, from the kept outputs
    assert fast.low_ranked > 0


def test_an_embedding_mlp_takes_its_weight_graph_labels():
    """The weight graph lists each token's embedding dimensions as inputs (8 here), the unit graph one
    unit per dimension (4): labels in either layout, or per hidden layer, lesion the same units."""
    from modscope.graphs.load import load_graph
    from modscope.tasks.base import Task
    from modscope.training.models import Architecture

    torch.manual_seed(0)
    net = MLP(Architecture((8, 6, 5, 4), vocab_size=7, embed_dim=4, n_tokens=2)).eval()
    x = torch.randint(0, 7, (60, 2))
    y = net(x).argmax(1, keepdim=True).detach()
    task = Task("emb", x, y, x, y, "ce", 8, 4, (4,), vocab_size=7)
    hidden = [np.arange(6) % 2, np.arange(5) % 2]
    flat = np.concatenate([np.zeros(load_graph(net).sizes[0], int), *hidden, np.zeros(4, int)])
    kw = dict(n_random=20, seed=0)
    a, b = knockout(net, task, flat, **kw), knockout(net, task, hidden, **kw)
    assert a.to_dict() == b.to_dict() and len(a.submodules) == 4
    with pytest.raises(ModscopeError, match="one cluster label per node"):
        knockout(net, task, flat[1:], **kw)
