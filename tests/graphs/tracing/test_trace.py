"""Tracing any nn.Module into its unit graph (spec §1b), checked against definitions by hand.

Oracles: the chain and channel-graph readers of plain stacks (exact), the weights of each layer
sliced by hand (LayerNorm / RMSNorm gains, gate rows, fused qkv columns, grouped key/value heads,
channel-last flatten), and the structure each architecture must have (one residual stream, value
units without queries and keys, recurrent blocks within a unit set, two heads on one trunk).
"""

import numpy as np
import pytest
import torch
from torch import nn

from modscope import load_graph
from modscope.clustering.embedding import spectral_embedding
from modscope.errors import ModscopeError
from modscope.graphs.cnn import conv_graph
from modscope.graphs.tracing import slice_norms, trace_graph
from tests.helpers import nets


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def block(g, name: str) -> np.ndarray:
    return g.weights[g.names.index(name)]


def group(g, name: str) -> int:
    return g.group_names.index(name)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def test_an_mlp_traces_to_its_chain_exactly():
    mlp = nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.2), nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)
    )
    traced = trace_graph(mlp, torch.zeros(1, 6))
    chain = load_graph(mlp)
    assert traced.is_chain and traced.sizes == chain.sizes == (6, 5, 4, 3)
    assert traced.names == chain.names == ("0.weight", "3.weight", "5.weight")
    for a, b in zip(traced.weights, chain.weights, strict=True):
        np.testing.assert_array_equal(a, b)  # signed, bit for bit
    assert mlp.training  # the module's mode is restored


def test_a_cnn_traces_to_its_channel_graph_with_batchnorm_folded():
    cnn = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, groups=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(5 * 2 * 3, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    )
    with torch.no_grad():
        cnn[1].running_var.uniform_(0.5, 2.0)
        cnn[1].weight.uniform_(-2.0, 2.0)
    for norm in ("1", "l2", "max"):
        traced = trace_graph(cnn, torch.zeros(1, 3, 8, 10), kernel_norm=norm)
        ref = conv_graph(cnn, norm=norm, input_shape=(3, 8, 10))  # a 2 x 3 map before the flatten
        assert traced.sizes == ref.sizes == (3, 4, 5, 6, 3)
        for a, b in zip(traced.weights, ref.weights, strict=True):
            np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-12)


def test_grouped_and_depthwise_convs_join_only_their_groups():
    net = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8))
    g = trace_graph(net, torch.zeros(1, 4, 9, 9))
    grouped, depthwise = g.weights
    assert np.all(grouped[:4, 2:] == 0) and np.all(grouped[4:, :2] == 0) and np.all(grouped[:4, :2] > 0)
    assert np.count_nonzero(depthwise) == 8 and np.all(np.diag(depthwise) > 0)


def test_channel_last_flatten_reads_the_columns_the_code_uses():
    net = nets.ChannelLastHead(c_in=2, c=3, hw=(2, 3), out=4)
    g = trace_graph(net, torch.zeros(1, 2, 2, 3))
    w = np.abs(np64(net.fc.weight)).reshape(4, 2, 3, 3)  # columns (h, w, c)
    want = w.transpose(0, 3, 1, 2).sum(axis=2).max(axis=2)  # per channel: 1-norm of its 2 x 3 map
    np.testing.assert_allclose(block(g, "fc.weight"), want, rtol=1e-12)
    channel_major = np.abs(np64(net.fc.weight)).reshape(4, 3, 2, 3).sum(axis=2).max(axis=2)
    assert not np.allclose(want, channel_major)  # the order matters: 0.2.0 read this one


def test_a_residual_network_is_one_stream_per_width_with_projection_shortcuts():
    net = nets.TinyResNet(widths=(4, 8))
    g = trace_graph(net, torch.zeros(1, 3, 8, 8))
    # stream 1 (4 channels): the stem and both blocks' second convs write into it; the 8-channel
    # stream is made by block 2's conv2 and the projection shortcut, then block 3's conv2
    stream4 = g.sizes[group(g, "conv1+2 merged")]
    stream8 = [i for i, n in enumerate(g.group_names) if n.startswith("layers.2.conv2")]
    assert stream4 == 4 and len(stream8) == 1 and g.sizes[stream8[0]] == 8
    links = dict(zip(g.names, g.links, strict=True))
    s4, s8 = group(g, "conv1+2 merged"), stream8[0]
    assert links["layers.0.conv2.weight"] == (
        group(g, "layers.0.conv1"),
        s4,
    )  # a block writes into the stream
    assert links["layers.0.conv1.weight"] == (s4, group(g, "layers.0.conv1"))  # and reads from it
    assert links["layers.2.downsample.0.weight"] == (s4, s8)  # the projection: stream to stream
    assert links["fc.weight"][0] == s8
    assert len(g.weights) == 11  # stem, 4 blocks x 2 convs, 1 projection, fc
    assert g.colours is None  # stream-to-stream edges: not bipartite, the plain path is taken
    emb, ev, _ = spectral_embedding(g, 3)
    _, ev_dense, _ = spectral_embedding(g, 3, "dense")
    np.testing.assert_allclose(ev, ev_dense, atol=1e-10)


def test_post_ln_transformer_values_only_and_layernorm_gains_in_the_readers():
    net = nets.TinyBert(d=8, heads=2, f=12, n=2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(-2.0, 2.0)
    g = trace_graph(net, torch.zeros(1, 5, dtype=torch.long))
    stream = group(g, "input:tokens+5 merged")
    assert g.sizes[stream] == 8
    assert set(g.names) == {
        f"layers.{i}.{n}.weight" for i in (0, 1) for n in ("attn.v", "attn.o", "fc1", "fc2")
    } | {"classifier.weight"}  # no query, no key: they route, they carry nothing (spec §1b)
    layer = net.layers[1]
    ln1 = np.abs(np64(layer.ln1.weight))
    np.testing.assert_allclose(block(g, "layers.1.fc1.weight"), np64(layer.fc1.weight) * ln1[None, :])
    prev = np.abs(np64(net.layers[0].ln2.weight))  # layer 1's attention reads layer 0's output
    np.testing.assert_allclose(block(g, "layers.1.attn.v.weight"), np64(layer.attn.v.weight) * prev[None, :])
    np.testing.assert_array_equal(block(g, "layers.1.attn.o.weight"), np64(layer.attn.o.weight))
    assert g.colours is not None  # stream against values and MLP units: bipartite
    kept = trace_graph(net, torch.zeros(1, 5, dtype=torch.long), keep_dead_ends=True)
    assert "layers.0.attn.q.weight" in kept.names and "layers.0.attn.k.weight" in kept.names


def test_llama_swiglu_and_grouped_query_heads():
    net = nets.TinyLlama(d=8, heads=4, kv=2, f=12, n=1)
    with torch.no_grad():
        net.layers[0].norm2.weight.uniform_(0.5, 2.0)
    layer = net.layers[0]
    g = trace_graph(net, torch.zeros(1, 3, dtype=torch.long))
    gain = np.abs(np64(layer.norm2.weight))[None, :]
    gate, up = np.abs(np64(layer.gate.weight)) * gain, np.abs(np64(layer.up.weight)) * gain
    # gate and up feed the same hidden units: one edge, the norm over the two rows' slice
    np.testing.assert_allclose(block(g, "layers.0.gate.weight+layers.0.up.weight"), gate + up)
    l2 = trace_graph(net, torch.zeros(1, 3, dtype=torch.long), kernel_norm="l2")
    np.testing.assert_allclose(block(l2, "layers.0.gate.weight+layers.0.up.weight"), np.hypot(gate, up))
    assert g.sizes[group(g, "layers.0.gate+layers.0.up")] == 12
    # 4 query heads share 2 value heads of 2 dims: o_proj column j reads value unit (j//2//2)*2 + j%2
    o = np.abs(np64(layer.attn.o.weight))
    want = np.zeros((8, 4))
    for j in range(8):
        want[:, (j // 2 // 2) * 2 + j % 2] += o[:, j]
    np.testing.assert_allclose(block(g, "layers.0.attn.o.weight"), want)
    assert g.sizes[group(g, "layers.0.attn.v")] == 4


def test_gpt2_conv1d_fused_qkv_gives_the_value_columns():
    net = nets.GPT2Block(d=8, heads=2)
    with torch.no_grad():
        net.ln_1.weight.uniform_(0.5, 2.0)
    g = trace_graph(net, torch.zeros(1, 3, 8))
    w = np64(net.c_attn.weight)[:, 16:24].T  # (in, 3d) columns q | k | v
    np.testing.assert_allclose(block(g, "c_attn.weight"), w * np.abs(np64(net.ln_1.weight))[None, :])
    np.testing.assert_array_equal(block(g, "c_proj.weight"), np64(net.c_proj.weight).T)
    assert g.sizes == (8, 8, 32)  # stream (input + both residual adds), values, MLP units


def test_lstm_gate_rows_and_recurrent_blocks():
    net = nets.LSTMClassifier(n_in=3, hidden=4, layers=2)
    g = trace_graph(net, torch.zeros(1, 5, 3))
    ih = np.abs(np64(net.lstm.weight_ih_l0)).reshape(4, 4, 3).sum(axis=0)  # i, f, g, o rows per unit
    np.testing.assert_allclose(block(g, "lstm.weight_ih_l0"), ih)
    hh = np.abs(np64(net.lstm.weight_hh_l1)).reshape(4, 4, 4).sum(axis=0)
    np.fill_diagonal(hh, 0.0)  # self-loops dropped
    np.testing.assert_allclose(block(g, "lstm.weight_hh_l1"), hh)
    links = dict(zip(g.names, g.links, strict=True))
    assert links["lstm.weight_hh_l0"][0] == links["lstm.weight_hh_l0"][1]  # inside one unit set
    assert links["fc.weight"][0] == links["lstm.weight_ih_l1"][1]  # the head reads the top layer
    l2 = trace_graph(net, torch.zeros(1, 5, 3), kernel_norm="l2")
    rows = np64(net.lstm.weight_ih_l0).reshape(4, 4, 3)
    np.testing.assert_allclose(block(l2, "lstm.weight_ih_l0"), np.sqrt((rows**2).sum(axis=0)))


def test_gru_bidirectional_and_a_python_loop_of_cells():
    gru = nn.GRU(3, 4, bidirectional=True)
    g = trace_graph(gru, torch.zeros(5, 1, 3))
    assert sorted(g.names) == sorted(
        ["weight_ih_l0", "weight_hh_l0", "weight_ih_l0_reverse", "weight_hh_l0_reverse"]
    )
    cells = nets.CellLoop(n_in=3, hidden=4)
    g = trace_graph(cells, torch.zeros(1, 6, 3))
    assert g.names == ("cell.weight_ih", "cell.weight_hh", "fc.weight")  # six steps, one set of units
    assert g.sizes == (3, 4, 2)


def test_two_heads_on_one_trunk_with_prelu():
    net = nets.TwoHeadCNN(c=4)
    g = trace_graph(net, torch.zeros(1, 1, 6, 6))
    links = dict(zip(g.names, g.links, strict=True))
    trunk = links["trunk.0.weight"][1]
    assert links["classes.weight"][0] == trunk and links["boxes.weight"][0] == trunk
    assert g.sizes == (1, 4, 2, 3)


def test_slice_norms_follow_their_definitions():
    rng = np.random.default_rng(0)
    k = rng.normal(size=(3, 2, 4, 5))
    np.testing.assert_allclose(slice_norms(k, "1")[1, 0], np.linalg.norm(k[1, 0], 1))
    np.testing.assert_allclose(slice_norms(k, "l2")[2, 1], np.linalg.norm(k[2, 1]))
    np.testing.assert_allclose(slice_norms(k, "max")[0, 0], np.abs(k[0, 0]).max())
    v = rng.normal(size=(3, 2, 4))
    np.testing.assert_allclose(slice_norms(v, "1"), np.abs(v).sum(axis=2))
    with pytest.raises(ModscopeError, match="kernel norm"):
        slice_norms(v, "nuclear")


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.fc(x)
        return x


class _Einsum(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3, 4))

    def forward(self, x):
        return torch.einsum("bi,ij->bj", x, self.w)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def test_what_cannot_be_traced_is_refused_in_one_line():
    cases = [
        (lambda: trace_graph(_Branchy(), torch.ones(1, 3)), "data-dependent"),
        (lambda: trace_graph(_Einsum(), torch.ones(1, 3)), "einsum"),
        (lambda: load_graph(_Residual()), "example_input"),  # its order is in its forward
        (lambda: trace_graph(nets.TinyResNet(), torch.zeros(1, 3)), "cannot trace"),  # wrong shape
        (lambda: trace_graph(nn.Linear(3, 2), torch.zeros(1, 3), kernel_norm="nuc"), "kernel norm"),
        (lambda: trace_graph("not a module", torch.zeros(1)), "nn.Module"),
    ]
    for make, words in cases:
        with pytest.raises(ModscopeError, match=words) as info:
            make()
        assert "\n" not in str(info.value)
    g = load_graph(_Residual(), example_input=torch.zeros(1, 4))
    assert g.reading.startswith("traced with torch.export")
    assert g.sizes == (4, 4)  # the input and both adds: one stream; a's units


class _Mono(nn.Module):
    """A waveform ``(batch, samples)`` made a one-channel map, reflect-padded, into a Conv1d (Silero
    VAD's front); and ``x[:, None, :, None]`` zero-padded into a (k x 1) Conv2d (CREPE's)."""

    def __init__(self, two_d: bool = False) -> None:
        super().__init__()
        self.two_d = two_d
        self.conv = nn.Conv2d(1, 3, (4, 1), (2, 1)) if two_d else nn.Conv1d(1, 3, 4, stride=2)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        if self.two_d:
            y = self.conv(nn.functional.pad(x[:, None, :, None], (0, 0, 1, 2))).mean((2, 3))
        else:
            y = self.conv(nn.functional.pad(x, (0, 3), mode="reflect").unsqueeze(1)).mean(-1)
        return self.fc(y)


class _PadFlatten(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        self.fc = nn.Linear(3 * 4 * 5, 2)

    def forward(self, x):
        return self.fc(nn.functional.pad(self.conv(x), (1, 1, 1, 1)).flatten(1))


def test_a_mono_signal_is_one_input_unit_and_pads_keep_units():
    """Regression (real weights: Silero VAD, CREPE): a ``(batch, samples)`` input read by a conv of
    one input channel is one unit (it was refused: its samples were taken as features), and
    ``F.pad`` (``aten.pad``, refused before) keeps each element's unit, the new ones holding none."""
    for two_d in (False, True):
        net = _Mono(two_d)
        g = trace_graph(net, torch.zeros(1, 16))
        assert g.sizes == (1, 3, 2) and g.group_names[0] == "input:x"
        k = np.abs(np64(net.conv.weight)).reshape(3, 4)
        np.testing.assert_allclose(block(g, "conv.weight"), k.sum(axis=1)[:, None], rtol=1e-12)
    net = _PadFlatten()
    g = trace_graph(net, torch.zeros(1, 2, 2, 3))
    w = np.abs(np64(net.fc.weight)).reshape(2, 3, 4, 5)[:, :, 1:3, 1:4]  # the padded map's inner 2 x 3
    np.testing.assert_allclose(block(g, "fc.weight"), w.sum(axis=2).max(axis=2), rtol=1e-12)


def test_an_output_element_without_a_unit_makes_no_unit_live():
    """An output holding a constant (no unit, -1) next to unit 1: only unit 1 and what feeds it stay.
    The -1 was once looked up as the last unit's root, so a dead end created last was kept."""
    import numpy as np

    from modscope.graphs.tracing.unit_table import GraphBuilder

    b = GraphBuilder()
    x, out, dead = b.new_group("x", 1), b.new_group("out", 1), b.new_group("dead", 1)
    b.add_block("fc", x, out, np.ones((1, 1)))
    b.add_block("aux", x, dead, np.ones((1, 1)))  # read by nothing: a dead end, the last unit
    root = b.roots(np.arange(3))
    kept = b._kept(root, [np.array([out[0], -1])], keep_dead_ends=False)
    assert kept.tolist() == [True, True, False]
    assert b._kept(root, [np.array([out[0], -1])], keep_dead_ends=True).tolist() == [True, True, True]
