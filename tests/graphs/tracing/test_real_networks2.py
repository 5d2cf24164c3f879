"""Issue 24: real networks, second round. Each test is a small network of the pattern a published
model showed (two silent misreads, refusals of common architectures, messages and loading)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from modscope import load_graph, score  # noqa: E402
from modscope.errors import ModscopeError  # noqa: E402
from modscope.graphs.weight_graph import WeightGraph  # noqa: E402
from tests.conftest import require_extra  # noqa: E402
from tests.helpers.paths import FIXTURES  # noqa: E402


def _planted_chain(dead: float) -> WeightGraph:
    """Two 4-unit modules through 3 layers, plus two hidden units whose weights are ``dead``."""
    rng = np.random.default_rng(0)
    blocks = []
    for n_out, n_in in ((10, 8), (8, 10)):
        w = np.zeros((n_out, n_in))
        half_o, half_i = 4, 4
        w[:half_o, :half_i] = rng.uniform(0.5, 1.0, (half_o, half_i))
        w[half_o : 2 * half_o, half_i : 2 * half_i] = rng.uniform(0.5, 1.0, (half_o, half_i))
        blocks.append(w)
    blocks[0][8:, :] = dead  # two dead hidden units (a trained net's dead channels)
    blocks[1][:, 8:] = dead
    return WeightGraph(blocks)


# -- 2. near-zero units are isolated -------------------------------------------------------------
def test_near_zero_units_count_as_isolated_in_network_and_nulls():
    g = _planted_chain(1e-35)
    assert g.n_negligible == 2 and not g.active[8 + 8 : 8 + 10].any()
    assert g.active.sum() == g.n_nodes - 2
    assert "2 numerically dead units" in g.summary()["reading"]
    assert g.negligible_degree == pytest.approx(4 * np.finfo(float).eps * g.n_edges * g.degree.sum() / 2)
    clean = _planted_chain(0.0)
    r, r0 = score(g, n_clusters=2, n_shuffles=3, seed=1), score(clean, n_clusters=2, n_shuffles=3, seed=1)
    assert r.ncut == pytest.approx(r0.ncut, abs=1e-9) and r.ncut < 0.01  # no singleton clusters
    assert (r.partition.labels < 0).sum() == 2
    # a null sample follows the same rule: its light units are isolated too
    from modscope.nulls import get_null

    sample = get_null("layer").sample(g, 0)
    assert sample.negligible_degree == pytest.approx(g.negligible_degree)
    assert not sample.active[sample.degree <= sample.negligible_degree].any()
    # a light but real unit (1e-9 of the others) stays
    assert _planted_chain(1e-9).n_negligible == 0


# -- 4. L2 normalisation keeps units -------------------------------------------------------------
class _Embedder(nn.Module):
    def __init__(self, how: str) -> None:
        super().__init__()
        self.a, self.b, self.how = nn.Linear(5, 6), nn.Linear(6, 4), how

    def forward(self, x):
        h = self.b(torch.relu(self.a(x)))
        if self.how == "normalize":
            return nn.functional.normalize(h, dim=-1)
        if self.how == "norm":
            return h / torch.norm(h, dim=1, keepdim=True)
        if self.how == "vector_norm":
            return h / torch.linalg.vector_norm(h, dim=-1, keepdim=True)
        return h / h.pow(2).sum(1, keepdim=True).sqrt()


@pytest.mark.parametrize("how", ["normalize", "norm", "vector_norm"])
def test_l2_normalisation_reads_like_the_written_out_norm(how):
    g = load_graph(_Embedder(how), example_input=torch.zeros(1, 5))
    ref = load_graph(_Embedder("manual"), example_input=torch.zeros(1, 5))
    assert g.sizes == ref.sizes == (5, 6, 4)
    assert g.group_names == ("input:x", "a", "b")


# -- 3. upsampling and multi-channel reads (YOLO necks) ------------------------------------------
class _SPPF(nn.Module):
    """cv2 reads cv1's channels three times: the map and two pooled copies (SPPF / C2f)."""

    def __init__(self) -> None:
        super().__init__()
        self.cv1, self.cv2 = nn.Conv2d(3, 4, 1), nn.Conv2d(12, 5, 3, padding=1)
        self.m, self.up = nn.MaxPool2d(5, 1, 2), nn.Upsample(scale_factor=2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        return self.up(self.cv2(torch.cat([x, y1, self.m(y1)], 1)))


def _sppf_expected(m: _SPPF) -> np.ndarray:
    k = m.cv2.weight.detach().double().abs().numpy()
    per = np.abs(k).sum(axis=2).max(axis=-1)  # numpy's matrix 1-norm of each 3x3 slice
    return per[:, :4] + per[:, 4:8] + per[:, 8:]


def test_conv_reading_a_unit_through_several_channels_sums_the_slices():
    torch.manual_seed(0)
    m = _SPPF()
    g = load_graph(m, example_input=torch.zeros(1, 3, 8, 8))
    assert g.sizes == (3, 4, 5) and g.group_names == ("input:x", "cv1", "cv2")
    np.testing.assert_allclose(g.weights[1], _sppf_expected(m), rtol=1e-6)


def _export_onnx(m, example, path, **kw):
    require_extra("onnx")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (example,), str(path), dynamo=False, input_names=["x"], **kw)
    return path


def test_onnx_resize_and_multi_channel_reads(tmp_path):
    torch.manual_seed(0)
    m = _SPPF()
    path = _export_onnx(m, torch.zeros(1, 3, 8, 8), tmp_path / "sppf.onnx")
    g = load_graph(path)
    assert g.sizes == (3, 4, 5)
    np.testing.assert_allclose(g.weights[1], _sppf_expected(m), rtol=1e-5)


def _renamed_onnx(tmp_path):
    """An ONNX file whose initializers are numbers and whose nodes have no names (exporters do so)."""
    require_extra("onnx")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "391")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 2)).astype(np.float32), "135")
    nodes = [
        helper.make_node("Conv", ["x", "391"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "135"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w1, w2],
    )
    path = tmp_path / "numbers.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


# -- 10. ONNX groups named by node, not by initializer number -------------------------------------
def test_onnx_groups_are_named_by_op_and_index(tmp_path):
    g = load_graph(_renamed_onnx(tmp_path))
    assert g.group_names == ("input:x", "conv_0", "matmul_4")
    assert not any(name.strip("+").isdigit() for name in g.group_names)


def test_onnx_refusal_names_the_node_and_op(tmp_path):
    require_extra("onnx")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 8, 1, 1), np.float32), "391")
    nodes = [  # H moved onto the channel axis: a conv would mix positions differently
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3], name="swap"),
        helper.make_node("Conv", ["t", "391"], ["y"], name="head_conv"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ModscopeError, match=r"cannot trace ONNX Conv node head_conv: its input features"):
        load_graph(path)


# -- 1. a recurrent layer's initial state is an input of its units --------------------------------
class _Seq2Seq(nn.Module):
    """A GRU / LSTM encoder whose last state starts the decoder."""

    def __init__(self, kind: str = "gru") -> None:
        super().__init__()
        rnn = nn.GRU if kind == "gru" else nn.LSTM
        self.emb, self.enc = nn.Embedding(10, 4), rnn(4, 5, batch_first=True)
        self.dec, self.out = rnn(3, 5, batch_first=True), nn.Linear(5, 2)

    def forward(self, src, tgt):
        _, h = self.enc(self.emb(src))
        y, _ = self.dec(tgt, h)
        return self.out(y)


class _ContextInit(nn.Module):
    """A Linear of a context vector initialises h0."""

    def __init__(self) -> None:
        super().__init__()
        self.init, self.gru, self.out = nn.Linear(6, 5), nn.GRU(3, 5, batch_first=True), nn.Linear(5, 2)

    def forward(self, x, ctx):
        y, _ = self.gru(x, torch.tanh(self.init(ctx)).unsqueeze(0))
        return self.out(y)


_SEQ = (torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, 3))


def _gate_norms(w: torch.Tensor, gates: int) -> np.ndarray:
    a = w.detach().double().abs().numpy()
    return a.reshape(gates, a.shape[0] // gates, a.shape[1]).sum(axis=0)


@pytest.mark.parametrize(("kind", "gates"), [("gru", 3), ("lstm", 4)])
def test_encoder_state_into_decoder_is_read(kind, gates):
    torch.manual_seed(0)
    m = _Seq2Seq(kind)
    g = load_graph(m, example_input=_SEQ)
    assert g.group_names == ("input:tgt", "input:emb", "enc.hidden_l0", "dec.hidden_l0", "out")
    assert g.sizes == (3, 4, 5, 5, 2)  # the encoder's embedding and GRU are no longer dropped
    link = g.links.index((2, 3))  # encoder hidden -> decoder hidden, once (an LSTM's c0 adds none)
    assert g.links.count((2, 3)) == 1
    np.testing.assert_allclose(g.weights[link], _gate_norms(m.dec.weight_hh_l0, gates), rtol=1e-6)


def test_h0_computed_by_a_linear_is_read():
    torch.manual_seed(0)
    m = _ContextInit()
    g = load_graph(m, example_input=(torch.zeros(1, 3, 3), torch.zeros(1, 6)))
    assert g.group_names == ("input:x", "input:ctx", "init", "gru.hidden_l0", "out")
    np.testing.assert_allclose(
        g.weights[g.links.index((2, 3))], _gate_norms(m.gru.weight_hh_l0, 3), rtol=1e-6
    )


def test_masks_unit_table_and_lesions_see_the_encoder():
    from modscope.graphs.tracing import trace_network
    from modscope.lesions.lesioner import UnitLesioner

    m = _Seq2Seq("gru")
    um = trace_network(m, _SEQ).parameters
    names = dict.fromkeys(n for n, _, _, _ in um.group_entries(["enc.weight_ih_l0"], [15 * 4]))
    assert "enc.hidden_l0" in names and "enc.weight_hh_l0" not in um.unmapped
    counts = um.node_counts({n: torch.ones_like(p, dtype=torch.bool) for n, p in m.named_parameters()})
    enc = slice(7, 12)  # the encoder's hidden units count their weights, h0 reads among them
    assert (counts[enc] > 0).all()
    traced = trace_network(m, _SEQ)
    lesion = np.zeros(traced.graph.n_nodes, dtype=bool)
    lesion[enc] = True
    src, tgt = torch.randint(0, 10, (2, 4)), torch.randn(2, 3, 3)
    with torch.no_grad(), UnitLesioner(m, traced).one_lesion(lesion):
        got = m(src, tgt)
    with torch.no_grad():  # the oracle: the decoder started from a zero state
        want = m.out(m.dec(tgt, torch.zeros(1, 2, 5))[0])
    torch.testing.assert_close(got, want)
    with pytest.raises(ModscopeError, match="use zero ablation"):
        UnitLesioner(m, traced, ablation="mean", means=[None] * len(traced.sites)).sites_of(lesion)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_lesion_of_the_state_units_batched(kind):
    from modscope.graphs.tracing import trace_network
    from modscope.lesions.lesioner import UnitLesioner

    torch.manual_seed(0)
    m = _Seq2Seq(kind).eval()
    traced = trace_network(m, _SEQ)
    lesion = np.zeros((2, traced.graph.n_nodes), dtype=bool)
    lesion[1, 7:12] = True  # copy 0 intact, copy 1 without the encoder's hidden units
    src, tgt = torch.randint(0, 10, (2, 4)), torch.randn(2, 3, 3)
    site = next(s for s in traced.sites if s.arg == 1)
    assert site.module == "dec" and site.unhookable is None
    zero = torch.zeros(1, 2, 5)
    with torch.no_grad():
        # only the decoder's state site (the encoder's own w_hh read is a parameter site): hook it
        lesioner = UnitLesioner(m, traced)
        with lesioner._input_hook(
            site, traced.sites.index(site), lesion[:, site.nodes.clip(0)] & (site.nodes >= 0)
        ):
            got = m(src.repeat(2, 1), tgt.repeat(2, 1, 1))
        want = m.out(m.dec(tgt, (zero, zero) if kind == "lstm" else zero)[0])
    torch.testing.assert_close(got[:2], m(src, tgt))
    torch.testing.assert_close(got[2:], want)


# -- 6. ONNX inputs with symbolic sizes -----------------------------------------------------------
class _Pooled(nn.Module):
    """A conv, a 4x4 max pool and a head that flattens the pooled map: needs H, W >= 8."""

    def __init__(self) -> None:
        super().__init__()
        self.c, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 2 * 2, 2)

    def forward(self, x):
        return self.fc(nn.functional.max_pool2d(torch.relu(self.c(x)), 4).flatten(1))


def test_onnx_symbolic_sizes_are_named_and_input_shape_sets_them(tmp_path):
    path = _export_onnx(
        _Pooled(),
        torch.zeros(1, 3, 8, 8),
        tmp_path / "dyn.onnx",
        dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
    )
    with pytest.raises(ModscopeError) as info:
        load_graph(path)
    text = str(info.value)
    assert "x[2] (h), x[3] (w)" in text and "--input-shape" in text and "\n" not in text
    g = load_graph(path, input_shape=(1, 3, 8, 8))
    assert g.sizes == (3, 4, 2) and "(1, 3, 8, 8)" in g.reading
    with pytest.raises(ModscopeError, match="an input shape goes with a module"):
        load_graph({"w": torch.zeros(2, 2)}, input_shape=(1, 2))


def test_onnx_symbolic_sizes_that_trace_are_said_in_the_reading(tmp_path):
    m = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    path = _export_onnx(
        m, torch.zeros(1, 3, 8, 8), tmp_path / "gap.onnx", dynamic_axes={"x": {2: "h", 3: "w"}}
    )
    g = load_graph(path)
    assert "symbolic input sizes x[2] (h), x[3] (w) set to 1" in g.reading


def test_cli_input_shape_for_an_onnx_file(tmp_path, capsys):
    from modscope.cli import main

    path = _export_onnx(
        _Pooled(),
        torch.zeros(1, 3, 8, 8),
        tmp_path / "dyn.onnx",
        dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
    )
    rc = main(["score", str(path), "--input-shape", "1,3,8,8", "--clusters", "2", "--shuffles", "2"])
    assert rc == 0 and "(1, 3, 8, 8)" in capsys.readouterr().out
    weights = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2, 2)}, weights)
    assert main(["score", str(weights), "--input-shape", "1,2"]) == 2
    assert "--input-shape goes with --model, an .onnx or a Keras file" in capsys.readouterr().err


# -- 5. Hugging Face models: gathers on constant buffers, extra buffer keys -----------------------
class _BertEmbeddings(nn.Module):
    """BERT's embeddings as transformers writes them: token types gathered from a buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.word, self.token_type, self.position = (
            nn.Embedding(20, 8),
            nn.Embedding(2, 8),
            nn.Embedding(16, 8),
        )
        self.register_buffer("token_type_ids", torch.zeros(1, 16, dtype=torch.long), persistent=False)
        self.register_buffer("position_ids", torch.arange(16).expand(1, -1), persistent=False)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        pos = self.position_ids[:, : ids.shape[1]]
        tt = torch.gather(self.token_type_ids.expand(ids.shape[0], -1), 1, pos)
        return self.fc(self.word(ids) + self.token_type(tt) + self.position(pos))


def test_gather_on_a_constant_buffer_carries_no_units():
    g = load_graph(_BertEmbeddings(), example_input=torch.zeros(1, 5, dtype=torch.long))
    assert g.sizes == (8, 3)  # the three embeddings are one stream; the buffers add nothing


def test_gather_along_features_is_refused_in_one_line():
    class Picks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

        def forward(self, x):
            h = self.a(x)
            return self.b(torch.gather(h, 1, torch.zeros_like(h, dtype=torch.long)))

    with pytest.raises(ModscopeError, match="gathers along an axis of features"):
        load_graph(Picks(), example_input=torch.zeros(1, 4))


def test_extra_buffer_keys_are_ignored_and_said():
    from modscope.graphs.files.user_model import load_weights_into

    m = _BertEmbeddings()
    state = {**m.state_dict(), "position_ids": torch.arange(16)[None]}  # an older checkpoint's buffer
    assert load_weights_into(_BertEmbeddings(), state) == ["buffer keys ignored: position_ids"]
    state["head.weight"] = torch.zeros(2, 2)
    with pytest.raises(ModscopeError, match=r"has no 1 keys of the file \(head.weight\).*--non-strict"):
        load_weights_into(_BertEmbeddings(), state)
    notes = load_weights_into(_BertEmbeddings(), state, non_strict=True)
    assert "--non-strict: keys of the file the model lacks, dropped: head.weight" in notes
    del state["fc.weight"]
    with pytest.raises(ModscopeError, match=r"the file lacks 1 parameters \(fc.weight\)"):
        load_weights_into(_BertEmbeddings(), state)


def test_hugging_face_bert_through_its_own_class():
    require_extra("transformers")
    import transformers
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=12,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    state = {**model.state_dict(), "embeddings.position_ids": torch.arange(16)[None]}
    from modscope.graphs.files.user_model import load_weights_into

    load_weights_into(transformers.BertModel(config, add_pooling_layer=False), state)
    g = load_graph(model, example_input=torch.zeros(1, 5, dtype=torch.long))
    # the stream (word + token type + position embeddings, merged), the value units, the MLP units
    assert g.sizes == (8, 8, 12)
    assert g.group_names[1:] == ("encoder.layer.0.attention.self.value", "encoder.layer.0.intermediate.dense")


# -- 8. weights under other keys; names that are not a plain stack --------------------------------
@pytest.mark.parametrize("key", ["model_state", "state", "net", "weights", "ema"])
def test_state_dict_under_a_common_key(tmp_path, key):
    sd = {"0.weight": torch.ones(3, 4), "2.weight": torch.ones(2, 3)}
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, key: {**sd, "_meta": 1} if key == "ema" else sd}, path)
    assert load_graph(path).layer_widths == (4, 3, 2)


def test_no_state_dict_lists_the_keys_seen(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "opt": {"lr": 0.1}, "trainer": {"step": 2}}, path)
    with pytest.raises(ModscopeError, match="keys seen: epoch, opt, trainer"):
        load_graph(path)


@pytest.mark.parametrize(
    "names", [("enc_w_ih", "enc_w_hh"), ("gru.W_ih", "gru.W_hh"), ("lstm1.weight", "fc.weight")]
)
def test_recurrent_names_outside_torchs_convention_are_never_chained(names):
    sd = {names[0]: np.ones((12, 4)), names[1]: np.ones((4, 12))}  # shapes that would chain
    with pytest.raises(ModscopeError, match="recurrent weights"):
        load_graph(sd)


# -- 7. every command reads a network the same way, or says what it needs ------------------------
def test_garbage_and_renamed_files_are_not_called_pickles(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 2)
    with pytest.raises(ModscopeError) as info:
        load_graph(garbage)
    assert "pickle" not in str(info.value) and "not a torch checkpoint" in str(info.value)
    renamed = tmp_path / "model.pt"
    renamed.write_bytes(_renamed_onnx(tmp_path).read_bytes())
    with pytest.raises(ModscopeError, match="an ONNX model under another suffix: name it .onnx"):
        load_graph(renamed)


@pytest.mark.parametrize("command", ["knockout", "masks"])
def test_knockout_and_masks_say_what_they_need(tmp_path, capsys, command):
    from modscope.cli import main

    onnx_file = _renamed_onnx(tmp_path)
    sd = tmp_path / "mlp.pt"
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).state_dict(), sd)
    for path, words in ((onnx_file, "a model file"), (sd, "a state dict of 4 tensors")):
        assert main([command, str(path), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert words in err and "--model package.module:factory" in err and "pickle" not in err
        assert err.count("\n") == 1


def test_plot_network_draws_a_plain_state_dict(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from modscope.cli import main

    sd = tmp_path / "mlp.pt"
    torch.save(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)).state_dict(), sd)
    out = tmp_path / "net.png"
    assert main(["plot", "network", str(sd), "--out", str(out), "--clusters", "2"]) == 0
    assert out.stat().st_size > 0
    # --model in plot names a demo model (now --demo-model); code is never read there
    res = tmp_path / "r.json"
    res.write_text("{}")
    assert main(["plot", "histogram", str(res), "--model", "pkg.mod:make", "--out", str(out)]) == 2
    assert "--demo-model" in capsys.readouterr().err


# -- 9. blocks says how it read; a whole unit group is not "not significant" ---------------------
def test_blocks_reading(tmp_path, capsys):
    from safetensors.numpy import save_file

    from modscope.cli import main

    rng = np.random.default_rng(0)
    tensors = {f"h.{i}.mlp.c_fc.weight": rng.normal(size=(8, 16)).astype(np.float32) for i in range(2)} | {
        f"h.{i}.mlp.c_proj.weight": rng.normal(size=(16, 8)).astype(np.float32) for i in range(2)
    }
    path = tmp_path / "gpt.safetensors"
    save_file(tensors, str(path))
    out = tmp_path / "b.json"
    assert (
        main(["blocks", str(path), "--clusters", "2", "--shuffles", "2", "--json", str(out), "--no-progress"])
        == 0
    )
    assert "read as   2 MLP blocks by their key pairs" in capsys.readouterr().out
    import json

    assert json.loads(out.read_text())["reading"].startswith("2 MLP blocks")


def test_knockout_of_a_whole_unit_group_says_so():
    from modscope.lesions.knockout import _whole_groups
    from modscope.lesions.submodules import Submodule

    labelled = {1: np.arange(4), 2: np.arange(6)}
    whole = Submodule(layer=1, cluster=0, neurons=(0, 1, 2, 3))
    part = Submodule(layer=2, cluster=0, neurons=(0, 1))
    assert _whole_groups([whole], labelled) and not _whole_groups([part], labelled)
    assert not _whole_groups([whole, part], labelled)


# -- issue 25 (a): --model without --input-shape ---------------------------------------------------
def test_guess_example_from_the_first_layer():
    from modscope.graphs.files.user_model import guess_example

    x, how = guess_example(nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2)))
    assert tuple(x.shape) == (1, 5) and "Linear" in how
    x, how = guess_example(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
    assert tuple(x.shape) == (1, 3, 32, 32) and "spatial size 32 assumed" in how
    x, _ = guess_example(nn.GRU(4, 5, batch_first=True))
    assert tuple(x.shape) == (1, 8, 4)
    with pytest.raises(ModscopeError, match="pass --input-shape"):
        guess_example(nn.Sequential(nn.LayerNorm(4)))


USERNET = """
import torch
from torch import nn


def mlp():
    return nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))


def cnn():  # its head flattens an 8x8 map: the spatial size matters
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
"""


@pytest.fixture
def usernet(tmp_path, monkeypatch):
    import sys

    (tmp_path / "i24net.py").write_text(USERNET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import i24net

    torch.save(i24net.mlp().state_dict(), tmp_path / "mlp.pt")
    torch.save(i24net.cnn().state_dict(), tmp_path / "cnn.pt")
    yield tmp_path
    sys.modules.pop("i24net", None)


def test_score_model_without_input_shape(usernet, capsys):
    from modscope.cli import main

    assert main(["score", "mlp.pt", "--model", "i24net:mlp", "--clusters", "2", "--shuffles", "2"]) == 0
    assert "example input 1,5: 5 features, from the first layer (Linear)" in capsys.readouterr().out
    assert main(["score", "cnn.pt", "--model", "i24net:cnn", "--clusters", "2", "--shuffles", "2"]) == 2
    err = capsys.readouterr().err
    assert "spatial size 32 assumed" in err and "pass --input-shape" in err and err.count("\n") == 1


def test_knockout_model_takes_the_shape_from_data(usernet, capsys):
    from modscope.cli import main

    rng = np.random.default_rng(0)
    np.savez(
        usernet / "d.npz",
        x_test=rng.normal(size=(30, 3, 8, 8)).astype(np.float32),
        y_test=rng.integers(0, 2, 30),
    )
    argv = [
        "knockout",
        "cnn.pt",
        "--model",
        "i24net:cnn",
        "--data",
        "d.npz",
        "--clusters",
        "2",
        "--random",
        "20",
    ]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    # issue 25 (c): unit groups by module path, kind and size, not bare Sequential numbers
    assert "0 (Conv2d, 4 units)" in out
    masks = ["masks", "cnn.pt", "--model", "i24net:cnn", "--data", "d.npz", "--function", "a=0"]
    assert main([*masks, "--steps", "3", "--batch-size", "10", "--no-progress"]) == 0
    assert "0 (Conv2d, 4 units)" in capsys.readouterr().out


# -- issue 25 (d): a Conv1d reading a (B, T, C) input after a transpose ---------------------------
class _TimeConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv1d(6, 4, 3, padding=1), nn.Linear(4, 2)

    def forward(self, x):  # x: (batch, time, features)
        return self.fc(self.conv(x.transpose(1, 2)).mean(-1))


def test_conv1d_after_a_transpose_reads_the_features():
    g = load_graph(_TimeConv(), example_input=torch.zeros(1, 10, 6))
    assert g.sizes == (6, 4, 2) and g.group_names == ("input:x", "conv", "fc")
    # the axis can also be given; a wrong one is refused, not misread
    assert load_graph(_TimeConv(), example_input=torch.zeros(1, 10, 6), input_axis=-1).sizes == (6, 4, 2)
    with pytest.raises(ModscopeError):
        load_graph(_TimeConv(), example_input=torch.zeros(1, 10, 6), input_axis=1)
    with pytest.raises(ModscopeError, match="input_axis goes with a module"):
        load_graph({"w": np.ones((2, 2))}, input_axis=1)


def test_blocks_on_a_model_file_says_what_it_reads(tmp_path, capsys):
    from modscope.cli import main

    assert main(["blocks", str(_renamed_onnx(tmp_path)), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "blocks reads a transformer's state dict" in err and "pickle" not in err


def test_keras_input_shape_is_batch_first_like_everywhere_else():
    require_extra("h5py")

    path = FIXTURES / "formats" / "keras_cnn.h5"
    g = load_graph(path, input_shape=(1, 6, 6, 2))
    assert g.sizes == load_graph(path).sizes == (2, 4, 3) and "(1, 6, 6, 2)" in g.reading
    with pytest.raises(ModscopeError, match="cannot run the Keras model"):
        load_graph(path, input_shape=(1, 8, 8, 5))
