"""Weight masks on any architecture and on the user's data (issue 17): residual CNNs, recurrent
layers (the loop path), attention projections; data streamed in batches; functions from the
user; alignment of clusters and masks on traced unit graphs; the ``masks --model`` command."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from modscope.cli import main
from modscope.data import class_functions as data_class_functions
from modscope.data import load_data
from modscope.data.functions import CONTROL
from modscope.errors import ModscopeError
from modscope.graphs.tracing import trace_network
from modscope.graphs.tracing.incidence import graph_parameter_map
from modscope.masks import alignment, evaluate_streamed, maskable_names, train_masks
from modscope.masks.data import StreamedData
from modscope.masks.frozen import FrozenNet
from modscope.tasks import Function, Task
from modscope.tasks import class_functions as task_class_functions
from modscope.training.models import MLP
from tests.helpers.nets import Conv1D, LSTMClassifier

# -- small networks ------------------------------------------------------------------------------


class ResCNN(nn.Module):
    """stem -> stream; one residual block (a: a hidden channel set, b writes back into the
    stream); global pooling; a Linear head."""

    def __init__(self, c_in: int = 2, c: int = 4, out: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(c_in, c, 1)
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)
        self.fc = nn.Linear(c, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        h = h + self.b(torch.relu(self.a(h)))
        return self.fc(h.mean((2, 3)))


class TinyTransformer(nn.Module):
    """A Linear embedding, one PyTorch encoder layer (MultiheadAttention + MLP + LayerNorms), a
    classifier on the first position."""

    def __init__(self, n_in: int = 4, d: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, d)
        self.enc = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.inp(x))[:, 0])


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.fc = nn.Linear(3 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class EveryLayer(nn.Module):
    """One of every kind of layer (not run: its parameters are listed)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)
        self.bn = nn.BatchNorm1d(4)
        self.lin = nn.Linear(4, 4)
        self.c1 = nn.Conv1d(4, 4, 3)
        self.c3 = nn.Conv3d(4, 2, 1)
        self.t2 = nn.ConvTranspose2d(2, 2, 3)
        self.gru = nn.GRU(4, 3, bidirectional=True)
        self.cell = nn.LSTMCell(4, 3)
        self.attn = nn.MultiheadAttention(4, 2)
        self.gpt = Conv1D(4, 4)
        self.gain = nn.Parameter(torch.ones(4, 4))  # the root's own: a 2-D weight of no layer
        self.tied = nn.Linear(4, 10, bias=False)
        self.tied.weight = self.embed.weight


def seeded(net: nn.Module, seed: int = 0) -> nn.Module:
    """``net`` with every parameter drawn from ``seed``: its layers' own initialisation again (the
    biases too: they were left as the unseeded constructor drew them), then N(0, 0.5) weights."""
    torch.manual_seed(seed)
    for m in net.modules():
        if m is not net and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for p in net.parameters():
        if p.ndim >= 2:
            nn.init.normal_(p, 0.0, 0.5)
    return net.eval()


def snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def unchanged(model: nn.Module, snap: dict) -> bool:
    return all(torch.equal(v, snap[k]) for k, v in model.state_dict().items()) and all(
        p.grad is None for p in model.parameters()
    )


def labelled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's own predictions as labels: every function is learnable from it."""
    with torch.no_grad():
        return net(x).argmax(1)


# -- what is masked -------------------------------------------------------------------------------


def test_maskable_parameters_of_every_layer_kind():
    names = maskable_names(EveryLayer())
    assert names == [
        "lin.weight", "c1.weight", "c3.weight", "t2.weight",
        "gru.weight_ih_l0", "gru.weight_hh_l0", "gru.weight_ih_l0_reverse", "gru.weight_hh_l0_reverse",
        "cell.weight_ih", "cell.weight_hh", "attn.in_proj_weight", "attn.out_proj.weight", "gpt.weight",
    ]  # not: embeddings, norm gains, a 2-D parameter not called weight, the head tied to the embedding
    with_bias = maskable_names(EveryLayer(), mask_bias=True)
    assert {"lin.bias", "gru.bias_ih_l0", "cell.bias_hh", "attn.in_proj_bias", "gpt.bias"} <= set(with_bias)
    assert not any(n.startswith(("embed", "norm", "bn", "tied")) for n in with_bias)
    with pytest.raises(ModscopeError, match="no layer weights"):
        maskable_names(nn.Sequential(nn.Embedding(3, 2), nn.LayerNorm(2)))


# -- architectures --------------------------------------------------------------------------------


def test_residual_cnn_on_user_data_with_unit_group_tables():
    net = seeded(ResCNN())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 2, 5, 5, generator=g)
    y = torch.arange(160) % 3
    data = load_data((x[80:], y[80:]), train=(x[:80], y[:80]))
    snap = snapshot(net)
    res = train_masks(net, data, ["low=0,1", "high=2"], steps=6, batch_size=16, lr=0.2, example_input=x[:1])
    assert unchanged(net, snap)
    assert res.layer_names == ["stem.weight", "a.weight", "b.weight", "fc.weight"]
    assert res.functions == ["low", "high", CONTROL]
    assert res.config["forward"] == "loop" and res.config["trained_on"] == "train"  # convs on a CPU
    assert all(0 <= v <= 1 for row in res.accuracy.values() for v in row.values())
    groups = res.groups
    stream = next(k for k in groups if k.startswith("stem"))
    assert groups[stream]["writes"] == ["stem.weight", "b.weight"]
    assert groups[stream]["reads"] == ["a.weight", "fc.weight"]
    assert groups[stream]["weights"] == 4 * 2 + 16 * 9 + 16 * 9 + 3 * 4
    assert groups["a"]["writes"] == ["a.weight"] and groups["a"]["reads"] == ["b.weight"]
    assert set(groups["a"]["iou"]) == set(res.iou)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["metric"] == "accuracy" and "groups" in d
    assert len(res.group_frame()) == len(groups) * 3
    assert res.units is not None and "units" not in res.to_payload()


def test_lstm_masks_loop_path_together_equals_alone():
    net = seeded(LSTMClassifier(n_in=3, hidden=4, layers=2, out=3))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(120, 5, 3, generator=g)
    data = load_data((x, torch.arange(120) % 3))
    opts = dict(steps=8, batch_size=8, lr=0.3, control=False, keep_logits=True, seed=3)
    both = train_masks(net, data, ["a=0,1", "b=2"], **opts)
    assert both.config["forward"] == "loop" and both.config["trained_on"] == "test"
    assert "lstm.weight_hh_l1" in both.layer_names
    moved = both.logits["a"]["lstm.weight_hh_l0"] != 2.0
    assert moved.any()  # the recurrent weights get gradient through the loop path
    for name in ("a", "b"):
        alone = train_masks(net, data, [f"{name}={'0,1' if name == 'a' else '2'}"], **opts)
        for n in both.layer_names:  # the loop runs each mask's own forward and backward
            a, b = alone.logits[name][n], both.logits[name][n]
            assert torch.allclose(a, b, atol=1e-5), n  # (the vectorised Adam may round a last bit)
            assert torch.equal(alone.masks[name][n], both.masks[name][n]), n


@pytest.mark.parametrize("forward", ["batched", "loop"])
def test_cnn_masks_together_equal_alone(forward):
    net = seeded(SmallCNN())
    g = torch.Generator().manual_seed(2)
    x = torch.randn(96, 1, 6, 6, generator=g)
    data = load_data((x, labelled(net, x)))
    opts = dict(steps=12, batch_size=16, lr=0.3, control=False, keep_logits=True, seed=1, forward=forward)
    both = train_masks(net, data, ["zero=0", "one=1"], **opts)
    assert both.config["forward"] == forward
    assert any(not m.all() for m in both.masks["zero"].values())  # the masks did move
    for spec in ("zero=0", "one=1"):
        name = spec.split("=")[0]
        alone = train_masks(net, data, [spec], **opts)
        for n in both.layer_names:
            a, b = alone.logits[name][n], both.logits[name][n]
            assert torch.allclose(a, b, atol=1e-4), n
            sure = (a.abs() > 1e-3) & (b.abs() > 1e-3)
            assert torch.equal(alone.masks[name][n][sure], both.masks[name][n][sure])
    if forward == "batched":  # the same masks either way
        looped = train_masks(net, data, ["zero=0", "one=1"], **{**opts, "forward": "loop"})
        for n in both.layer_names:
            assert torch.allclose(looped.logits["zero"][n], both.logits["zero"][n], atol=1e-4)
    with pytest.raises(ModscopeError, match="cannot be batched"):
        train_masks(seeded(LSTMClassifier()), load_data((torch.randn(8, 5, 3), torch.arange(8) % 2)),
                    ["a=0"], steps=1, forward="batched")


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_transformer_attention_projections_are_masked():
    net = seeded(TinyTransformer())
    g = torch.Generator().manual_seed(3)
    x = torch.randn(96, 5, 4, generator=g)
    data = load_data((x, labelled(net, x)))
    res = train_masks(net, data, ["ab=0,1"], steps=4, batch_size=8, lr=0.3, keep_logits=True,
                      example_input=x[:1])
    assert {"enc.self_attn.in_proj_weight", "enc.self_attn.out_proj.weight", "enc.linear1.weight"} <= set(
        res.layer_names)
    for fn in ("ab", CONTROL):  # both masks (K = 2, through vmap) reach the attention projections
        assert (res.logits[fn]["enc.self_attn.in_proj_weight"] != 2.0).any()
        assert (res.logits[fn]["enc.self_attn.out_proj.weight"] != 2.0).any()
    values = res.groups["enc.self_attn"]  # the value dimensions: written by in_proj's v rows
    assert values["writes"] == ["enc.self_attn.in_proj_weight"]
    assert values["reads"] == ["enc.self_attn.out_proj.weight"]
    assert values["weights"] == 8 * 8 + 8 * 8  # v rows only: query and key rows are dead ends


# -- streaming ------------------------------------------------------------------------------------


def random_mlp(widths, seed=0) -> MLP:
    g = torch.Generator().manual_seed(seed)
    net = MLP(widths)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / np.sqrt(max(p.shape[-1], 1)))
    return net.eval()


def random_task(n=240, seed=0) -> Task:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = x[:, :3].argmax(1, keepdim=True)
    half = n // 2
    fns = {
        "lo": Function("lo", torch.arange(0, half, 2), torch.arange(0, n - half, 2)),
        "hi": Function("hi", torch.arange(1, half, 2), torch.arange(1, n - half, 2)),
    }
    return Task("rand", x[:half], y[:half], x[half:], y[half:], "ce", 6, 3, (3,), functions=fns)


def close(a, b, rel: float = 1e-12) -> bool:
    """Nested dicts and lists of floats equal up to ``rel`` (None and NaN equal themselves)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(
            close(x, y, rel) for x, y in zip(a, b, strict=True)
        )
    if a is None or b is None or isinstance(a, str):
        return a == b
    return a == pytest.approx(b, rel=rel, abs=1e-12, nan_ok=True)


def test_streamed_regression_equals_in_memory_task():
    net = random_mlp([6, 10, 2], seed=5)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(160, 6, generator=g)
    y = torch.stack([x[:, 0] * 2, x[:, 1] - x[:, 2]], 1)
    fns = {"first": Function("first", groups=(0,)), "second": Function("second", groups=(1,))}
    task = Task("reg", x[:80], y[:80], x[80:], y[80:], "mse", 6, 2, (1, 1), functions=fns)
    opts = dict(steps=10, batch_size=16, lr=0.2, keep_logits=True)
    mem = train_masks(net, task, **opts)
    streamed = train_masks(net, task.to_data(), eval_batch_size=9, **opts)
    for f in mem.functions:
        for n in mem.layer_names:
            assert torch.equal(mem.logits[f][n], streamed.logits[f][n])
    a, b = mem.to_dict(), streamed.to_dict()
    # float32 outputs of 9-example batches through 7 weight sets round differently from the whole
    # test set through 3: the MSEs agree to ~1e-8 here, by more on another BLAS (summation order)
    assert b.pop("metric") == "mse" and close(a, b, rel=1e-5)


def test_streamed_data_equals_in_memory_task_and_batches_equal_whole_set():
    net, task = random_mlp([6, 12, 3], seed=3), random_task()
    opts = dict(steps=15, batch_size=16, lr=0.2, keep_logits=True, seed=4, class_removal=True)
    mem = train_masks(net, task, task_class_functions(task), **opts)
    data = task.to_data()
    streamed = train_masks(net, data, data_class_functions(data), eval_batch_size=7, **opts)
    for f in mem.functions:  # the same rows drawn, the same loss: the same logits
        for n in mem.layer_names:
            assert torch.equal(mem.logits[f][n], streamed.logits[f][n])
    a, b = mem.to_dict(), streamed.to_dict()
    assert b.pop("metric") == "accuracy" and close(a, b)
    # evaluation batch by batch equals one batch holding the whole test set
    fz = FrozenNet(net, maskable_names(net))
    stream = StreamedData(data, "train", (3,))
    fns = list(data_class_functions(data).values()) + [Function(CONTROL)]
    logits = torch.stack([torch.cat([streamed.logits[f][n].reshape(-1) for n in streamed.layer_names])
                          for f in streamed.functions])
    one = evaluate_streamed(fz, stream, fns, logits, True, batch_size=len(data.test))
    many = evaluate_streamed(fz, stream, fns, logits, True, batch_size=5)
    assert one.to_dict() == many.to_dict()


def test_memory_mapped_npz_streams(tmp_path):
    net = random_mlp([6, 10, 3], seed=1)
    g = np.random.default_rng(0)
    x = g.normal(size=(300, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x[:200], y_train=x[:200, :3].argmax(1), x_test=x[200:],
             y_test=x[200:, :3].argmax(1))
    data = load_data(tmp_path / "d.npz")
    assert isinstance(data.train.x, np.memmap)  # rows are read from disk as drawn
    res = train_masks(net, data, ["first=0", "rest=not:0"], steps=3, batch_size=8)
    assert res.functions == ["first", "rest", CONTROL] and 0 <= res.accuracy["first"]["rest"] <= 1


# -- a planted network ------------------------------------------------------------------------------


def planted_conv() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A 1x1 Conv1d and a Linear head made of two disjoint halves: A = sign of input channel 0
    (channels 0-3, outputs 0-1), B = sign of input channel 4 (channels 4-7, outputs 2-3);
    every cross-half weight is zero."""
    g = torch.Generator().manual_seed(0)
    conv, head = nn.Conv1d(8, 8, 1), nn.Linear(8, 4)
    w1, w2 = torch.zeros(8, 8), torch.zeros(4, 8)
    for h, i, o in ((0, 0, 0), (4, 4, 2)):
        w1[h, i], w1[h + 1, i] = 3.0, -3.0  # h = relu(x), h + 1 = relu(-x)
        w1[h + 2 : h + 4, i : i + 4] = 0.1 * torch.randn(2, 4, generator=g)  # distractors
        w2[o, h + 1], w2[o + 1, h] = 3.0, 3.0
        w2[o : o + 2, h + 2 : h + 4] = 0.1 * torch.randn(2, 2, generator=g)
    with torch.no_grad():
        conv.weight.copy_(w1[:, :, None])
        head.weight.copy_(w2)
        conv.bias.zero_()
        head.bias.zero_()
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), head).eval()
    x = torch.randn(1024, 8, 1, generator=g)
    y = torch.stack([(x[:, 0, 0] > 0).long(), (x[:, 4, 0] > 0).long()], 1)
    return net, x, y


def test_planted_halves_get_separate_masks():
    net, x, y = planted_conv()
    data = load_data((x[768:], y[768:]), train=(x[:768], y[:768]), output_groups=(2, 2))
    res = train_masks(net, data, ["A=outputs:0", "B=outputs:1"], steps=250, batch_size=64)
    a0, a1 = res.masks["A"]["0.weight"][:, :, 0], res.masks["A"]["3.weight"]
    b0, b1 = res.masks["B"]["0.weight"][:, :, 0], res.masks["B"]["3.weight"]
    assert not a0[4:].any() and not a1[2:].any() and not b0[:4].any() and not b1[:2].any()
    assert a0[0, 0] and a0[1, 0] and b0[4, 4] and b0[5, 4]
    assert res.iou["A|B"] < 0.05
    assert res.accuracy["A"]["A"] >= 0.98 and res.accuracy["B"]["B"] >= 0.98
    assert res.inverted_accuracy["A"]["A"] < 0.7 and res.inverted_accuracy["A"]["B"] >= 0.98


# -- alignment on unit graphs -----------------------------------------------------------------------


def halves_masks(net: ResCNN, c: int) -> dict[str, dict[str, torch.Tensor]]:
    """A keeps every weight between the first half of the units of each hidden set (and output 0),
    B between the second halves (and output 1)."""
    out = {}
    for fn, (lo, hi), o in (("A", (0, c // 2), 0), ("B", (c // 2, c), 1)):
        m = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in net.named_parameters() if p.ndim >= 2}
        m["stem.weight"][lo:hi] = True
        m["a.weight"][lo:hi, lo:hi] = True
        m["b.weight"][lo:hi, lo:hi] = True
        m["fc.weight"][o, lo:hi] = True
        out[fn] = m
    return out


@pytest.mark.slow  # mask training on a traced residual net
def test_alignment_on_a_traced_residual_graph():
    from modscope.graphs.load import load_graph

    c = 8
    net = seeded(ResCNN(c=c, out=2))
    x = torch.zeros(1, 2, 5, 5)
    units = trace_network(net, x).parameters
    graph = load_graph(net, example_input=x)
    assert list(graph.group_names) == list(units.graph.group_names) == ["input:x", "stem+b", "a", "fc"]
    masks = halves_masks(net, c)
    # stream unit 0 under A: stem row 0 (2 inputs), a's column 0 (4 rows x 9), b's row 0 (4 x 9), fc
    counts = units.node_counts(masks["A"])
    stream = 2  # input:x has 2 nodes, then the stream
    assert counts[stream] == 2 + 36 + 36 + 1 and counts[stream + c // 2] == 0
    by_graph = graph_parameter_map(graph, {n: tuple(m.shape) for n, m in masks["A"].items()})
    assert np.array_equal(by_graph.node_counts(masks["A"]), counts)
    labels = np.zeros(graph.n_nodes, dtype=np.int64)
    for g_ in (1, 2):  # the stream and the block's hidden channels: halves in clusters 0 and 1
        start = sum(graph.sizes[:g_])
        labels[start + c // 2 : start + c] = 1
    al = alignment(labels, masks, graph=units, n_null=200, seed=0)
    assert al.ami == pytest.approx(1.0) and al.p_value < 0.05
    assert al.share[0]["A"] == 1.0 and al.share[1]["B"] == 1.0
    assert al.n_neurons == 2 * c and al.groups == ["stem+b", "a"]
    assert alignment(labels, masks, graph=graph, n_null=200, seed=0).to_dict() == al.to_dict()
    with pytest.raises(ModscopeError, match="one label per node"):
        alignment(labels[:-1], masks, graph=units, n_null=0)


def test_alignment_on_a_traced_mlp_equals_the_feed_forward_reading():
    from tests.masks.test_masks import planted_masks

    masks = {f: {f"layers.{i}.weight": t for i, t in enumerate(v)} for f, v in planted_masks().items()}
    labels = np.array([0, 0, 1, 1] + [0] * 3 + [1] * 3 + [0, 1] * 3 + [0, 1])
    plain = alignment(labels, masks, n_null=100, seed=2)
    traced = alignment(labels, masks, graph=trace_network(MLP([4, 6, 6, 2]).eval(), torch.zeros(1, 4)),
                       n_null=100, seed=2)
    d = traced.to_dict()
    assert d.pop("groups") == ["layers.0", "layers.1"] and d == plain.to_dict()


def test_lstm_gate_rows_count_for_their_hidden_unit_and_packed_rows_are_refused():
    net = seeded(LSTMClassifier(n_in=3, hidden=4, layers=1, out=2))
    units = trace_network(net, torch.zeros(1, 5, 3)).parameters
    m = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in net.named_parameters() if p.ndim >= 2}
    m["lstm.weight_ih_l0"][4 + 1, 0] = True  # the forget gate row of hidden unit 1, from input 0
    m["lstm.weight_ih_l0"][12 + 1, 2] = True  # its output gate row, from input 2
    counts = units.node_counts(m)
    assert counts[:3].tolist() == [1, 0, 1] and counts[3:7].tolist() == [0, 2, 0, 0]
    from modscope.graphs.tracing import trace_graph

    class Attn(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.attn(x, x, x, need_weights=False)[0][:, 0])

    a = Attn().eval()
    g = trace_graph(a, torch.zeros(1, 3, 4))
    shapes = {n: tuple(p.shape) for n, p in a.named_parameters() if p.ndim >= 2}
    with pytest.raises(ModscopeError, match="trace_network"):
        graph_parameter_map(g, shapes)  # packed q/k/v rows: only the trace knows which are values
    inc = {i.parameter: i for i in trace_network(a, torch.zeros(1, 3, 4)).parameters.incidences}
    rows = inc["attn.in_proj_weight"].dst.reshape(12, 4)
    assert (rows[:8] == -1).all() and (rows[8:] >= 0).all()  # only the value rows write units


# -- functions and bad input ------------------------------------------------------------------------


def test_functions_from_predicates_and_bad_input():
    net = random_mlp([6, 10, 3], seed=2)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(120, 6, generator=g)
    data = load_data((x, x[:, :3].argmax(1)))
    res = train_masks(net, data, {"big": lambda xb, yb: xb[:, 0] > 0}, steps=2, batch_size=4)
    assert res.functions == ["big", CONTROL]
    for functions, match in [
        (None, "no functions to mask"),
        (["nope"], "no function 'nope'"),
        (["x=7"], "does not exist"),
        (["a=outputs:3"], "output groups"),
    ]:
        with pytest.raises(ModscopeError, match=match):
            train_masks(net, data, functions, steps=2)
    with pytest.raises(ModscopeError, match="go up to class 5"):
        train_masks(net, load_data((x, torch.arange(120) % 6)), ["a=0"], steps=2)
    with pytest.raises(ModscopeError, match="do not fit the model"):
        train_masks(net, load_data((torch.randn(10, 5), torch.zeros(10))), ["a=0"], steps=2)
    only_test = load_data((x, x[:, :3].argmax(1)), train=(x[:20], torch.zeros(20, dtype=torch.long)))
    with pytest.raises(ModscopeError, match="no train examples"):
        train_masks(net, only_test, ["two=2"], steps=2)


# -- the command line --------------------------------------------------------------------------------

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 6, 3, padding=1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        h = torch.relu(self.c1(x))
        h = h + torch.relu(self.c2(h))
        return self.fc(h.mean((2, 3)))


def make_with_input():
    return Net(), torch.zeros(1, 3, 8, 8)
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "masknet.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import masknet

    torch.manual_seed(0)
    torch.save(masknet.make_with_input()[0].state_dict(), tmp_path / "w.pt")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x[:40], y_train=np.arange(40) % 3, x_test=x[40:],
             y_test=np.arange(40) % 4)
    np.savez(tmp_path / "ten.npz", x_test=x[:40], y_test=np.arange(40) % 10)
    np.savez(tmp_path / "flat.npz", x_test=x[:40, 0, 0], y_test=np.arange(40) % 4)
    yield tmp_path
    sys.modules.pop("masknet", None)


def test_cli_masks_of_a_users_module(project, capsys):
    argv = ["masks", "w.pt", "--model", "masknet:make_with_input", "--data", "d.npz", "--steps", "3",
            "--batch-size", "8", "--no-progress"]
    assert main([*argv, "--function", "low=0,1", "--function", "two=2", "--json", "m.json",
                 "--save", "m.pt"]) == 0
    out = capsys.readouterr().out
    assert "low|two" in out and "unit group" in out and "c1+c2" in out
    d = json.loads((project / "m.json").read_text())
    assert d["functions"] == ["low", "two", CONTROL] and d["metric"] == "accuracy"
    assert set(d["groups"]) == {"input:x", "c1+c2", "fc"}
    assert (project / "m.pt").exists()
    assert main([*argv, "--classes", "--json", "c.json"]) == 0
    capsys.readouterr()
    c = json.loads((project / "c.json").read_text())
    assert c["functions"] == ["not-0", "not-1", "not-2", "not-3", CONTROL] and "class_drop" in c


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--data", "ten.npz", "--function", "a=0"], "go up to class 9"),
        (["--data", "d.npz", "--function", "x=9"], "does not exist"),
        (["--data", "d.npz", "--function", "three=3"], "no train examples"),
        (["--data", "flat.npz", "--function", "a=0"], "do not fit the model"),
        (["--data", "d.npz"], "--function NAME=CLASSES"),
        (["--data", "d.npz", "--classes", "--function", "a=0"], "not both"),
        (["--function", "a=0"], "needs --data"),
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(project, capsys, extra, words):
    argv = ["masks", "w.pt", "--model", "masknet:make_with_input", "--steps", "2", "--no-progress",
            "--json", "out.json", "--save", "out.pt", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (project / "out.json").exists() and not (project / "out.pt").exists()
    assert main(["masks", "w.pt", "--function", "a=0", "--no-progress"]) == 2
    assert "go with --model" in capsys.readouterr().err
